"""Image sets: the folders of the data stages (``data/raw/<d>``, ``data/interim/cutout/<d>``,
``data/processed/<d>``).

Each holds ``images/<id>.png`` (collect also keeps an input JPEG that needs no normalisation as
``images/<id>.jpg``; after cutout, ``masks/<id>.png``), ``manifest.csv`` (one row per
kept image; its columns are the writing stage's contract), ``rejects.csv`` (one row per refused input
with a named reason) and ``report.json`` (counts, tagged ``animegen.image_set/1``).  The next stage
reads the manifest and the images through :func:`read_manifest` and :func:`read_images`.

An image id is the first 16 hex digits of its pixels' SHA-256 (collect) and nothing else: every id read
from a manifest or a split file is checked, so none can name a file outside its set.  The processed set
(resize) also records each image's ``pixel_sha256``; :func:`read_images` checks the pixels it loads
against it, so an image replaced after the stage wrote it is refused, not trained on.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from animegen.artifacts import ArtifactError
from animegen.artifacts.records import read_record, write_record
from animegen.io import CsvRows, Rejected, encode_png, pixel_sha256, read_csv, read_image_array, read_image_file

KIND, VERSION = "image_set", 1
ID = re.compile(r"[0-9a-f]{16}")


def check_id(image_id, where: Path | str) -> str:
    """``image_id`` if it is an image id (16 lowercase hex digits), else :class:`ArtifactError` naming ``where``."""
    if not isinstance(image_id, str) or not ID.fullmatch(image_id):
        raise ArtifactError(f"{where}: {str(image_id)[:40]!r} is not an image id (16 hex digits); rerun the stage that writes it")
    return image_id


def pixel_digest(arr: np.ndarray) -> str:
    """SHA-256 of a uint8 image array's shape and bytes (what the processed manifest records)."""
    arr = np.ascontiguousarray(arr)
    return hashlib.sha256(repr(arr.shape).encode() + arr.tobytes()).hexdigest()


def count_reasons(rows) -> dict[str, int]:
    """Rejects per reason; ``duplicate_of:<id>`` rows are counted together as ``duplicate``."""
    counts = Counter("duplicate" if r["reason"].startswith("duplicate_of:") else r["reason"] for r in rows)
    return dict(sorted(counts.items()))


def image_file(image_id: str, ext: str = "png") -> str:
    """Where an image lives inside its set (the manifest's ``file`` column): a PNG, or in collect's set
    (``data/raw``) also the input's own JPEG (``ext="jpg"``)."""
    return f"images/{check_id(image_id, 'image id')}.{ext}"


def mask_file(image_id: str) -> str:
    """Where a cut-out's foreground mask lives inside its set (the cutout manifest's ``mask`` column)."""
    return f"masks/{check_id(image_id, 'image id')}.png"


def start(folder: Path, masks: bool = False) -> None:
    """Prepare an (atomic, still temporary) image-set folder for :func:`write_image`."""
    (folder / "images").mkdir()
    if masks:
        (folder / "masks").mkdir()


def write_image(folder: Path, file: str, image, compress_level: int = 6) -> None:
    """A Pillow image, or a uint8 array (H, W, 3) RGB or (H, W) mask, at ``file`` inside the set
    (encoded by :func:`animegen.io.encode_png`).

    Intermediate sets pass ``compress_level=1``: 3-4x faster to encode for ~20% more bytes."""
    (folder / file).write_bytes(encode_png(image, compress_level))


class ImageSetWriter:
    """An image set's ``manifest.csv`` and ``rejects.csv`` written row by row as a stage goes (a
    100,000-image set never holds its manifest in memory), then ``report.json`` by :meth:`finish`.
    Lives inside the stage's atomic directory ``folder``.  The rejects are also kept in
    :attr:`rejects` (a stage where nothing survives names them, :func:`animegen.stages.require_kept`)."""

    def __init__(self, folder: Path, dataset: str, manifest_columns: list[str], reject_columns: list[str]):
        self.folder, self.dataset = folder, dataset
        self._manifest = CsvRows(folder / "manifest.csv", manifest_columns)
        self._rejects = CsvRows(folder / "rejects.csv", reject_columns)
        self.kept = 0
        self.rejects: list[dict] = []

    def keep(self, row: dict) -> None:
        self._manifest.write(row)
        self.kept += 1

    def reject(self, row: dict) -> None:
        self._rejects.write(row)
        self.rejects.append(row)

    def close(self) -> None:
        self._manifest.close()
        self._rejects.close()

    def finish(self, **extra) -> dict:
        """Close the CSV files and write ``report.json`` (counts, rejects by reason, ``extra``); returns it."""
        self.close()
        report = {
            "dataset": self.dataset,
            "kept": self.kept,
            "rejected": len(self.rejects),
            "rejects_by_reason": count_reasons(self.rejects),
            **extra,
        }
        write_record(self.folder / "report.json", KIND, VERSION, report)
        return report

    def __enter__(self) -> "ImageSetWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def parse_box(value: str, where: str) -> list[int] | None:
    """A manifest's ``foreground_box`` cell (cutout writes it): ``""`` (not recorded) -> None, ``[]`` (no
    foreground) -> [], else ``[x0, y0, x1, y1]`` of integers with ``0 <= x0 < x1`` and ``0 <= y0 < y1``;
    anything else is an :class:`ArtifactError` naming ``where``."""
    if value == "":
        return None
    try:
        box = json.loads(value)
    except ValueError:
        box = None
    if box == [] or (isinstance(box, list) and len(box) == 4 and all(type(v) is int for v in box)
                     and 0 <= box[0] < box[2] and 0 <= box[1] < box[3]):  # fmt: skip
        return box
    raise ArtifactError(f"{where}: foreground_box {value!r} is not a box [x0, y0, x1, y1]; rerun the stage that writes it")


