"""Stage ``reference``: Inception features of one dataset's train split, computed once.

Reads:  ``data/processed/<name>/images/``, ``data/splits/<name>.json``; ``params.yaml`` sections
        ``inception`` (the shared feature extractor: weights, batch size, device, threads) and
        ``reference`` (floor splits, seed).
Writes: ``data/reference/<name>/`` with ``features.npy``, ``stats.npz`` and ``reference.json`` (see
        :mod:`animegen.artifacts.reference`), including the real-vs-real FID floor: FID between random
        halves of the train split, the value a perfect sampler would get at this sample size.
Guarantees: every model and comparison against this dataset reuses these statistics (changing a model
never recomputes them); the weights' origin and SHA-256 are recorded and checked by every user.
"""

from __future__ import annotations

from pathlib import Path

from animegen import paths
from animegen.artifacts.reference import write_reference
from animegen.artifacts.split import load_split_images
from animegen.io import atomic_dir
from animegen.metrics.extractor import load_extractor
from animegen.metrics.features import feature_statistics, image_features
from animegen.metrics.fid import real_vs_real_floor
from animegen.stages import StageError


def run(params: dict, dataset: str, root: Path) -> dict:
    r = params["reference"]
    ids, images = load_split_images(root, dataset, "train")
    if len(ids) < 2:
        raise StageError(f"reference {dataset}: the train split has {len(ids)} image(s); FID needs at least 2")
    net, weights, device = load_extractor(params["inception"], root)
    features = image_features(net, images, batch_size=params["inception"]["batch_size"], device=device)
    mu, sigma = feature_statistics(features)
    floor = real_vs_real_floor(features, seed=r["seed"], n_splits=r["floor_splits"]).as_dict() if len(ids) >= 4 else None
    info = {
        "dataset": dataset, "n_images": len(ids), "ids": ids, "image_size": int(images.shape[1]),
        "weights": weights.provenance(), "floor": floor,
        "floor_note": "FID between random halves of the train split (n_per_half images each)",
    }  # fmt: skip
    with atomic_dir(root / paths.REFERENCE.format(dataset=dataset)) as tmp:
        write_reference(tmp, features, mu, sigma, info)
    return {"dataset": dataset, "n_images": len(ids), "floor_mean": floor and floor["mean"], "weights": weights.origin}
