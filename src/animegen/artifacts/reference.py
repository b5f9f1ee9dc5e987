"""Reference statistics ``data/reference/<dataset>/`` (stage ``reference``), reused by every evaluation
against the dataset (``evaluate``, ``compare``, ``track``).

The folder holds ``features.npy`` (float32 pool3 features of every image of the dataset, one row per
image, in the order of ``ids``: the train split first, then the test split), ``stats.npz`` and
``stats_all.npz`` (mean ``mu`` and covariance ``sigma`` in float64 of the train split and of all
images, computed before the features were stored as float32; each a statistics file that ``python -m
pytorch_fid`` reads) and ``reference.json`` (tagged
``animegen.reference/2``: ids, ``sets`` with each set's image count and split-half FID floor, the
Inception weights' origin and SHA-256).  A set is a prefix of the rows: ``train`` (what a model trained
on) or ``all`` (train and test: study A measures against every image).  Statistics from other weights
are refused, never mixed.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animegen import paths
from animegen.artifacts import ArtifactError
from animegen.artifacts.records import read_record, write_record
from animegen.artifacts.split import split_ids
from animegen.metrics.fid import FrechetReference

KIND, VERSION = "reference", 2
STATS_FILES = {"train": "stats.npz", "all": "stats_all.npz"}  # the image sets, each a prefix of the rows


@dataclass
class Reference:
    features: np.ndarray  # (N, 2048) float32
    mu: np.ndarray
    sigma: np.ndarray
    info: dict  # reference.json without its tag; ``ids``, ``floor`` and ``images`` are the chosen set's

    @functools.cached_property
    def frechet(self) -> FrechetReference:
        """This set's side of every FID against it, prepared on first use and kept (``track`` scores one
        candidate set per snapshot against it)."""
        return FrechetReference(self.mu, self.sigma)


def write_reference(folder: Path, features: np.ndarray, stats: dict[str, tuple[np.ndarray, np.ndarray]],
                    info: dict) -> None:  # fmt: skip
    """Write into ``folder`` (the caller makes the folder appear atomically).  ``info`` holds ``ids`` (one
    per row of ``features``) and ``sets`` ({name: {"n_images": n, ...}}, each set the first n rows);
    ``stats`` each set's (mean, covariance)."""
    if set(stats) != set(info["sets"]) or not set(stats) <= set(STATS_FILES):
        raise ValueError(f"stats for {sorted(stats)} but sets {sorted(info['sets'])}; known sets: {list(STATS_FILES)}")
    np.save(folder / "features.npy", features.astype(np.float32))
    for name, (mu, sigma) in stats.items():
        with open(folder / STATS_FILES[name], "wb") as f:
            np.savez(f, mu=mu, sigma=sigma)
    write_record(folder / "reference.json", KIND, VERSION, info)


def read_reference(folder: Path, weights_sha256: str, images: str = "train", ids: list[str] | None = None
                   ) -> Reference:  # fmt: skip
    """Load image set ``images`` (``train`` or ``all``) of a reference folder made with the Inception
    weights ``weights_sha256`` (and, when ``ids`` is given, from exactly those images);
    :class:`ArtifactError` otherwise."""
    info = read_record(folder / "reference.json", KIND, VERSION)
    if info["weights"]["sha256"] != weights_sha256:
        raise ArtifactError(
            f"{folder} was computed with Inception weights {info['weights']['sha256'][:12]}... "
            f"({info['weights']['origin']}), not the ones in use now ({weights_sha256[:12]}...): "
            "rerun its reference stage; FIDs from different weights are not comparable"
        )
    entry = info.get("sets", {}).get(images)
    if not isinstance(entry, dict) or not isinstance(entry.get("n_images"), int):
        raise ArtifactError(f"{folder}: no image set {images!r} (has {sorted(info.get('sets', {}))}); rerun its reference stage")
    set_ids = info["ids"][: entry["n_images"]]
    if ids is not None and set_ids != ids:
        raise ArtifactError(f"{folder} is out of date with its split; rerun its reference stage")
    try:
        with np.load(folder / STATS_FILES[images], allow_pickle=False) as f:
            mu, sigma = f["mu"][:], f["sigma"][:]
        features = np.load(folder / "features.npy", allow_pickle=False)
    except (OSError, ValueError, KeyError) as e:
        raise ArtifactError(f"{folder}: statistics unreadable ({e}); rerun its reference stage") from None
    if len(features) != len(info["ids"]):
        raise ArtifactError(f"{folder}: {len(features)} feature rows for {len(info['ids'])} ids; rerun its reference stage")
    return Reference(features[: len(set_ids)], mu, sigma, {**info, "ids": set_ids, "images": images, "floor": entry.get("floor")})


def read_dataset_reference(root: Path, dataset: str, weights_sha256: str, images: str = "train") -> Reference:
    """``dataset``'s reference set ``images`` in the workspace ``root``, checked against the ids its
    split file holds now (the reference of a dataset split again since is refused)."""
    return read_reference(root / paths.REFERENCE.format(dataset=dataset), weights_sha256, images, split_ids(root, dataset, images))
