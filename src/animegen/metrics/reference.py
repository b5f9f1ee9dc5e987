"""Reference features of a dataset, stored once and reused by every evaluation against it.

A reference folder holds ``features.npy`` (float32 pool3 features of the dataset's train split, one row
per image, in the order of ``ids``), ``stats.npz`` (their mean and covariance in float64, computed
before the features were stored as float32) and ``reference.json`` (ids, the Inception weights' origin
and SHA-256, the split-half FID floor).  Statistics from other weights are refused, never mixed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Reference:
    features: np.ndarray  # (N, 2048) float32
    mu: np.ndarray
    sigma: np.ndarray
    info: dict  # reference.json


def write_reference(folder: Path, features: np.ndarray, mu: np.ndarray, sigma: np.ndarray, info: dict) -> None:
    """Write into ``folder`` (the caller makes the folder appear atomically)."""
    np.save(folder / "features.npy", features.astype(np.float32))
    with open(folder / "stats.npz", "wb") as f:
        np.savez(f, mu=mu, sigma=sigma)
    (folder / "reference.json").write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")


def read_reference(folder: Path, weights_sha256: str) -> Reference:
    """Load a reference folder; ``ValueError`` when it was computed with other Inception weights."""
    info = json.loads((folder / "reference.json").read_text())
    if info["weights"]["sha256"] != weights_sha256:
        raise ValueError(
            f"{folder} was computed with Inception weights {info['weights']['sha256'][:12]}... "
            f"({info['weights']['origin']}), not the ones in use now ({weights_sha256[:12]}...): "
            "rerun its reference stage; FIDs from different weights are not comparable"
        )
    with np.load(folder / "stats.npz", allow_pickle=False) as f:
        mu, sigma = f["mu"][:], f["sigma"][:]
    return Reference(np.load(folder / "features.npy", allow_pickle=False), mu, sigma, info)


def load_image_folder(folder: Path) -> tuple[list[str], np.ndarray]:
    """Every PNG of a folder, sorted by name, as one uint8 array (N, H, W, 3); one size required."""
    files = sorted(folder.glob("*.png"))
    if not files:
        raise ValueError(f"{folder}: no PNG images")
    arrays = []
    for f in files:
        with Image.open(f) as im:
            arrays.append(np.asarray(im.convert("RGB")))
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) != 1:
        raise ValueError(f"{folder}: images differ in size {shapes}")
    return [f.name for f in files], np.stack(arrays)
