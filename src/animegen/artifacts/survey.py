"""The blind rating kit ``data/survey/`` (stage ``survey``), read by ``survey_score``, and the answer
files people send back (``data/survey_answers/*.csv``, supplied by hand like ``data/sources/``).

``survey.html``: the page raters open (for people; no stage reads it).  ``key.json`` (tagged
``animegen.survey_key/1``): ``items`` (item id -> ``model``, ``source`` dataset, ``input`` id),
``order`` (the item ids in display order), ``models``, ``questions``, ``scale``, ``per_model``, ``seed``,
``title``.  The key is the only file that says which model made an item: keep it from the raters.

An answer file is the CSV the page exports, header ``rater,item,question,score``; this module reads
its rows with their line numbers and leaves the checking to :func:`animegen.survey.parse_answers`.
"""

from __future__ import annotations

import csv
from pathlib import Path

from animegen.artifacts import ArtifactError
from animegen.artifacts.records import read_record, write_record
from animegen.io import write_text_atomic

KIND, VERSION = "survey_key", 1
PAGE, KEY = "survey.html", "key.json"
KEY_FIELDS = ("items", "order", "models", "questions", "scale", "per_model", "seed", "title")


def write_page(folder: Path, page: str) -> None:
    write_text_atomic(folder / PAGE, page)


def write_key(folder: Path, key: dict) -> None:
    """``key`` holds :data:`KEY_FIELDS`."""
    missing = [k for k in KEY_FIELDS if k not in key]
    if missing:
        raise ValueError(f"survey key lacks {', '.join(missing)}")
    write_record(folder / KEY, KIND, VERSION, key)


def read_key(folder: Path) -> dict:
    """The key of a survey folder (:class:`ArtifactError` if missing, foreign or incomplete)."""
    key = read_record(folder / KEY, KIND, VERSION)
    missing = [k for k in KEY_FIELDS if k not in key]
    if missing:
        raise ArtifactError(f"{folder / KEY}: lacks {', '.join(missing)}; rerun survey")
    return key


def read_answer_files(folder: Path) -> list[tuple[Path, list[str], list[tuple[int, dict]]]]:
    """``(path, header columns, [(line number, row)])`` of each ``*.csv`` in ``folder`` (sorted by name;
    none when the folder is missing).  Hidden files (an editor's lock or backup) are skipped."""
    files = sorted(p for p in folder.glob("*.csv") if p.is_file() and not p.name.startswith(".")) if folder.is_dir() else []
    out = []
    for path in files:
        try:
            # utf-8-sig: a file opened and saved again in a spreadsheet starts with a byte-order mark
            with open(path, newline="", encoding="utf-8-sig") as f:
                reader = csv.DictReader(f)
                columns = [c.strip() for c in reader.fieldnames or []]
                reader.fieldnames = columns
                rows = [(reader.line_num, row) for row in reader]
        except (OSError, UnicodeDecodeError, csv.Error) as e:
            raise ArtifactError(f"{path}: not a readable UTF-8 CSV file ({e}); export it again from survey.html") from None
        out.append((path, columns, rows))
    return out
