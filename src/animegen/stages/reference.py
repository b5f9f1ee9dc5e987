"""Stage ``reference``: Inception features of one dataset's images, computed once.

Reads:  ``data/processed/<name>/images/``, ``data/splits/<name>.json``; ``params.yaml`` sections
        ``inception`` (the shared feature extractor: weights, batch size, device, threads) and
        ``reference`` (floor splits, seed).
Writes: ``data/reference/<name>/`` with ``features.npy``, ``stats.npz`` and ``reference.json`` (see
        :mod:`animegen.artifacts.reference`): features of every image, and for each image set a model
        or a pair may be scored against (``train``: the train split; ``all``: train and test) its
        statistics and real-vs-real FID floor (FID between random halves of the set, the value a
        perfect sampler would get at this sample size).
Guarantees: every model and comparison against this dataset reuses these statistics (changing a model
never recomputes them); the weights' origin and SHA-256 are recorded and checked by every user.
"""

from __future__ import annotations

from pathlib import Path

from animegen import paths
from animegen.artifacts.reference import write_reference
from animegen.artifacts.split import load_split_images, split_ids
from animegen.io import atomic_dir
from animegen.metrics.extractor import load_extractor
from animegen.metrics.features import feature_statistics
from animegen.metrics.fid import real_vs_real_floor
from animegen.stages import StageError


def run(params: dict, dataset: str, root: Path) -> dict:
    r = params["reference"]
    ids, images = load_split_images(root, dataset, "all")
    n_train = len(split_ids(root, dataset, "train"))
    if n_train < 2:
        raise StageError(f"reference {dataset}: the train split has {n_train} image(s); FID needs at least 2")
    extractor = load_extractor(params["inception"], root)
    weights = extractor.weights
    features = extractor.features(images)
    stats, sets = {}, {}
    for name, n in (("train", n_train), ("all", len(ids))):
        if name == "all" and n == n_train:  # no test split: "all" is the train split
            stats["all"], sets["all"] = stats["train"], sets["train"]
            continue
        stats[name] = feature_statistics(features[:n])
        floor = real_vs_real_floor(features[:n], seed=r["seed"], n_splits=r["floor_splits"]).as_dict() if n >= 4 else None
        sets[name] = {"n_images": n, "floor": floor}
    info = {
        "dataset": dataset, "n_images": len(ids), "ids": ids, "image_size": int(images.shape[1]), "sets": sets,
        "weights": weights.provenance(),
        "inception": extractor.record(),
        "floor_note": "FID between random halves of the image set (n_per_half images each)",
    }  # fmt: skip
    with atomic_dir(root / paths.REFERENCE.format(dataset=dataset)) as tmp:
        write_reference(tmp, features, stats, info)
    floor = sets["train"]["floor"]
    return {"dataset": dataset, "n_images": len(ids), "n_train": n_train, "floor_mean_train": floor and floor["mean"],
            "weights": weights.origin}  # fmt: skip
