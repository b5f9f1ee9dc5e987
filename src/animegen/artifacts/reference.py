"""Reference statistics ``data/reference/<dataset>/`` (stage ``reference``), reused by every evaluation
against the dataset (``evaluate``, ``compare``, ``track``).

The folder holds ``features.npy`` (float32 pool3 features of the train split, one row per image, in the
order of ``ids``), ``stats.npz`` (their mean and covariance in float64, computed before the features
were stored as float32) and ``reference.json`` (tagged ``animegen.reference/1``: ids, the Inception
weights' origin and SHA-256, the split-half FID floor).  Statistics from other weights are refused,
never mixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from animegen.artifacts import ArtifactError
from animegen.artifacts.records import read_record, write_record

KIND, VERSION = "reference", 1


@dataclass
class Reference:
    features: np.ndarray  # (N, 2048) float32
    mu: np.ndarray
    sigma: np.ndarray
    info: dict  # reference.json without its tag


def write_reference(folder: Path, features: np.ndarray, mu: np.ndarray, sigma: np.ndarray, info: dict) -> None:
    """Write into ``folder`` (the caller makes the folder appear atomically)."""
    np.save(folder / "features.npy", features.astype(np.float32))
    with open(folder / "stats.npz", "wb") as f:
        np.savez(f, mu=mu, sigma=sigma)
    write_record(folder / "reference.json", KIND, VERSION, info)


def read_reference(folder: Path, weights_sha256: str, ids: list[str] | None = None) -> Reference:
    """Load a reference folder made with the Inception weights ``weights_sha256`` (and, when ``ids`` is
    given, from exactly those images); :class:`ArtifactError` otherwise."""
    info = read_record(folder / "reference.json", KIND, VERSION)
    if info["weights"]["sha256"] != weights_sha256:
        raise ArtifactError(
            f"{folder} was computed with Inception weights {info['weights']['sha256'][:12]}... "
            f"({info['weights']['origin']}), not the ones in use now ({weights_sha256[:12]}...): "
            "rerun its reference stage; FIDs from different weights are not comparable"
        )
    if ids is not None and info["ids"] != ids:
        raise ArtifactError(f"{folder} is out of date with its split; rerun its reference stage")
    try:
        with np.load(folder / "stats.npz", allow_pickle=False) as f:
            mu, sigma = f["mu"][:], f["sigma"][:]
        features = np.load(folder / "features.npy", allow_pickle=False)
    except (OSError, ValueError, KeyError) as e:
        raise ArtifactError(f"{folder}: statistics unreadable ({e}); rerun its reference stage") from None
    return Reference(features, mu, sigma, info)
