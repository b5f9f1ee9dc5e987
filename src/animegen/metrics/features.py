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
from collections import deque
from concurrent.futures import ThreadPoolExecutor
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
    with ThreadPoolExecutor(_decode_workers(), thread_name_prefix="decode") as pool:
        return np.stack(list(pool.map(read_image_array, paths)))


@contextlib.contextmanager
def fp32_precision(mode: str) -> Iterator[None]:
    """cuDNN convolutions and CUDA float32 matmuls in ``mode`` (``"ieee"``: full FP32, or ``"tf32"``) inside
    the block, restoring the flags after.  A no-op on the CPU."""
    # The fp32_precision API only: torch raises when the legacy allow_tf32 flags and this API are mixed
    # in one process, and the training loop (animegen.device.set_tf32) uses this one.
    conv, mm = torch.backends.cudnn.conv.fp32_precision, torch.backends.cuda.matmul.fp32_precision
    torch.backends.cudnn.conv.fp32_precision = mode
    torch.backends.cuda.matmul.fp32_precision = mode
    try:
        yield
    finally:
        torch.backends.cudnn.conv.fp32_precision = conv
        torch.backends.cuda.matmul.fp32_precision = mm


def full_fp32() -> "contextlib.AbstractContextManager[None]":
    """Disable TF32 for cuDNN convolutions and CUDA matmuls inside the block, restoring the flags after.

    PyTorch enables TF32 for cuDNN convolutions by default, and training code often enables it for
    matmuls too (study A trains with TF32); Inception features would then depend on the GPU model.
    A no-op on the CPU.
    """
    return fp32_precision("ieee")


def _model_device(model: torch.nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _decode_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def _path_batches(paths: Sequence[Path], batch_size: int) -> Iterator[np.ndarray]:
    """The decoded batches of ``paths`` (uint8 (B, H, W, 3)), decoded by a few threads while the caller
    computes: the decodes of the next batch are queued before the current one is handed out (Pillow's
    decoders release the GIL), so decoding overlaps the network instead of preceding it."""
    with ThreadPoolExecutor(_decode_workers(), thread_name_prefix="decode") as pool:
        pending: deque = deque()
        queued = 0

        def fill(upto: int) -> int:
            nonlocal queued
            while queued < min(upto, len(paths)):
                pending.append(pool.submit(read_image_array, paths[queued]))
                queued += 1
            return queued

        for start in range(0, len(paths), batch_size):
            stop = min(start + batch_size, len(paths))
            fill(stop)
            batch = np.stack([pending.popleft().result() for _ in range(stop - start)])
            fill(stop + batch_size)  # the next batch decodes while this one runs
            yield batch


def _to_device(batch: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (B, H, W, 3) -> float32 (B, 3, H, W) in [0, 1] on ``device``; on a GPU the uint8 pixels travel
    (4x less than floats, from pinned memory, asynchronously) and are converted there."""
    t = torch.from_numpy(np.ascontiguousarray(batch))
    if device.type == "cuda":
        t = t.pin_memory().to(device, non_blocking=True)
        return t.permute(0, 3, 1, 2).to(torch.float32).div(255)
    return _uint8_to_tensor(batch)


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

    ``model`` is :func:`animegen.metrics.inception.load_inception`'s network, the stages' prepared one
    (:class:`animegen.metrics.extractor.InferenceInception`, which applies its own precision), or
    pytorch-fid's own ``InceptionV3`` (whose list output is handled).  ``device`` defaults to the model's
    device.  Every image is used (as in pytorch-fid 0.3.0, whose loader has ``drop_last=False``); the
    last batch may be shorter.  Files are decoded by a few threads while the network runs.  With the plain
    network and pytorch-fid's batch size the features are bit-identical to a pytorch-fid run.  On a GPU
    the plain network runs in full FP32 (see :func:`full_fp32`) unless ``allow_tf32``.
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
        batches = _path_batches(paths, batch_size)
    else:
        if len(arr) == 0:
            raise ValueError("no images given")
        n = len(arr)
        batches = (arr[start:start + batch_size] for start in range(0, n, batch_size))

    model.eval()
    out = np.empty((n, 0), dtype=np.float64)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, total=(n + batch_size - 1) // batch_size, desc="inception", unit="batch")
    own_precision = allow_tf32 or getattr(model, "handles_precision", False)
    start = 0
    with contextlib.nullcontext() if own_precision else full_fp32():
        for batch in batches:
            pred = model(_to_device(batch, device))
            if isinstance(pred, (list, tuple)):  # pytorch-fid's InceptionV3 returns [tensor (B, 2048, 1, 1)]
                pred = pred[0]
            pred = pred.reshape(pred.shape[0], -1).cpu().numpy()
            if out.shape[1] == 0:
                out = np.empty((n, pred.shape[1]), dtype=np.float64)
            out[start:start + len(pred)] = pred
            start += len(pred)
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