def read_manifest(folder: Path) -> list[dict]:
    """The kept rows of an image set, after checking its report's format; the JSON column ``extra``
    (what a source recorded per image, e.g. face part boxes) is parsed into a dict, and cutout's
    ``foreground_box`` into a checked list (:func:`parse_box`)."""
    read_record(folder / "report.json", KIND, VERSION)
    path = folder / "manifest.csv"
    try:
        rows = read_csv(path)
        for row in rows:
            if "extra" in row:
                row["extra"] = json.loads(row["extra"] or "{}")
    except (OSError, ValueError) as e:
        raise ArtifactError(f"{path}: unreadable ({e}); rerun the stage that writes it") from None
    if rows and not {"id", "file"} <= set(rows[0]):
        raise ArtifactError(f"{path}: no id and file columns (header {list(rows[0])[:4]}...); rerun the stage that writes it")
    for n, row in enumerate(rows, start=2):  # line numbers as an editor shows them (the header is line 1)
        check_id(row["id"], f"{path}, line {n}")
        if "foreground_box" in row:
            row["foreground_box"] = parse_box(row["foreground_box"], f"{path}, line {n}")
        own = (image_file(row["id"]), image_file(row["id"], "jpg"))
        if row["file"] not in own or row.get("mask", mask_file(row["id"])) != mask_file(row["id"]):
            raise ArtifactError(f"{path}, line {n}: files {row['file']!r} / {row.get('mask')!r} are not the id's own; "
                                "rerun the stage that writes it")  # fmt: skip
    if len({r["id"] for r in rows}) != len(rows):
        raise ArtifactError(f"{path}: an id appears twice; rerun the stage that writes it")
    return rows


def read_decoded(folder: Path, file: str, sha256: str | None = None) -> Image.Image:
    """One image of a set as a normalised Pillow image (RGB, or RGBA where collect kept transparency),
    through the same checks as any input; :class:`Rejected` with a named reason when it fails them.
    With ``sha256`` (collect's manifest records it), pixels that differ from it are an
    :class:`ArtifactError`: the file was replaced or damaged since, or a kept JPEG decodes differently
    here than where collect ran."""
    img = read_image_file(folder / file).image
    if sha256 is not None and pixel_sha256(img) != sha256:
        raise ArtifactError(f"{folder / file}: its pixels differ from the SHA-256 collect recorded (the file was "
                            "replaced or damaged since, or this machine's JPEG decoder differs); rerun collect")  # fmt: skip
    return img


def read_image(folder: Path, file: str, mode: str = "RGB") -> np.ndarray:
    """One image (or mask, ``mode="L"``) of a set by its manifest path; :class:`Rejected` if unreadable."""
    return read_image_array(folder / file, mode)


def stack_images(files: list[Path], folder: Path, writer: str) -> np.ndarray:
    """Our own RGB PNGs ``files`` (inside ``folder``) as one uint8 array (N, H, W, 3) of one size; an
    unreadable file or a size mismatch is an :class:`ArtifactError` saying to rerun ``writer``.
    No files give an empty (0, 0, 0, 3) array: the stage says why it needs more."""
    if not files:
        return np.zeros((0, 0, 0, 3), np.uint8)
    arrays = []
    for f in files:
        try:
            arrays.append(read_image_array(f))
        except Rejected as e:
            raise ArtifactError(f"{f}: cannot be read ({e.detail}); rerun {writer}") from None
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise ArtifactError(f"{folder}: images differ in size {shapes}; rerun {writer}")
    return np.stack(arrays)


def read_images(folder: Path, ids: list[str]) -> np.ndarray:
    """The images ``ids`` of a set as one uint8 array (N, H, W, 3); they must share one size.  Where the
    set's manifest records ``pixel_sha256`` (the processed set), each image is checked against it."""
    images = stack_images([folder / image_file(i) for i in ids], folder, "the stage that writes it")
    manifest = folder / "manifest.csv"
    if ids and manifest.is_file():
        digests = {r["id"]: r.get("pixel_sha256") for r in read_manifest(folder)}
        for i, img in zip(ids, images):
            if i not in digests:
                raise ArtifactError(f"{folder}: image {i} is not in its manifest; rerun the stage that uses it")
            if digests[i] and digests[i] != pixel_digest(img):
                raise ArtifactError(f"{folder / image_file(i)}: its pixels differ from the checksum its stage recorded "
                                    "(replaced or damaged since); rerun the stage that writes it")  # fmt: skip
    return images
