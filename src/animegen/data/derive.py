"""What AnimeGAN needs made once per dataset: edge-smoothed style images and face regions of photos.

* :func:`edge_smooth` is the reference's ``tools/edge_smooth.py`` (TachibanaYoshino/AnimeGAN),
  vectorised: Canny edges (100, 200) of the grayscale image, dilated by a ``k`` x ``k`` square, and at
  every edge pixel the Gaussian-weighted (``cv2.getGaussianKernel(k, 0)``, outer product) sum of the
  ``k`` x ``k`` neighbourhood of the reflect-padded image, truncated to uint8 as its numpy assignment does.
  The discriminator sees these images as "fake", which teaches the generator sharp edges.
* A face region is a box (normalised ``x0, y0, x1, y1``) turned into a mask by :func:`face_mask` (the
  ellipse inscribed in the box, or the box itself).  The box comes either from the image's manifest
  (``boxes``: the synthetic faces record theirs, as they record their part boxes) or from a real face
  detector (``mtcnn``: facenet-pytorch's MTCNN, whose three small networks ship inside its wheel), through
  the same code path.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FACE_SHAPES = ("ellipse", "box")


def edge_smooth(rgb: np.ndarray, kernel_size: int = 5, canny: tuple[int, int] = (100, 200)) -> np.ndarray:
    """The reference's edge-smoothed copy of a uint8 RGB image (H, W, 3)."""
    gray = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    edges = cv2.Canny(gray, canny[0], canny[1])
    dilated = cv2.dilate(edges, np.ones((kernel_size, kernel_size), np.uint8))
    g = cv2.getGaussianKernel(kernel_size, 0)
    blurred = cv2.filter2D(rgb.astype(np.float64), -1, g @ g.T, borderType=cv2.BORDER_REFLECT_101)
    out = rgb.copy()
    at = dilated != 0
    out[at] = blurred[at].astype(np.uint8)  # numpy's float -> uint8 assignment truncates, as the reference's loop
    return out


def face_mask(box, height: int, width: int, shape: str = "ellipse") -> np.ndarray:
    """uint8 (H, W) mask, 255 inside the face region of the normalised ``box`` (None: no face, all 0)."""
    mask = np.zeros((height, width), np.uint8)
    if box is None:
        return mask
    x0, y0, x1, y1 = (float(v) for v in box)
    if shape == "box":
        mask[int(round(y0 * height)) : int(round(y1 * height)), int(round(x0 * width)) : int(round(x1 * width))] = 255
        return mask
    if shape != "ellipse":
        raise ValueError(f"face shape must be one of {', '.join(FACE_SHAPES)}, not {shape!r}")
    yy, xx = np.mgrid[0:height, 0:width]
    cx, cy = (x0 + x1) / 2 * width, (y0 + y1) / 2 * height
    rx, ry = max((x1 - x0) / 2 * width, 0.5), max((y1 - y0) / 2 * height, 0.5)
    mask[((xx + 0.5 - cx) / rx) ** 2 + ((yy + 0.5 - cy) / ry) ** 2 <= 1.0] = 255
    return mask


@dataclass(frozen=True)
class Face:
    box: tuple[float, float, float, float] | None  # normalised; None: no face found
    confidence: float | None


def manifest_face(extra: dict) -> Face:
    """The face box a source recorded for an image (the processed manifest's ``extra.parts.face``)."""
    box = (extra.get("parts") or {}).get("face")
    if box is None:
        return Face(None, None)
    if extra.get("parts_coords") != "normalised_output":
        raise ValueError("the manifest's part boxes are not in the processed image's coordinates")
    return Face(tuple(float(v) for v in box), None)


class MtcnnDetector:
    """facenet-pytorch's MTCNN (P-, R- and O-Net weights from its wheel): the most confident face.

    Images smaller than ``min_side`` px are upscaled first (MTCNN's smallest face is 20 px); the box
    is returned in normalised coordinates, clipped to the image."""

    def __init__(self, min_confidence: float = 0.9, min_side: int = 160, device: str = "cpu"):
        try:
            from facenet_pytorch import MTCNN  # noqa: PLC0415
        except ImportError:
            raise RuntimeError("the mtcnn face detector needs facenet-pytorch (make install: pip install --no-deps "
                               "facenet-pytorch==2.6.0)") from None  # fmt: skip
        self.mtcnn = MTCNN(keep_all=True, device=device, post_process=False)
        self.min_confidence = min_confidence
        self.min_side = min_side

    def __call__(self, rgb: np.ndarray) -> Face:
        from PIL import Image  # noqa: PLC0415

        h, w = rgb.shape[:2]
        scale = max(1.0, self.min_side / min(h, w))
        img = Image.fromarray(rgb)
        if scale > 1.0:
            img = img.resize((round(w * scale), round(h * scale)), Image.Resampling.BICUBIC)
        boxes, probs = self.mtcnn.detect(img)
        if boxes is None:
            return Face(None, None)
        boxes, probs = np.asarray(boxes, float), np.asarray(probs, float)  # object arrays under numpy 2
        best = int(np.argmax(probs))
        if probs[best] < self.min_confidence:
            return Face(None, float(probs[best]))
        W, H = img.size
        x0, y0, x1, y1 = boxes[best]
        box = (max(0.0, x0 / W), max(0.0, y0 / H), min(1.0, x1 / W), min(1.0, y1 / H))
        return Face(tuple(round(float(v), 6) for v in box), float(probs[best]))
