"""Inception pool3 features of images and the Gaussian statistics FID is computed from.

FID compares two sets of images through the 2048-d pool3 activations of the FID Inception network
(:mod:`animegen.metrics.inception`), summarised by their mean ``mu`` and covariance ``sigma``.  To get
exactly pytorch-fid's numbers, images are prepared exactly as pytorch-fid's ``ImagePathDataset`` does:
``PIL.Image.open(p).convert('RGB')`` then ``ToTensor`` (a float tensor in [0, 1], no resize here; the
network resizes to 299 x 299 bilinearly).  uint8 arrays ``(N, H, W, 3)`` take the same route from the
pixel values on.  Like pytorch-fid, all images of one call must share one size (different sizes would
be resized differently and cannot be batched); a clear ``ValueError`` says which file differs.

Statistics follow pytorch-fid: ``mu = mean(features, axis=0)``, ``sigma = np.cov(features,
rowvar=False)`` (unbiased, float64).  The pipeline stores them once per dataset, with the features and
the weights' SHA-256, in the reference stage's folder (:mod:`animegen.artifacts.reference`, the one
format for statistics on disk); every reader checks the weights.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Iterator, Sequence, Union

import numpy as np
import torch
from PIL import Image

from animegen.io import read_image_array

# pytorch-fid's IMAGE_EXTENSIONS (fid_score.py): lower case, matched with glob('*.ext'), not recursive.
IMAGE_EXTENSIONS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")

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
    return np.stack([read_image_array(p) for p in paths])


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """Disable TF32 for cuDNN convolutions and CUDA matmuls inside the block, restoring the flags after.

    PyTorch enables TF32 for cuDNN convolutions by default, and training code often enables it for
    matmuls too (study A trains with TF32); Inception features would then depend on the GPU model.
    A no-op on the CPU.
    """
    # The fp32_precision API only: torch raises when the legacy allow_tf32 flags and this API are mixed
    # in one process, and the training loop (animegen.device.set_tf32) uses this one.
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
            batch = arr[start:stop] if arr is not None else np.stack([read_image_array(p) for p in paths[start:stop]])
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
