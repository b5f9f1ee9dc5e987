"""Inception pool3 features of images and the Gaussian statistics FID is computed from.

FID compares two sets of images through the 2048-d pool3 activations of the FID Inception network
(:mod:`animegen.metrics.inception`), summarised by their mean ``mu`` and covariance ``sigma``.  To get
exactly pytorch-fid's numbers, images are prepared exactly as pytorch-fid's ``ImagePathDataset`` does:
``PIL.Image.open(p).convert('RGB')`` then ``ToTensor`` (a float tensor in [0, 1], no resize here; the
network resizes to 299 x 299 bilinearly).  uint8 arrays ``(N, H, W, 3)`` take the same route from the
pixel values on.  Like pytorch-fid, all images of one call must share one size (different sizes would
be resized differently and cannot be batched); a clear ``ValueError`` says which file differs.

Statistics follow pytorch-fid: ``mu = mean(features, axis=0)``, ``sigma = np.cov(features,
rowvar=False)`` (unbiased, float64).  They are saved as ``.npz`` files with the keys ``mu`` and
``sigma`` (so ``python -m pytorch_fid`` can read them too), a JSON provenance record (the SHA-256 of
the Inception weights, the number of images, a digest of the inputs) and optionally the features
themselves (KID needs them).  Loading can insist on a weights hash, so that statistics made with other
weights are never compared silently, and :func:`cached_stats` reuses a statistics file only when
weights and inputs are unchanged.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence, Union

import numpy as np
import torch
from PIL import Image

from animegen.io import atomic_path

# pytorch-fid's IMAGE_EXTENSIONS (fid_score.py): lower case, matched with glob('*.ext'), not recursive.
IMAGE_EXTENSIONS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")
STATS_FORMAT = "animegen.metrics.features/1"

ImagesLike = Union[Sequence[Union[str, os.PathLike]], np.ndarray, torch.Tensor]


def list_images(folder: str | os.PathLike) -> list[Path]:
    """The image files of ``folder`` exactly as ``python -m pytorch_fid`` picks them (same order)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"not a folder of images: {folder}")
    return sorted(f for ext in IMAGE_EXTENSIONS for f in folder.glob(f"*.{ext}"))


def _uint8_to_tensor(arr: np.ndarray) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float32 in [0, 1], the arithmetic of torchvision's ToTensor."""
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t.permute(0, 3, 1, 2).contiguous().to(torch.float32).div(255)


def _decode(path: str | os.PathLike) -> np.ndarray:
    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"), dtype=np.uint8)


def _image_size(path: str | os.PathLike) -> tuple[int, int]:
    with Image.open(path) as img:  # reads the header only
        return img.size


def _as_uint8_array(images) -> np.ndarray | None:
    if isinstance(images, torch.Tensor):
        images = images.detach().cpu().numpy()
    if not isinstance(images, np.ndarray):
        return None
    if images.dtype != np.uint8:
        raise ValueError(f"image arrays must be uint8 (N, H, W, 3) on the 0-255 scale, got dtype {images.dtype}")
    if images.ndim != 4 or images.shape[-1] != 3:
        raise ValueError(f"image arrays must have shape (N, H, W, 3), got {images.shape}")
    return images


def _check_same_size(paths: Sequence[str | os.PathLike]) -> None:
    first = _image_size(paths[0])
    for p in paths[1:]:
        size = _image_size(p)
        if size != first:
            raise ValueError(f"all images must have the same size (as pytorch-fid requires): {paths[0]} is "
                             f"{first[0]}x{first[1]} but {p} is {size[0]}x{size[1]}; resize them first")


