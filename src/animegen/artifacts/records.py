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


def _not_numbers(data: dict, prefix: str = "") -> list[str]:
    bad = []
    for key, value in data.items():
        if isinstance(value, dict):
            bad += _not_numbers(value, f"{prefix}{key}.")
        elif isinstance(value, bool) or not isinstance(value, (int, float)):
            bad.append(f"{prefix}{key}")
    return bad


def write_metrics(path: Path, data: dict) -> None:
    """A metrics file (its folder is made as needed), written atomically like every record.  Values are
    numbers or objects of numbers; anything else is a programming error (it belongs in the record)."""
    bad = _not_numbers(data)
    if bad:
        raise ValueError(f"{path}: metrics hold numbers only; {', '.join(bad)} belong in the stage's record")
    write_json_atomic(path, data)


def numbers_of(data: dict) -> dict:
    """The numeric part of ``data``: numbers kept, objects recursed into (kept when not empty), strings,
    lists, booleans and None left out."""
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            inner = numbers_of(value)
            if inner:
                out[key] = inner
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = value
    return out


def write_result(metrics_path: Path, record_path: Path, kind: str, result: dict, keys: Iterable[str]) -> None:
    """A scoring stage's result in two files: all of ``result`` (provenance included) as the versioned
    record ``kind``/1 at ``record_path``, then its ``keys`` (those not None) as the lean metrics file."""
    write_record(record_path, kind, 1, result)
    write_metrics(metrics_path, {k: result[k] for k in keys if result.get(k) is not None})
