"""Split files ``data/splits/<name>.json``: a dataset's ``train`` and ``test`` ids (stage ``split``) or a
CAM selection of its train ids and its random control (stage ``cam_select``), tagged
``animegen.split/1``.  Every stage that trains or measures on a dataset reads its images here."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from animegen import paths
from animegen.artifacts import ArtifactError
from animegen.artifacts.images import check_id, read_images
from animegen.artifacts.records import read_record, write_record

KIND, VERSION = "split", 1
PARTS = ("train", "test")


def write_split(path: Path, record: dict) -> None:
    """``record`` holds sorted ``train`` and ``test`` id lists and how they were made."""
    write_record(path, KIND, VERSION, record)


def read_split(path: Path) -> dict:
    record = read_record(path, KIND, VERSION)
    for part in PARTS:
        if not isinstance(record.get(part), list):
            raise ArtifactError(f"{path}: no {part!r} id list; rerun the stage that writes it")
        for image_id in record[part]:
            check_id(image_id, f"{path} ({part})")
    return record


def split_ids(root: Path, split: str, part: str = "train") -> list[str]:
    """The ids of one part of ``data/splits/<split>.json``: ``train``, ``test`` or ``all`` (the train ids,
    then the test ids: the train split is always a prefix of ``all``)."""
    record = read_split(root / paths.SPLIT.format(dataset=split))
    if part == "all":
        return record["train"] + record["test"]
    if part not in PARTS:
        raise ValueError(f"part must be train, test or all, not {part!r}")
    return record[part]


def load_split_images(root: Path, dataset: str, part: str = "train", split: str | None = None
                      ) -> tuple[list[str], np.ndarray]:  # fmt: skip
    """The ``part`` of a processed dataset as ids and one uint8 array (N, H, W, 3).

    ``split`` names another split file of the dataset (a CAM selection, ``data/splits/<split>.json``).
    """
    ids = split_ids(root, split or dataset, part)
    return ids, read_images(root / paths.PROCESSED.format(dataset=dataset), ids)
