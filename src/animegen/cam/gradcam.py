"""Grad-CAM maps of a saved classifier with the ``grad-cam`` library, and overlay grids for people.

Pitfalls of the library handled here (see docs/research: translation models, section 5): one
``ClassifierOutputTarget`` per image of a batch (a one-element list silently explains image 0 only);
the constructor switches the model to eval mode (we only hand it a frozen, saved classifier).  Maps
are ReLU'd, min-max scaled per image and resized to the input size by the library
(``scale_cam_image``), so a batch gives the same maps as one image at a time (tested).
"""

from __future__ import annotations

import cv2
import numpy as np
import torch
from PIL import Image, ImageDraw
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.image import show_cam_on_image
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from torch import nn

from animegen.cam import classifier as clf


def maps(net: nn.Module, layer: nn.Module, images: np.ndarray, arch: str, target: int,
         device: torch.device, batch_size: int) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
    """Grad-CAM of class ``target`` for every image: (maps float32 (N, H, W) in [0, 1], p(target) (N,))."""
    out_maps, out_p = [], []
    with GradCAM(model=net, target_layers=[layer]) as cam:
        for start in range(0, len(images), batch_size):
            x = clf.prepare(clf.to_tensor(images[start : start + batch_size], device), arch)
            # activations need a graph even though the weights are frozen
            x.requires_grad_(True)
            m = cam(input_tensor=x, targets=[ClassifierOutputTarget(target) for _ in range(len(x))])
            out_maps.append(np.asarray(m, dtype=np.float32))
            out_p.append(torch.softmax(cam.outputs.detach().float(), dim=1)[:, target].cpu().numpy())
    if not out_maps:
        return np.zeros((0,) + images.shape[1:3], dtype=np.float32), np.zeros(0, dtype=np.float32)
    return np.concatenate(out_maps), np.concatenate(out_p)


def overlay_grid(images: np.ndarray, cams: np.ndarray, labels: list[str], boxes: list[list] | None = None,
                 cols: int = 8, tile: int = 128) -> Image.Image:  # fmt: skip
    """Heat maps blended over the images (jet, half and half), ``tile`` px each, a label under each tile,
    and the scored regions outlined in white."""
    n = len(images)
    cols = max(1, min(cols, n))
    rows = max(1, -(-n // cols))
    label_h = 14
    sheet = Image.new("RGB", (cols * tile, rows * (tile + label_h)), (0, 0, 0))
    draw = ImageDraw.Draw(sheet)
    for k in range(n):
        img = cv2.resize(images[k], (tile, tile), interpolation=cv2.INTER_NEAREST).astype(np.float32) / 255.0
        heat = cv2.resize(cams[k], (tile, tile), interpolation=cv2.INTER_LINEAR)
        tile_img = Image.fromarray(show_cam_on_image(img, heat, use_rgb=True, image_weight=0.5))
        x, y = (k % cols) * tile, (k // cols) * (tile + label_h)
        sheet.paste(tile_img, (x, y))
        for b in (boxes[k] if boxes else []):
            draw.rectangle([x + b[0] * tile, y + b[1] * tile, x + b[2] * tile - 1, y + b[3] * tile - 1],
                           outline=(255, 255, 255))  # fmt: skip
        draw.text((x + 3, y + tile + 1), labels[k], fill=(230, 230, 230))
    return sheet
