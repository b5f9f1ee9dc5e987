"""A share of images with a property and its bootstrap 95 % interval: study C's **character ratio**
(the share of translated test images a classifier assigns to the target class; CycleGAN 0.72 vs
CycleGAN + CAM 0.76 on 50 test images, a difference well inside the interval at that size).

The interval is the percentile bootstrap: ``resamples`` draws of n images with replacement from a
generator seeded by ``seed``, the 2.5th and 97.5th percentiles of their shares.  Seeded, it is the same
on every machine.
"""

from __future__ import annotations

import numpy as np


def share_with_interval(hits: np.ndarray, resamples: int, seed: int) -> dict:
    """``{"share", "ci95_low", "ci95_high", "n"}`` of a boolean vector (an empty one has no share)."""
    hits = np.asarray(hits, dtype=bool)
    n = int(hits.size)
    if n == 0:
        return {"share": None, "ci95_low": None, "ci95_high": None, "n": 0}
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, n, size=(resamples, n))
    shares = hits[draws].mean(axis=1)
    low, high = np.percentile(shares, [2.5, 97.5])
    return {"share": float(hits.mean()), "ci95_low": float(low), "ci95_high": float(high), "n": n}
