"""Stage ``split``: a deterministic train/test split of one processed dataset.

Reads:  ``data/processed/<name>/manifest.csv``; ``params.yaml`` section ``split`` with the dataset's
        overrides ``datasets.<name>.split`` (``test``: a fraction such as 0.1, a count such as 50, or 0
        to hold nothing out; ``seed``).
Writes: ``data/splits/<name>.json`` with the sorted ``train`` and ``test`` id lists and how they were
        made.  Stable when unrelated images are added (see :mod:`animegen.data.split`).
"""

from __future__ import annotations

from pathlib import Path

from animegen import paths
from animegen.artifacts.images import read_manifest
from animegen.artifacts.split import write_split
from animegen.data.split import split_ids
from animegen.recipes import dataset_section
from animegen.stages import StageError


def run(params: dict, dataset: str, root: Path) -> dict:
    s = dataset_section(params, dataset, "split")
    ids = [r["id"] for r in read_manifest(root / paths.PROCESSED.format(dataset=dataset))]
    try:
        parts = split_ids(ids, s["test"], s["seed"])
    except ValueError as e:
        raise StageError(f"split {dataset}: split.test: {e}") from None
    if not parts["train"] or (not parts["test"] and s["test"] != 0):
        raise StageError(
            f"split {dataset}: split.test={s['test']} leaves {len(parts['train'])} train / "
            f"{len(parts['test'])} test images out of {len(ids)}; both must be non-empty "
            "(test: 0 trains on every image on purpose)"
        )
    result = {
        "dataset": dataset,
        "seed": s["seed"],
        "test_param": s["test"],
        "method": "fraction" if isinstance(s["test"], float) else ("none" if s["test"] == 0 else "count"),
        "n_train": len(parts["train"]),
        "n_test": len(parts["test"]),
        **parts,
    }
    write_split(root / paths.SPLIT.format(dataset=dataset), result)
    return {k: v for k, v in result.items() if k not in ("train", "test")}
