"""Derived folders ``data/derived/<dataset>/`` (stage ``derive``), read by ``train_translator``.

``derive.json`` (tagged ``animegen.derived/1``): the dataset, the ids in the processed set's order and
what was made; ``smooth/<id>.png``: each image's edge-smoothed copy (AnimeGAN's style sets);
``faces/<id>.png``: each image's face mask (255 inside the face region, 0 outside; all 0 where no face
was found) and ``faces.csv``: per id whether a face was found, its normalised box, the detector's
confidence and the method.  A dataset that needs neither gets ``derive.json`` alone, so that every
translator can depend on the folders of its two datasets.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from animegen.artifacts import ArtifactError, images
from animegen.artifacts.images import check_id, stack_images
from animegen.artifacts.records import read_record, write_record
from animegen.io import CsvRows

KIND, VERSION = "derived", 1
FACE_COLUMNS = ["id", "found", "x0", "y0", "x1", "y1", "confidence", "method"]
WHAT = {"smooth": "edge_smooth", "faces": "faces"}  # folder -> the derive setting that makes it


def start(folder: Path, smooth: bool, faces: bool) -> None:
    if smooth:
        (folder / "smooth").mkdir()
    if faces:
        (folder / "faces").mkdir()


def write_smooth(folder: Path, image_id: str, image: np.ndarray) -> None:
    images.write_image(folder, f"smooth/{check_id(image_id, 'image id')}.png", image)


def write_face(folder: Path, image_id: str, mask: np.ndarray) -> None:
    images.write_image(folder, f"faces/{check_id(image_id, 'image id')}.png", mask)


def face_rows(folder: Path) -> CsvRows:
    return CsvRows(folder / "faces.csv", FACE_COLUMNS)


def write_derived_record(folder: Path, record: dict) -> None:
    write_record(folder / "derive.json", KIND, VERSION, record)


def read_derived_record(folder: Path) -> dict:
    return read_record(folder / "derive.json", KIND, VERSION)


def read_companions(folder: Path, what: str, ids: list[str]) -> np.ndarray:
    """``smooth`` images or ``faces`` masks of ``ids`` as uint8 (N, H, W, 3) (a mask repeated over three
    channels), in the order of ``ids``; :class:`ArtifactError` naming the setting when they were not made."""
    record = read_derived_record(folder)
    if not record.get(WHAT[what]):
        raise ArtifactError(f"{folder}: no {what} were made for this dataset (derive.{WHAT[what]} does not name it)")
    missing = sorted(set(ids) - set(record["ids"]))
    if missing:
        raise ArtifactError(f"{folder}: image {missing[0]} is not in derive.json ({len(missing)} missing); rerun derive")
    return stack_images([folder / what / f"{check_id(i, folder)}.png" for i in ids], folder / what, "derive")
