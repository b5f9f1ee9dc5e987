"""Study A's MAE, the nearest-training-image memorisation audit, and NWI = MAE - FID.

Study A measures how far generated images are from being copies of the training set with a
pixel-level mean absolute error (MAE).  The study does not define the reduction; ours is: for each
generated image g, the MAE on the 0-255 scale to its *nearest* training image,

    d1(g) = min_t  mean_{pixels, channels} |g - t|,

and the reported MAE is the mean of d1 over the generated images.  Images are uint8 arrays of one
common shape (same resolution as the training images; no resizing here).  We also return, per sample,
the index of the nearest training image (to show it next to the sample, as the study does for one
striking sample) and the distance d2 to the second-nearest one.

Memorisation: a sample counts as memorised when d1 / d2 < 1/3 (``threshold``).  The ratio test follows
Gu et al., "On Memorization in Diffusion Models" (sail-sg/DiffMemorize, ``mem_ratio.py``), who use it on
the pixel L2 distance; we apply it to the same MAE (L1) distance that the study reports, so that the
audit, the MAE and the nearest image shown to a user all use one distance.  A copy of a training image
has d1 = 0 and counts; a blend of two training images is about equally far from both (ratio near 1)
and does not.  If d2 = 0 (the sample equals two identical training images) the ratio is defined as 0.

NWI ("new work index") = MAE - FID: high when samples are close in style (low FID) but not copies.

Computation: all generated x training distances are exact integer sums of |a - b| over H*W*C uint8
values, never a matrix product, and never a full distance matrix.  Three kernels give identical integers:

* ``"opencv"`` (the default on the CPU): OpenCV's ``cv2.batchDistance(NORM_L1, K=2)``, which sums
  absolute byte differences with SIMD (sum-of-absolute-differences instructions) in int32 and keeps the
  two nearest per row while it scans, equal distances keeping the lower index; exact while
  H*W*C*255 < 2^31 (up to 1024 x 1024 x 3);
* ``"cdist"`` (the default on a GPU): ``torch.cdist(p=1)`` in float32 (exact while H*W*C*255 < 2^24, i.e.
  up to 128 x 128 x 4; float64 beyond), in bounded chunks; on a GPU a dedicated CUDA kernel;
* ``"absdiff"``: max(a, b) - min(a, b) in uint8 into two reused buffers of ~1 MiB, summed in int64: an
  independent cross-check.

On this project's 2-core CPU (1024 generated x 10,000 training images at 128 px, BENCHMARKS.md):
cdist 156 s; OpenCV about 4x faster (64 x 200 images at 256 px: 0.40 s vs 1.78 s).  ``absdiff`` was
slower than cdist and slowed down 10-40x whenever other jobs shared the cores.  The kernel used is
recorded as ``method`` beside the values.

Memory is bounded whatever the number of images: beyond the two uint8 inputs (read without a copy on
the CPU; the training images are copied once, as uint8, to a GPU), OpenCV holds the two nearest per
row; cdist holds at most two float chunks of ``chunk_bytes`` each (64 MiB on the CPU, 256 MiB on a
GPU), their small block of distances, and ``gen_chunk`` x M int64 sums (20 MiB for 256 x 10,000):
about 150 MiB at most for study scale (1024 generated x 10,000 training images, at 128 or 256 px), where
converting both sets to float32 at once would take 2.2 GiB (128 px) or 8.8 GiB (256 px).
``benchmarks/mae.py`` measures time and peak.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

DEFAULT_THRESHOLD = 1.0 / 3.0
_FLOAT32_EXACT = 2 ** 24
_INT32_EXACT = 2 ** 31


@dataclass
class MAEResult:
    nearest_index: np.ndarray  # (N,) int64: index of the nearest training image
    d1: np.ndarray  # (N,) float64: MAE (0-255) to the nearest training image
    d2: np.ndarray  # (N,) float64: MAE to the second-nearest training image
    ratio: np.ndarray  # (N,) float64: d1 / d2 (0 where d2 == 0)
    mae: float  # mean of d1
    memorisation_rate: float  # share of samples with ratio < threshold
    threshold: float
    method: str

    @property
    def memorised(self) -> np.ndarray:
        return self.ratio < self.threshold

    def as_dict(self) -> dict:
        return {"mae": self.mae, "memorisation_rate": self.memorisation_rate, "threshold": self.threshold,
                "n_generated": int(self.d1.shape[0]), "method": self.method}


def _as_uint8_tensor(x, name: str) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        if x.dtype != np.uint8:
            raise ValueError(f"{name} must be uint8 images on the 0-255 scale, got dtype {x.dtype}")
        t = torch.from_numpy(np.ascontiguousarray(x))
    elif isinstance(x, torch.Tensor):
        if x.dtype != torch.uint8:
            raise ValueError(f"{name} must be uint8 images on the 0-255 scale, got dtype {x.dtype}")
        t = x
    else:
        raise TypeError(f"{name} must be a uint8 numpy array or torch tensor, got {type(x).__name__}")
    if t.ndim < 2:
        raise ValueError(f"{name} must be a stack of images (N, H, W[, C]), got shape {tuple(t.shape)}")
    return t


def pairwise_l1_sums(
    generated: torch.Tensor,
    train: torch.Tensor,
    method: str = "cdist",
    chunk_bytes: int | None = None,
) -> torch.Tensor:
    """Exact sum_k |g_k - t_k| for all pairs of rows of two flattened uint8 matrices: ``(Ng, Nt)`` int64."""
    ng, d = generated.shape
    nt = train.shape[0]
    out = torch.empty((ng, nt), dtype=torch.int64, device=generated.device)
    on_gpu = generated.device.type != "cpu"
    if method == "cdist":
        dtype = torch.float32 if d * 255 < _FLOAT32_EXACT else torch.float64
        budget = chunk_bytes or (256 << 20 if on_gpu else 64 << 20)
        tc = max(1, min(nt, budget // (d * dtype.itemsize)))
        gc = max(1, min(ng, budget // (d * dtype.itemsize)))
        for i in range(0, ng, gc):
            g = generated[i:i + gc].to(dtype)
            for j in range(0, nt, tc):
                dist = torch.cdist(g, train[j:j + tc].to(dtype), p=1)
                out[i:i + gc, j:j + tc] = dist.round().to(torch.int64)
    elif method == "absdiff":
        budget = chunk_bytes or (256 << 20 if on_gpu else 1 << 20)
        tc = max(1, min(nt, budget // d))
        gc = max(1, min(ng, budget // (d * tc)))
        # two reused uint8 buffers: |a - b| = max(a, b) - min(a, b) never overflows and allocates nothing
        hi = torch.empty(gc * tc * d, dtype=torch.uint8, device=generated.device)
        lo = torch.empty_like(hi)
        for i in range(0, ng, gc):
            g = generated[i:i + gc, None, :]
            for j in range(0, nt, tc):
                t = train[None, j:j + tc, :]
                shape = (g.shape[0], t.shape[1], d)
                n = shape[0] * shape[1] * d
                h, lw = hi[:n].view(shape), lo[:n].view(shape)
                torch.maximum(g, t, out=h)
                torch.minimum(g, t, out=lw)
                out[i:i + gc, j:j + tc] = h.sub_(lw).sum(-1, dtype=torch.int64)
    else:
        raise ValueError(f"unknown method {method!r}: use 'opencv', 'absdiff', 'cdist' or 'auto'")
    return out


def memorisation_rate(d1: np.ndarray, d2: np.ndarray, threshold: float = DEFAULT_THRESHOLD) -> float:
    """Share of samples with d1 / d2 < threshold (d1/d2 taken as 0 where d2 == 0)."""
    return float(np.mean(_ratio(np.asarray(d1, float), np.asarray(d2, float)) < threshold))


def _ratio(d1: np.ndarray, d2: np.ndarray) -> np.ndarray:
    return np.divide(d1, d2, out=np.zeros_like(d1, dtype=np.float64), where=d2 > 0)


@torch.no_grad()
def nearest_train_mae(
    generated,
    train,
    threshold: float = DEFAULT_THRESHOLD,
    device: str | torch.device = "cpu",
    method: str = "auto",
    gen_chunk: int = 256,
    chunk_bytes: int | None = None,
) -> MAEResult:
    """MAE of each generated image to its nearest training image, second-nearest distance, memorisation rate.

    ``generated`` (N, H, W[, C]) and ``train`` (M, H, W[, C]) are uint8 numpy arrays or tensors of one
    shape; M >= 2.  Distances are exact (integer sums divided by H*W*C).  Ties go to the lowest training
    index.  Memory is bounded by ``gen_chunk`` rows of distances and ``chunk_bytes`` per kernel call;
    the training images are moved to ``device`` once, as uint8.
    """
    gen_t = _as_uint8_tensor(generated, "generated")
    train_t = _as_uint8_tensor(train, "train")
    if tuple(gen_t.shape[1:]) != tuple(train_t.shape[1:]):
        raise ValueError(f"generated and training images must have the same shape, got {tuple(gen_t.shape[1:])} "
                         f"and {tuple(train_t.shape[1:])}")
    if train_t.shape[0] < 2:
        raise ValueError(f"need at least 2 training images (nearest and second-nearest), got {train_t.shape[0]}")
    if gen_t.shape[0] < 1:
        raise ValueError("no generated images")
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    device = torch.device(device)
    d = int(np.prod(gen_t.shape[1:]))
    if method == "auto":
        method = "opencv" if device.type == "cpu" and d * 255 < _INT32_EXACT else "cdist"
    if method == "opencv":
        nearest, s1, s2 = _two_nearest_opencv(gen_t, train_t, d, gen_chunk)
    else:
        nearest, s1, s2 = _two_nearest_torch(gen_t, train_t, d, device, method, gen_chunk, chunk_bytes)
    d1 = s1.astype(np.float64) / d
    d2 = s2.astype(np.float64) / d
    ratio = _ratio(d1, d2)
    return MAEResult(nearest_index=nearest, d1=d1, d2=d2, ratio=ratio, mae=float(d1.mean()),
                     memorisation_rate=float(np.mean(ratio < threshold)), threshold=float(threshold),
                     method=method)


def _two_nearest_opencv(gen_t: torch.Tensor, train_t: torch.Tensor, d: int, gen_chunk: int):
    """(nearest index, smallest sum, second-smallest sum) per generated image with OpenCV's
    ``batchDistance(NORM_L1, K=2)``: exact int32 sums of |a - b| over uint8 rows, two nearest kept while
    scanning (equal distances keep the lower index), no distance matrix."""
    import cv2  # noqa: PLC0415 - the CPU kernel only

    if d * 255 >= _INT32_EXACT:
        raise ValueError(f"method 'opencv' sums in int32: {d} values per image can overflow; use 'cdist'")
    train_np = np.ascontiguousarray(train_t.reshape(train_t.shape[0], d).cpu().numpy())
    n = gen_t.shape[0]
    nearest, s1, s2 = (np.empty(n, dtype=np.int64) for _ in range(3))
    for i in range(0, n, gen_chunk):
        g = np.ascontiguousarray(gen_t[i:i + gen_chunk].reshape(-1, d).cpu().numpy())
        dist, idx = cv2.batchDistance(g, train_np, cv2.CV_32S, normType=cv2.NORM_L1, K=2)
        nearest[i:i + len(g)], s1[i:i + len(g)], s2[i:i + len(g)] = idx[:, 0], dist[:, 0], dist[:, 1]
    return nearest, s1, s2


def _two_nearest_torch(gen_t, train_t, d: int, device: torch.device, method: str, gen_chunk: int, chunk_bytes):
    """As :func:`_two_nearest_opencv`, from :func:`pairwise_l1_sums` on ``device`` in bounded chunks."""
    n, m = gen_t.shape[0], train_t.shape[0]
    train_flat = train_t.reshape(m, d).to(device)
    nearest = np.empty(n, dtype=np.int64)
    s1 = np.empty(n, dtype=np.int64)
    s2 = np.empty(n, dtype=np.int64)
    for i in range(0, n, gen_chunk):
        g = gen_t[i:i + gen_chunk].reshape(-1, d).to(device)
        sums = pairwise_l1_sums(g, train_flat, method=method, chunk_bytes=chunk_bytes)
        idx = torch.argmin(sums, dim=1)  # first (lowest) index among ties
        best = sums.gather(1, idx[:, None])[:, 0]
        sums.scatter_(1, idx[:, None], torch.iinfo(torch.int64).max)
        second = sums.min(dim=1).values
        nearest[i:i + len(g)] = idx.cpu().numpy()
        s1[i:i + len(g)] = best.cpu().numpy()
        s2[i:i + len(g)] = second.cpu().numpy()
    return nearest, s1, s2


def nwi(mae: float, fid: float) -> float:
    """Study A's new work index: NWI = MAE - FID."""
    return float(mae) - float(fid)
