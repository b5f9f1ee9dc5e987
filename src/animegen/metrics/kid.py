"""Kernel Inception Distance (KID): an unbiased small-sample companion to FID.

KID (Binkowski et al., 2018) is the squared maximum mean discrepancy (MMD^2) between the Inception
features of real and generated images under the cubic polynomial kernel

    k(x, y) = (x . y / d + 1)^3          (d = feature dimension, 2048)

estimated without bias (the within-set sums leave out the diagonal) and averaged over random subsets,
exactly as stylegan2-ada-pytorch (``metrics/kernel_inception_distance.py``) and clean-fid
(``kernel_distance``) do.  For subsets X, Y of size m:

    MMD^2 = [sum_{i != j} k(x_i, x_j) + sum_{i != j} k(y_i, y_j)] / (m (m - 1)) - 2 sum_{i, j} k(x_i, y_j) / m^2

Unlike FID its expectation does not depend on the number of samples, so it suits our 158 reference
images; it can be slightly negative.  Each subset draws m rows without replacement from each set,
m = min(subset_size, n_real, n_gen) (stylegan2-ada and clean-fid cap it the same way; torch-fidelity
refuses smaller sets), recorded in the result.  Subsets come from ``numpy.random.default_rng(seed)``:
per subset, first the real rows, then the generated rows.  The reported std is the population
standard deviation of the per-subset estimates (as torch-fidelity reports it).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class KIDResult:
    mean: float
    std: float
    subset_size: int
    num_subsets: int
    seed: int
    values: np.ndarray  # MMD^2 per subset

    def as_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "subset_size": self.subset_size,
                "num_subsets": self.num_subsets, "seed": self.seed}


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """k(x, y) = (x . y / d + 1)^3 for all pairs of rows."""
    d = x.shape[1]
    return (x @ y.T / d + 1.0) ** 3


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """Unbiased MMD^2 of two equal-size samples under :func:`polynomial_kernel` (stylegan2-ada's estimator)."""
    m = x.shape[0]
    if y.shape[0] != m or m < 2:
        raise ValueError(f"need two samples of the same size >= 2, got {x.shape[0]} and {y.shape[0]}")
    kxx = polynomial_kernel(x, x)
    kyy = polynomial_kernel(y, y)
    kxy = polynomial_kernel(x, y)
    within = (kxx.sum() - np.trace(kxx) + kyy.sum() - np.trace(kyy)) / (m * (m - 1))
    return float(within - 2.0 * kxy.sum() / (m * m))


def kernel_inception_distance(
    real_features: np.ndarray,
    gen_features: np.ndarray,
    num_subsets: int = 100,
    subset_size: int = 1000,
    seed: int = 0,
) -> KIDResult:
    """KID between two feature sets ``(n_real, d)`` and ``(n_gen, d)``: mean and std over subsets."""
    real = np.asarray(real_features, dtype=np.float64)
    gen = np.asarray(gen_features, dtype=np.float64)
    if real.ndim != 2 or gen.ndim != 2 or real.shape[1] != gen.shape[1]:
        raise ValueError(f"feature arrays must be (n, d) with the same d, got {real.shape} and {gen.shape}")
    if not (np.isfinite(real).all() and np.isfinite(gen).all()):
        raise ValueError("features contain NaN or infinite values")
    if num_subsets < 1:
        raise ValueError(f"num_subsets must be >= 1, got {num_subsets}")
    m = min(int(subset_size), real.shape[0], gen.shape[0])
    if m < 2:
        raise ValueError(f"KID needs subsets of at least 2 samples; got subset size {m} "
                         f"(subset_size={subset_size}, n_real={real.shape[0]}, n_gen={gen.shape[0]})")
    rng = np.random.default_rng(seed)
    values = np.empty(num_subsets, dtype=np.float64)
    for i in range(num_subsets):
        x = real[rng.choice(real.shape[0], m, replace=False)]
        y = gen[rng.choice(gen.shape[0], m, replace=False)]
        values[i] = mmd2_unbiased(x, y)
    return KIDResult(mean=float(values.mean()), std=float(values.std()), subset_size=m,
                     num_subsets=num_subsets, seed=seed, values=values)
