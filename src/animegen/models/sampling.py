"""Drawing images from a trained generator: the one sampling loop (stages ``sample`` and ``track``), and the
one translation loop (stages ``translate`` and ``track_translator``)."""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch

from animegen.models.base import GenerativeModel


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, 3, H, W) floats in [0, 1] -> (N, H, W, 3) uint8, rounded as torchvision's save_image does."""
    return images.mul(255).add_(0.5).clamp_(0, 255).to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def iter_samples(model: GenerativeModel, net: torch.nn.Module, n: int, batch_size: int, seed: int,
                 device: torch.device, sample_cfg: dict) -> Iterator[np.ndarray]:  # fmt: skip
    """``n`` images from ``net`` as uint8 batches (B, H, W, 3) of at most ``batch_size``, drawn from torch's
    global generator seeded with ``seed``: the same seed, batch size and device give the same images."""
    torch.manual_seed(seed)
    done = 0
    while done < n:
        b = min(batch_size, n - done)
        yield to_uint8(model.sample(net, b, device, **sample_cfg))
        done += b


def generate(model: GenerativeModel, net: torch.nn.Module, n: int, batch_size: int, seed: int,
             device: torch.device, sample_cfg: dict) -> np.ndarray:  # fmt: skip
    """``n`` uint8 images (N, H, W, 3) at once (see :func:`iter_samples`)."""
    return np.concatenate(list(iter_samples(model, net, n, batch_size, seed, device, sample_cfg)))


def translate_images(model, net: torch.nn.Module, images: np.ndarray, batch_size: int, device: torch.device) -> np.ndarray:
    """uint8 translations (N, H, W, 3) of uint8 ``images`` through ``model.translate(net, x)``, in batches of
    ``batch_size``; a translator draws no random numbers, so the same weights and device give the same images."""
    out = []
    for start in range(0, len(images), batch_size):
        x = torch.from_numpy(images[start : start + batch_size]).to(device).permute(0, 3, 1, 2).float()
        out.append(to_uint8(model.translate(net, x.div(127.5).sub(1.0))))
    return np.concatenate(out)
