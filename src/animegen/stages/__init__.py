"""One thin module per pipeline stage: read its params section, call library code, write outputs atomically.

Each module exposes ``run(params, dataset, root) -> report`` and a docstring saying what it reads,
writes and guarantees.  ``animegen.cli`` maps the subcommand of the same name onto it.
"""

import json
from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image

from animegen import paths
from animegen.io import write_csv, write_json_atomic


class StageError(Exception):
    """A stage cannot produce a trustworthy output from its inputs (exit code 1, nothing written)."""


def count_reasons(rows) -> dict[str, int]:
    """Rejects per reason; ``duplicate_of:<id>`` rows are counted together as ``duplicate``."""
    counts = Counter("duplicate" if r["reason"].startswith("duplicate_of:") else r["reason"] for r in rows)
    return dict(sorted(counts.items()))


def write_image_stage_outputs(
    tmp: Path, stage: str, dataset: str, kept: list[dict], rejects: list[dict],
    manifest_columns: list[str], reject_columns: list[str], **extra,
) -> dict:  # fmt: skip
    """Finish an image stage: refuse an empty result, then write manifest.csv, rejects.csv, report.json."""
    if not kept:
        raise StageError(
            f"{stage} {dataset}: no image kept out of {len(rejects)} inputs "
            f"(rejects by reason: {count_reasons(rejects)})"
        )
    report = {
        "dataset": dataset,
        "kept": len(kept),
        "rejected": len(rejects),
        "rejects_by_reason": count_reasons(rejects),
        **extra,
    }
    write_csv(tmp / "manifest.csv", manifest_columns, kept)
    write_csv(tmp / "rejects.csv", reject_columns, rejects)
    write_json_atomic(tmp / "report.json", report)
    return report


def load_split_images(
    root: Path, dataset: str, part: str = "train", split: str | None = None
) -> tuple[list[str], np.ndarray]:
    """The ``part`` split of a processed dataset as ids and one uint8 array (N, H, W, 3).

    ``split`` names another split file of the dataset (a CAM selection, ``data/splits/<split>.json``).
    """
    split_path = root / paths.SPLIT.format(dataset=split or dataset)
    ids = json.loads(split_path.read_text())[part]
    folder = root / paths.PROCESSED.format(dataset=dataset) / "images"
    arrays = []
    for i in ids:
        try:
            with Image.open(folder / f"{i}.png") as im:
                arrays.append(np.asarray(im.convert("RGB")))
        except OSError as e:
            raise StageError(f"{dataset}: cannot read processed image {i}.png ({e})") from None
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise StageError(f"{dataset}: processed images differ in size {sorted(shapes)}; rerun resize")
    return ids, np.stack(arrays)
