"""JSON records: the versioned ones beside an artifact (train.json, sample.json, reference.json, split
files, image-set reports) and the metrics files under ``metrics/`` that DVC reads.

Versioned records carry ``"format": "animegen.<kind>/<version>"`` and :func:`read_record` refuses any
other tag.  Metrics files carry no tag (``dvc metrics show`` would list it as a metric); their reader
checks that the keys it needs are there and names the file and the missing keys when they are not.
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


def write_metrics(path: Path, data: dict) -> None:
    """A metrics file (its folder is made as needed), written atomically like every record."""
    write_json_atomic(path, data)


def read_metrics(path: Path, required: Iterable[str]) -> dict:
    """A metrics file that must hold the ``required`` keys (its writer's contract with its readers)."""
    data = _load(path)
    missing = [k for k in required if k not in data]
    if missing:
        raise ArtifactError(f"{path}: lacks {', '.join(missing)} (written by another version?); rerun the stage that writes it")
    return data