def read_images(paths: Sequence[str | os.PathLike]) -> np.ndarray:
    """Decode image files as pytorch-fid does (``convert('RGB')``) into one uint8 array ``(N, H, W, 3)``.

    All files must share one size (``ValueError`` otherwise).  For the MAE audit and for array inputs.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise ValueError("no images given")
    _check_same_size(paths)
    return np.stack([_decode(p) for p in paths])


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """Disable TF32 for cuDNN convolutions and CUDA matmuls inside the block, restoring the flags after.

    PyTorch enables TF32 for cuDNN convolutions by default, and training code often enables it for
    matmuls too (study A trains with TF32); Inception features would then depend on the GPU model.
    A no-op on the CPU.
    """
    # The fp32_precision API only: torch raises when the legacy allow_tf32 flags and this API are mixed
    # in one process, and the training loop (animegen.train.set_tf32) uses this one.
    conv, mm = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    torch.backends.cudnn.conv.fp32_precision = "ieee"
    torch.backends.cuda.matmul.fp32_precision = "ieee"
    try:
        yield
    finally:
        torch.backends.cudnn.conv.fp32_precision = conv
        torch.backends.cuda.matmul.fp32_precision = mm


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@torch.no_grad()
def image_features(
    model: torch.nn.Module,
    images: ImagesLike,
    batch_size: int = 50,
    device: str | torch.device | None = None,
    progress: bool = False,
    allow_tf32: bool = False,
) -> np.ndarray:
    """Pool3 features ``(N, 2048)`` float64 of image files or of a uint8 array ``(N, H, W, 3)``.

    ``model`` is :func:`animegen.metrics.inception.load_inception`'s network (or pytorch-fid's own
    ``InceptionV3``, whose list output is handled).  ``device`` defaults to the model's device.
    Every image is used (as in pytorch-fid 0.3.0, whose loader has ``drop_last=False``); the last batch
    may be shorter.  Use the same ``batch_size`` as a pytorch-fid run to get bit-identical features.
    On a GPU the network runs in full FP32 (see :func:`full_fp32`) unless ``allow_tf32``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    device = torch.device(device) if device is not None else _model_device(model)
    arr = _as_uint8_array(images)
    if arr is None:
        paths = [Path(p) for p in images]
        if not paths:
            raise ValueError("no images given")
        _check_same_size(paths)
        n = len(paths)
    else:
        if len(arr) == 0:
            raise ValueError("no images given")
        n = len(arr)

    model.eval()
    out = np.empty((n, 0), dtype=np.float64)
    starts = range(0, n, batch_size)
    if progress:
        from tqdm import tqdm

        starts = tqdm(starts, total=(n + batch_size - 1) // batch_size, desc="inception", unit="batch")
    with contextlib.nullcontext() if allow_tf32 else full_fp32():
        for start in starts:
            stop = min(start + batch_size, n)
            batch = arr[start:stop] if arr is not None else np.stack([_decode(p) for p in paths[start:stop]])
            pred = model(_uint8_to_tensor(batch).to(device))
            if isinstance(pred, (list, tuple)):  # pytorch-fid's InceptionV3 returns [tensor (B, 2048, 1, 1)]
                pred = pred[0]
            pred = pred.reshape(pred.shape[0], -1).cpu().numpy()
            if out.shape[1] == 0:
                out = np.empty((n, pred.shape[1]), dtype=np.float64)
            out[start:stop] = pred
    return out


def feature_statistics(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(mu, sigma)`` as pytorch-fid computes them: mean over rows and ``np.cov(rowvar=False)``."""
    features = np.asarray(features, dtype=np.float64)
    if features.ndim != 2:
        raise ValueError(f"features must be a 2-D array (N, D), got shape {features.shape}")
    if features.shape[0] < 2:
        raise ValueError(f"a covariance needs at least 2 feature vectors, got {features.shape[0]}")
    if not np.isfinite(features).all():
        raise ValueError("features contain NaN or infinite values")
    return np.mean(features, axis=0), np.cov(features, rowvar=False)


# --------------------------------------------------------------------------------------- stats files


@dataclass
class FeatureStats:
    """Gaussian statistics of one image set and where they came from."""

    mu: np.ndarray
    sigma: np.ndarray
    n_images: int
    weights_sha256: str
    provenance: dict = field(default_factory=dict)
    features: np.ndarray | None = None  # (n_images, 2048) float64 when kept (KID and exact FID need them)


def images_digest(images: ImagesLike) -> str:
    """SHA-256 identifying an image set by content: file bytes (order and names ignored) or array bytes."""
    arr = _as_uint8_array(images)
    h = hashlib.sha256()
    if arr is not None:
        h.update(f"array:{arr.shape}:".encode())
        h.update(np.ascontiguousarray(arr).tobytes())
        return h.hexdigest()
    file_hashes = sorted(hashlib.sha256(Path(p).read_bytes()).hexdigest() for p in images)
    h.update(f"files:{len(file_hashes)}:".encode())
    for fh in file_hashes:
        h.update(fh.encode())
    return h.hexdigest()


def save_stats(
    path: str | os.PathLike,
    mu: np.ndarray,
    sigma: np.ndarray,
    *,
    n_images: int,
    weights_sha256: str,
    provenance: dict | None = None,
    features: np.ndarray | None = None,
) -> None:
    """Write ``mu``, ``sigma``, a provenance record and optionally the features to ``path`` (.npz) atomically.

    Features are stored as float32 when that is lossless (Inception outputs are float32), else float64.
    """
    mu = np.asarray(mu, dtype=np.float64)
    sigma = np.asarray(sigma, dtype=np.float64)
    if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
        raise ValueError(f"inconsistent statistics: mu {mu.shape}, sigma {sigma.shape}")
    record = dict(provenance or {})
    record.update({"format": STATS_FORMAT, "n_images": int(n_images), "weights_sha256": str(weights_sha256),
                   "dims": int(mu.shape[0])})
    arrays = {"mu": mu, "sigma": sigma, "provenance": np.array(json.dumps(record, sort_keys=True))}
    if features is not None:
        features = np.asarray(features)
        if features.shape != (int(n_images), mu.shape[0]):
            raise ValueError(f"features {features.shape} do not match n_images={n_images}, dims={mu.shape[0]}")
        as32 = features.astype(np.float32)
        arrays["features"] = as32 if np.array_equal(as32, features) else features.astype(np.float64)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:  # a file object: np.savez would append '.npz' to a bare temp name
            np.savez(f, **arrays)


def load_stats(path: str | os.PathLike, expected_weights_sha256: str | None = None) -> FeatureStats:
    """Read a statistics file written by :func:`save_stats`.

    With ``expected_weights_sha256``, statistics made with other Inception weights raise ``ValueError``.
    """
    with np.load(path, allow_pickle=False) as f:
        if "mu" not in f or "sigma" not in f:
            raise ValueError(f"{path}: not a statistics file (needs 'mu' and 'sigma')")
        mu, sigma = f["mu"][:], f["sigma"][:]
        if "provenance" not in f:
            raise ValueError(f"{path}: statistics without provenance (which Inception weights?); "
                             "recompute them with animegen.metrics")
        record = json.loads(str(f["provenance"][()]))
        features = f["features"].astype(np.float64) if "features" in f else None
    stats = FeatureStats(mu=mu, sigma=sigma, n_images=int(record["n_images"]),
                         weights_sha256=str(record["weights_sha256"]), provenance=record, features=features)
    if expected_weights_sha256 is not None and stats.weights_sha256 != expected_weights_sha256:
        raise ValueError(f"{path}: statistics were computed with Inception weights {stats.weights_sha256}, "
                         f"not {expected_weights_sha256}; FIDs from different weights are not comparable")
    return stats


def compute_stats(model: torch.nn.Module, images: ImagesLike, batch_size: int = 50,
                  device: str | torch.device | None = None, progress: bool = False,
                  digest: str | None = None) -> FeatureStats:
    """Features -> statistics of one image set, with provenance (weights hash from ``model.weights``)."""
    feats = image_features(model, images, batch_size=batch_size, device=device, progress=progress)
    mu, sigma = feature_statistics(feats)
    weights = getattr(model, "weights", None)
    sha = getattr(weights, "sha256", "unknown")
    prov = {"weights_origin": getattr(weights, "origin", "unknown"),
            "images_digest": digest if digest is not None else images_digest(images)}
    return FeatureStats(mu=mu, sigma=sigma, n_images=len(feats), weights_sha256=sha, provenance=prov,
                        features=feats)


def cached_stats(path: str | os.PathLike, model: torch.nn.Module, images: ImagesLike, batch_size: int = 50,
                 device: str | torch.device | None = None, progress: bool = False) -> tuple[FeatureStats, bool]:
    """Statistics (and features) of ``images``, reusing ``path`` if made with the same weights and inputs.

    Returns ``(stats, reused)``.  Otherwise computes them and writes ``path`` atomically, features
    included (2048 float32 per image: 1.3 MB for 158 images), so KID and :func:`fid_from_features`
    can use the cached reference set too.
    """
    weights = getattr(model, "weights", None)
    sha = getattr(weights, "sha256", None)
    digest = images_digest(images)
    path = Path(path)
    if sha is not None and path.is_file():
        try:
            stats = load_stats(path, expected_weights_sha256=sha)
            if stats.provenance.get("images_digest") == digest:
                return stats, True
        except Exception:  # noqa: BLE001 - an unreadable or foreign cache file is simply recomputed
            pass
    stats = compute_stats(model, images, batch_size=batch_size, device=device, progress=progress, digest=digest)
    save_stats(path, stats.mu, stats.sigma, n_images=stats.n_images, weights_sha256=stats.weights_sha256,
               provenance=stats.provenance, features=stats.features)
    return stats, False
