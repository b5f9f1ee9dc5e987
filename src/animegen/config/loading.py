"""Reading ``params.yaml`` as both orchestrators do, and refusing a file they would read differently.

``load_params`` reads the file with both YAML loaders the orchestrators use (ruamel, YAML 1.2, as DVC
does; PyYAML, YAML 1.1, as Snakemake does), refuses a file they read differently (``2e-4`` is a string
to one and a float to the other; ``yes`` a bool to one and a string to the other), then validates it
(:func:`animegen.config.validate`: the schema, then the cross-key checks).  Any problem raises
:class:`~animegen.config.errors.ParamsError` whose message is one line starting with the dotted key
path, e.g. ``collect.min_side: expected integer, got string '12'``; the command line turns it into exit
code 2 before anything is written.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import yaml
from ruamel.yaml import YAML

from animegen.config.checks import check
from animegen.config.errors import ParamsError, describe, path_str
from animegen.config.schema import check_schema


def _first_difference(a: Any, b: Any, path=()) -> tuple[tuple, Any, Any] | None:
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if k not in a or k not in b:
                return (path + (k,), a.get(k), b.get(k))
            d = _first_difference(a[k], b[k], path + (k,))
            if d:
                return d
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return (path, a, b)
        for i, (x, y) in enumerate(zip(a, b)):
            d = _first_difference(x, y, path + (i,))
            if d:
                return d
        return None
    if type(a) is not type(b) or a != b:
        return (path, a, b)
    return None


def _to_plain(obj):
    if isinstance(obj, dict):
        return {str(k): _to_plain(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_plain(v) for v in obj]
    return obj


def parse_yaml_both(text: str) -> dict:
    """Parse with ruamel (YAML 1.2, DVC) and PyYAML (YAML 1.1, Snakemake); refuse any disagreement."""
    try:
        r = _to_plain(YAML(typ="safe", pure=True).load(io.StringIO(text)))
        p = yaml.safe_load(text)
    except Exception as e:  # noqa: BLE001 - any parser error is a params error
        msg = " ".join(str(e).split())
        raise ParamsError(f"(file): not valid YAML: {msg}") from None
    diff = _first_difference(r, p)
    if diff is not None:
        path, rv, pv = diff
        raise ParamsError(
            f"{path_str(path)}: YAML 1.2 (DVC) reads {describe(rv)} but YAML 1.1 (Snakemake) reads "
            f"{describe(pv)}; write it unambiguously (e.g. 0.0002 or 2.0e-4, true/false)"
        )
    if not isinstance(r, dict):
        raise ParamsError("(top level): params.yaml must be a mapping of sections")
    return r



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
    return validate(parse_yaml_both(text), root=path.parent)
