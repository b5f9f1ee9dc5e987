"""JSON records: the versioned ones beside an artifact (train.json, sample.json, reference.json, split
files, image-set reports, a scoring stage's ``<name>.record.json``) and the metrics files under
``metrics/`` that DVC reads.

Versioned records carry ``"format": "animegen.<kind>/<version>"`` and :func:`read_record` refuses any
other tag.  Metrics files hold numbers only, the ones a user compares across experiments (``dvc metrics
diff``, ``dvc exp show``): no tag, no names, no lists.  What a number was measured with (dataset, model
family, method names, the Inception weights' SHA-256, counts) goes into the stage's record beside it,
which is where later stages read and check it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Iterable

from animegen.artifacts import ArtifactError, check_format, format_tag
from animegen.io import write_json_atomic


def write_record(path: Path, kind: str, version: int, data: dict) -> None:
    """``data`` with its format tag, written atomically (sorted keys, two-space indent, newline)."""
    write_json_atomic(path, {"format": format_tag(kind, version), **data})


def _load(path: Path) -> dict:
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ArtifactError(f"{path}: missing; run the stage that writes it") from None
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path}: unreadable ({e}); rerun the stage that writes it") from None
    if not isinstance(data, dict):
        raise ArtifactError(f"{path}: not a JSON object; rerun the stage that writes it")
    return data


def read_record(path: Path, kind: str, version: int) -> dict:
    """The record at ``path`` without its tag; :class:`ArtifactError` for another kind or version."""
    data = _load(path)
    check_format(path, data.get("format"), kind, version)
    return {k: v for k, v in data.items() if k != "format"}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def numbers_of(data: dict) -> dict:
    """The numeric part of ``data``: numbers kept, objects recursed into (kept when not empty), strings,
    lists, booleans and None left out."""
    out = {}
    for key, value in data.items():
        inner = numbers_of(value) if isinstance(value, dict) else None
        if inner:
            out[key] = inner
        elif _is_number(value):
            out[key] = value
    return out


def _leaf_keys(data: dict, prefix: str = "") -> list[str]:
    """Dotted keys of every value in ``data`` that is not an object."""
    keys = []
    for key, value in data.items():
        keys += _leaf_keys(value, f"{prefix}{key}.") if isinstance(value, dict) else [f"{prefix}{key}"]
    return keys


def write_metrics(path: Path, data: dict) -> None:
    """A metrics file (its folder is made as needed), written atomically like every record.  Values are
    numbers or objects of numbers; anything else is a programming error (it belongs in the record)."""
    kept = set(_leaf_keys(numbers_of(data)))
    bad = [key for key in _leaf_keys(data) if key not in kept]
    if bad:
        raise ValueError(f"{path}: metrics hold numbers only; {', '.join(bad)} belong in the stage's record")
    write_json_atomic(path, data)


def pick(result: dict, keys: Iterable[str]) -> dict:
    """The entries of ``result`` named by ``keys``, in that order; a key absent or None is left out
    (an untracked model has no best FID)."""
    return {k: result[k] for k in keys if result.get(k) is not None}


def write_result(metrics_path: Path, record_path: Path, kind: str, result: dict, keys: Iterable[str]) -> None:
    """A scoring stage's result in two files: all of ``result`` (provenance included) as the versioned
    record ``kind``/1 at ``record_path``, then its ``keys`` (those not None) as the lean metrics file."""
    write_record(record_path, kind, 1, result)
    write_metrics(metrics_path, pick(result, keys))
