"""Stage ``split``: a deterministic train/test split of one processed dataset.

Reads:  ``data/processed/<name>/manifest.csv``; ``params.yaml`` section ``split`` (``test``: a
        fraction such as 0.1, or a count such as 50; ``seed``).
Writes: ``data/splits/<name>.json`` with the sorted ``train`` and ``test`` id lists and how they were
        made.  Stable when unrelated images are added (see :mod:`animegen.data.split`).
"""

from __future__ import annotations

from pathlib import Path

from animegen import paths
from animegen.artifacts.images import read_manifest
from animegen.artifacts.split import write_split
from animegen.data.split import split_ids
from animegen.stages import StageError


def run(params: dict, dataset: str, root: Path) -> dict:
    s = params["split"]
    ids = [r["id"] for r in read_manifest(root / paths.PROCESSED.format(dataset=dataset))]
    try:
        parts = split_ids(ids, s["test"], s["seed"])
    except ValueError as e:
        raise StageError(f"split {dataset}: split.test: {e}") from None
    if not parts["test"] or not parts["train"]:
        raise StageError(
            f"split {dataset}: split.test={s['test']} leaves {len(parts['train'])} train / "
            f"{len(parts['test'])} test images out of {len(ids)}; both must be non-empty"
        )
    result = {
        "dataset": dataset,
        "seed": s["seed"],
        "test_param": s["test"],
        "method": "fraction" if isinstance(s["test"], float) else "count",
        "n_train": len(parts["train"]),
        "n_test": len(parts["test"]),
        **parts,
    }
    write_split(root / paths.SPLIT.format(dataset=dataset), result)
    return {k: v for k, v in result.items() if k not in ("train", "test")}
