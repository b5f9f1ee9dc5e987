"""Frechet Inception Distance (FID) between two sets of Inception features, and its real-vs-real floor.

The FID models each feature set as a Gaussian N(mu, sigma) and computes the Frechet (2-Wasserstein)
distance between the two:

    d^2 = ||mu_1 - mu_2||^2 + Tr(sigma_1 + sigma_2 - 2 sqrt(sigma_1 sigma_2))

pytorch-fid evaluates Tr sqrt(sigma_1 sigma_2) with ``scipy.linalg.sqrtm``, which is slow, has returned
large spurious imaginary parts with some scipy versions, and loses its ``disp`` argument in scipy 1.18.
We use the eigenvalue form instead: sigma_1 sigma_2 is similar to the symmetric positive
semi-definite matrix sigma_1^(1/2) sigma_2 sigma_1^(1/2), so its eigenvalues lambda_i are real and
>= 0, and Tr sqrt(sigma_1 sigma_2) = sum_i sqrt(lambda_i).  torch-fidelity (and this module until
issue 17) hands the non-symmetric product to a general eigensolver; we build the symmetric form from a
symmetric eigendecomposition of one covariance and use a symmetric solver (:class:`FrechetReference`):
about 4x faster at d = 2048 (``benchmarks/fid.py``), real by construction, and the reference side is
prepared once for every set scored against it.  Any solver returns the eigenvalues with rounding
errors of order d * eps * max|lambda| (d = 2048): where the covariances are rank-deficient, hundreds
of eigenvalues of about +-1e-14 that should be exactly 0.  We set every eigenvalue below
d * eps * max|lambda| (the usual numerical-rank threshold, as in ``numpy.linalg.matrix_rank``) to 0.
That covers the negative ones, whose square roots would be imaginary, and also the tiny positive ones:
sqrt has infinite slope at 0, so each spurious 1e-14 would add 1e-7, and ~1900 of them (158
reference images, 2048 dims) would bias FID by ~1e-4.  On 158 vs 200 real Inception feature vectors
this gave the exact value (computed through the 158 x 158 low-rank form) to 1e-7, while pytorch-fid
and torch-fidelity are off by ~7e-5 (and return -6e-5 for a set against itself; we return 0).  On
well-conditioned inputs all eigenvalues are far above the threshold and the result equals
pytorch-fid's to ~1e-12 relative.

With fewer samples than dimensions (158 x 2048) the covariance is singular; the eigenvalue form stays
finite and needs no diagonal offset.  FID is then strongly biased upwards at small N, and the bias
depends on N; :func:`real_vs_real_floor` measures it directly: the FID between two random halves of
one real set, over several splits (mean and standard deviation), to report next to model FIDs.
:func:`fid_from_features` computes FID from raw features, exactly, through the n1 x n2 matrix of
centred cross products (Tr sqrt(sigma_1 sigma_2) is its nuclear norm / sqrt((n1-1)(n2-1))), which is
much faster than a 2048 x 2048 eigenproblem when either set is smaller than the dimension.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from animegen.metrics.features import feature_statistics


def _check(mu1, sigma1, mu2, sigma2):
    mu1 = np.atleast_1d(np.asarray(mu1, dtype=np.float64))
    mu2 = np.atleast_1d(np.asarray(mu2, dtype=np.float64))
    sigma1 = np.atleast_2d(np.asarray(sigma1, dtype=np.float64))
    sigma2 = np.atleast_2d(np.asarray(sigma2, dtype=np.float64))
    if mu1.ndim != 1 or mu1.shape != mu2.shape:
        raise ValueError(f"mean vectors must be 1-D of the same length, got {mu1.shape} and {mu2.shape}")
    d = mu1.shape[0]
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"covariances must be {d} x {d}, got {sigma1.shape} and {sigma2.shape}")
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} contains NaN or infinite values")
    return mu1, sigma1, mu2, sigma2


def _psd_eigenvalues(m: np.ndarray, dim: int) -> np.ndarray:
    """Eigenvalues of the symmetric positive semi-definite ``m`` (a symmetric solver), with every value
    below ``dim * eps * max|lambda|`` (rounding noise of a ``dim``-dimensional problem) set to 0."""
    lam = np.linalg.eigvalsh((m + m.T) / 2.0) if m.size else np.zeros(0)
    tol = dim * np.finfo(np.float64).eps * (float(np.abs(lam).max()) if lam.size else 0.0)
    return np.where(lam > tol, lam, 0.0)


class FrechetReference:
    """The reference side of many Frechet distances, prepared once (a stage scores several candidate sets,
    ``track`` one per snapshot, against one reference).

    With sigma_r = V diag(w) V^T (a symmetric eigendecomposition, once) and the factor F = diag(sqrt w) V^T
    restricted to the numerically non-zero w (k rows, k = rank), sigma_r = F^T F and sigma_r sigma_c is
    similar to the symmetric PSD k x k matrix F sigma_c F^T, so Tr sqrt(sigma_r sigma_c) is the sum of the
    square roots of its eigenvalues: a symmetric solver on a matrix no larger than d x d, instead of a
    general (non-symmetric) one on the d x d product.  When the candidate comes as n < k feature vectors,
    sigma_c = A^T A / (n - 1) (A centred), and the non-zero eigenvalues are those of the n x n matrix
    H H^T / (n - 1) with H = A F^T: exact, and smaller still.  Eigenvalues below the rounding-noise
    threshold d * eps * max are set to 0 on both sides, as explained in the module docstring.
    """

    def __init__(self, mu: np.ndarray, sigma: np.ndarray):
        self.mu, sigma, _, _ = _check(mu, sigma, mu, sigma)
        self.dim = self.mu.shape[0]
        w, v = np.linalg.eigh((sigma + sigma.T) / 2.0)
        keep = w > self.dim * np.finfo(np.float64).eps * float(np.abs(w).max())
        self.factor = (v[:, keep] * np.sqrt(w[keep])).T  # (k, d): sigma = factor^T factor up to rounding
        self.trace = float(np.trace(sigma))

    def distance(self, mu: np.ndarray, sigma: np.ndarray) -> float:
        """FID of the candidate statistics ``(mu, sigma)`` against this reference."""
        mu, sigma, _, _ = _check(mu, sigma, self.mu, np.zeros((self.dim, self.dim)))
        return self._combine(mu, float(np.trace(sigma)), self.factor @ sigma @ self.factor.T)

    def distance_to_features(self, features: np.ndarray) -> float:
        """FID of candidate feature vectors ``(n, d)`` against this reference; equal to ``distance`` of their
        statistics (pytorch-fid's ``np.cov``), through the n x n form when n is below the reference's rank."""
        f = np.asarray(features, dtype=np.float64)
        if f.ndim != 2 or f.shape[1] != self.dim:
            raise ValueError(f"features must be (n, {self.dim}), got {f.shape}")
        if f.shape[0] - 1 >= self.factor.shape[0]:
            return self.distance(*feature_statistics(f))
        mu, a = _centred(f)
        h = a @ self.factor.T
        c = f.shape[0] - 1
        return self._combine(mu, float(np.einsum("ij,ij->", a, a)) / c, h @ h.T / c)

    def _combine(self, mu: np.ndarray, trace: float, similar: np.ndarray) -> float:
        diff = mu - self.mu
        tr_sqrt = float(np.sqrt(_psd_eigenvalues(similar, self.dim)).sum())
        return float(diff @ diff + self.trace + trace - 2.0 * tr_sqrt)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Frechet distance between N(mu1, sigma1) and N(mu2, sigma2) (the FID, given Inception statistics).
    Scoring several sets against one reference: build :class:`FrechetReference` once."""
    mu1, sigma1, mu2, sigma2 = _check(mu1, sigma1, mu2, sigma2)
    return FrechetReference(mu2, sigma2).distance(mu1, sigma1)


def fid_from_features(features1: np.ndarray, features2: np.ndarray) -> float:
    """FID between two feature sets ``(n1, d)`` and ``(n2, d)``; equal to ``frechet_distance`` of their statistics.

    When min(n1, n2) < d it uses the exact low-rank form: with centred features A1, A2 and
    sigma_i = A_i^T A_i / (n_i - 1), the non-zero eigenvalues of sigma1 sigma2 are the squared singular
    values of A1 A2^T / sqrt((n1 - 1)(n2 - 1)).
    """
    f1 = np.asarray(features1, dtype=np.float64)
    f2 = np.asarray(features2, dtype=np.float64)
    if f1.ndim != 2 or f2.ndim != 2 or f1.shape[1] != f2.shape[1]:
        raise ValueError(f"feature arrays must be (n, d) with the same d, got {f1.shape} and {f2.shape}")
    n1, n2, d = f1.shape[0], f2.shape[0], f1.shape[1]
    if min(n1, n2) >= d:
        return frechet_distance(*feature_statistics(f1), *feature_statistics(f2))
    mu1, a1 = _centred(f1)
    mu2, a2 = _centred(f2)
    c1, c2 = n1 - 1, n2 - 1
    singular = np.linalg.svd(a1 @ a2.T, compute_uv=False)
    diff = mu1 - mu2
    tr1 = float(np.einsum("ij,ij->", a1, a1)) / c1
    tr2 = float(np.einsum("ij,ij->", a2, a2)) / c2
    return float(diff @ diff + tr1 + tr2 - 2.0 * singular.sum() / np.sqrt(c1 * c2))


def _centred(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    if f.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 feature vectors, got {f.shape[0]}")
    if not np.isfinite(f).all():
        raise ValueError("features contain NaN or infinite values")
    mu = f.mean(axis=0)
    return mu, f - mu


@dataclass
class FloorResult:
    """Split-half real-vs-real FID: ``values`` per split, their mean and (population) standard deviation."""

    mean: float
    std: float
    values: np.ndarray
    n_per_half: int
    n_splits: int
    seed: int

    def as_dict(self) -> dict:
        return {"mean": self.mean, "std": self.std, "values": [float(v) for v in self.values],
                "n_per_half": self.n_per_half, "n_splits": self.n_splits, "seed": self.seed}


def real_vs_real_floor(features: np.ndarray, seed: int = 0, n_splits: int = 10) -> FloorResult:
    """FID between random halves of one feature set, over ``n_splits`` seeded splits.

    Each split permutes the rows (``numpy.random.default_rng(seed)``) and compares the first
    ``n // 2`` with the next ``n // 2`` (one row is left out when n is odd).  This is the FID a perfect
    sampler of the same distribution would get at this sample size: a small-sample floor to report next
    to model FIDs (which compare 1024 generated images with all n references, so the floor is indicative,
    not subtractable).
    """
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2:
        raise ValueError(f"features must be (n, d), got {f.shape}")
    half = f.shape[0] // 2
    if half < 2:
        raise ValueError(f"need at least 4 feature vectors for a split-half floor, got {f.shape[0]}")
    if n_splits < 1:
        raise ValueError(f"n_splits must be >= 1, got {n_splits}")
    rng = np.random.default_rng(seed)
    values = np.empty(n_splits, dtype=np.float64)
    for i in range(n_splits):
        perm = rng.permutation(f.shape[0])
        values[i] = fid_from_features(f[perm[:half]], f[perm[half:2 * half]])
    return FloorResult(mean=float(values.mean()), std=float(values.std()), values=values,
                       n_per_half=half, n_splits=n_splits, seed=seed)
