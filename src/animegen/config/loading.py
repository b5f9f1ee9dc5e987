"""Reading ``params.yaml`` once, as DVC reads it, for every stage and for Snakemake.

``load_params`` reads the file as YAML 1.2 (ruamel, as DVC does), then validates it
(:func:`animegen.config.validate`: the schema, then the cross-key checks).  Snakemake's own
``configfile:`` reader is YAML 1.1 (PyYAML), which reads ``5e-05`` -- the form ``dvc exp run -S
lr=0.00005`` writes -- as a string and ``yes`` as a boolean; the Snakefile therefore replaces its
``config`` with this function's result, so both orchestrators and every stage see the same values.  Any problem raises
:class:`~animegen.config.errors.ParamsError` whose message is one line starting with the dotted key
path, e.g. ``collect.min_side: expected integer, got string '12'``; the command line turns it into exit
code 2 before anything is written.
"""

from __future__ import annotations

import io
from pathlib import Path

from ruamel.yaml import YAML

from animegen.config.checks import check
from animegen.config.errors import ParamsError
from animegen.config.schema import check_schema


def parse_yaml(text: str) -> dict:
    """Parse as DVC does (ruamel, YAML 1.2: ``5e-05`` is a number, ``yes`` a string)."""
    try:
        params = YAML(typ="safe", pure=True).load(io.StringIO(text))
    except Exception as e:  # noqa: BLE001 - any parser error is a params error
        msg = " ".join(str(e).split())
        raise ParamsError(f"(file): not valid YAML: {msg}") from None
    if not isinstance(params, dict):
        raise ParamsError("(top level): params.yaml must be a mapping of sections")
    return _to_plain(params)


def _to_plain(obj):
    if isinstance(obj, dict):
        return {str(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    return obj


def validate(params: dict, root: str | Path = ".") -> dict:
    """Validate a parsed params mapping (schema, then cross-key checks); return it or raise ParamsError."""
    check_schema(params)
    check(params, Path(root))
    return params


def load_params(path: str | Path = "params.yaml") -> dict:
    """Read, cross-check and validate ``params.yaml``; the root for relative paths is its folder."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ParamsError(f"(file): cannot read {path}: {e.strerror}") from None
    return validate(parse_yaml(text), root=path.parent)
