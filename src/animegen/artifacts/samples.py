"""Sample folders ``data/samples/<model>/`` (stage ``sample``), read by ``evaluate``.

``images/000000.png ...`` (exactly ``n`` RGB PNGs at the training size, numbered in drawing order),
``grid.png`` (for people; no stage reads it) and ``sample.json`` (tagged ``animegen.samples/1``: n,
seed, batch size, device, generator, the trained steps).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from animegen.artifacts import ArtifactError, images
from animegen.artifacts.images import stack_images
from animegen.artifacts.records import read_record, write_record

KIND, VERSION = "samples", 1


def start(folder: Path) -> None:
    """Prepare an (atomic, still temporary) sample folder for :func:`write_image`."""
    (folder / "images").mkdir()


def write_image(folder: Path, index: int, image: np.ndarray) -> None:
    """The ``index``-th drawn image, a uint8 array (H, W, 3)."""
    images.write_image(folder, f"images/{index:06d}.png", image)


def write_sample_record(folder: Path, record: dict) -> None:
    write_record(folder / "sample.json", KIND, VERSION, record)


def read_samples(folder: Path) -> tuple[list[str], np.ndarray, dict]:
    """(file names, uint8 images (N, H, W, 3) in name order, sample.json) of a sample folder."""
    record = read_record(folder / "sample.json", KIND, VERSION)
    files = sorted((folder / "images").glob("*.png"))
    if len(files) != record["n"]:
        raise ArtifactError(f"{folder / 'images'}: {len(files)} PNGs, sample.json says {record['n']}; rerun sample")
    return [f.name for f in files], stack_images(files, folder / "images", "sample"), record
