"""Translation folders ``data/translations/<model>/`` (stage ``translate``), read by ``evaluate_translation``.

``images/<id>.png``: each translated image under the id of its input (the source dataset's image id),
at the training size; ``inputs/<id>.png``: that input, so the folder holds every input | output pair
(what the evaluation's baseline and the rating kit show) without reaching back into the source
dataset; for a model of several members (Council GAN) ``members/<k>/<id>.png``, every member's
translations (``images/`` holds the evaluated member's); ``grid.png`` (for people: input | output | reconstruction rows; no stage reads
it); ``translate.json`` (tagged ``animegen.translations/1``): the ids in order, which images of which
dataset were translated, the generator, the trained steps.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from animegen.artifacts import ArtifactError, images
from animegen.artifacts.images import stack_images
from animegen.artifacts.records import read_record, write_record

KIND, VERSION = "translations", 2


def start(folder: Path) -> None:
    """Prepare an (atomic, still temporary) translation folder for :func:`write_image`."""
    (folder / "images").mkdir()
    (folder / "inputs").mkdir()


def write_pair(folder: Path, image_id: str, source: np.ndarray, output: np.ndarray) -> None:
    """Input ``image_id`` and its translation, uint8 arrays (H, W, 3)."""
    images.write_image(folder, f"inputs/{image_id}.png", source)
    images.write_image(folder, f"images/{image_id}.png", output)


def write_member(folder: Path, member: str, image_id: str, output: np.ndarray) -> None:
    """Member ``member``'s translation of ``image_id`` (the record lists the members)."""
    (folder / "members" / member).mkdir(parents=True, exist_ok=True)
    images.write_image(folder, f"members/{member}/{image_id}.png", output)


def read_member(folder: Path, member: str, ids: list[str]) -> np.ndarray:
    """Member ``member``'s translations of ``ids``, uint8 (N, H, W, 3)."""
    sub = folder / "members" / member
    return stack_images([sub / f"{i}.png" for i in ids], sub, "translate")


def write_translate_record(folder: Path, record: dict) -> None:
    """``record`` holds ``ids`` (the inputs' ids, in translation order) and how they were made."""
    write_record(folder / "translate.json", KIND, VERSION, record)


def read_translations(folder: Path) -> tuple[list[str], np.ndarray, dict]:
    """(ids, uint8 images (N, H, W, 3) in the record's order, translate.json) of a translation folder."""
    record = read_record(folder / "translate.json", KIND, VERSION)
    ids = record["ids"]
    found = sorted(p.stem for p in (folder / "images").glob("*.png"))
    if found != sorted(ids):
        raise ArtifactError(f"{folder / 'images'}: {len(found)} PNGs do not match the {len(ids)} ids of translate.json; "
                            "rerun translate")  # fmt: skip
    files = [folder / "images" / f"{i}.png" for i in ids]
    return ids, stack_images(files, folder / "images", "translate"), record


def read_inputs(folder: Path, ids: list[str]) -> np.ndarray:
    """The inputs ``ids`` of a translation folder, uint8 (N, H, W, 3)."""
    return stack_images([folder / "inputs" / f"{i}.png" for i in ids], folder / "inputs", "translate")
