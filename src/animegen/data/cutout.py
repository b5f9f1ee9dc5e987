"""Cut the character out and put it on a black background.

Methods (``CutoutParams.method``):

``alpha``      the image's own alpha channel is the mask (RGBA, LA, palette with transparency);
               an image without transparency is rejected as ``no_alpha``.
``floodfill``  flood fill from the border pixels whose colour matches the border's dominant colour,
               with a floating tolerance (follows smooth gradients; stops at the character's outline,
               so white areas inside the outline stay foreground).
``grabcut``    flood fill, then OpenCV GrabCut refinement seeded with it (``GC_INIT_WITH_MASK``): the
               flood-filled background is definite background, everything else probable foreground,
               so GrabCut can carve out enclosed background (between arm and body) and clean edges.


Flood fill and GrabCut work on a copy whose longer side is at most ``work_max_side`` (area
downsampling) and their mask is scaled back: GrabCut's cost grows with the pixel count (about 1 s
at 1024 px), and a floating-range flood fill leaks through the soft, many-pixel-wide outlines of
large or upscaled images, which downsampling makes sharp again.
               When the flood fill covers less than ``border_match`` of the border (textured
               backgrounds) or leaks into the figure (leaves less than ``min_foreground``), GrabCut
               starts from a rectangle ``grabcut_margin`` inside the image instead (``grabcut_rect``).
``onnx``       a segmentation model (e.g. an anime ISNet exported to ONNX) loaded from a local path.
``auto``       alpha when the image has transparency, else onnx when a model is configured, else grabcut.
``none``       no cutout: the image goes on as collect decoded it (a transparent image is composited onto
               black, the pipeline's background), its mask covers everything, and no foreground check
               applies.  Study A trains on its icons as they are; study B's baseline keeps backgrounds.

The method actually used is returned with the result and recorded per image.  A mask covering less
than ``min_foreground`` or more than ``max_foreground`` of the image is a failed cutout
(``cutout_empty`` / ``cutout_no_background``), never passed on silently.

Plausibility (the gate, :class:`GateParams`, ``cutout.gate`` in params).  An automatic cutout
(flood fill, GrabCut, ONNX) can carve skin or hair the colour of the background out of a face and still
cover a plausible share of the image: eyes left floating on black, half a face gone.  Every such cutout
gets four measures (:func:`plausibility`, on the working-size mask):

``largest_part``  share of the foreground in its largest 8-connected piece (floating eyes: low)
``holes``         background enclosed by the foreground, as a share of the filled outline (a face's
                  skin carved out inside its hair: high)
``border``        share of the image border that is foreground (a figure cut by the frame, or a
                  background kept: high)
``seed_kept``     GrabCut started from the flood fill: the share of the fill's foreground GrabCut kept
                  (it removed a colour region the outline enclosed: low); absent otherwise

:func:`suspicions` names the ones past their threshold; the stage rejects the image as
``cutout_suspect`` (``action: reject``) or keeps it marked (``flag``).  :func:`plausibility_margin`
is the smallest measure-to-threshold ratio (below 1: suspect), by which the contact sheet sorts.
``alpha`` and ``none`` are not judged: the image's own transparency, or no cutout, is the user's choice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from animegen.io import Rejected

cv2.setNumThreads(1)  # the orchestrators run one job per core; OpenCV's own pool would oversubscribe


@dataclass(frozen=True)
class CutoutParams:
    method: str = "auto"
    flood_tolerance: int = 4
    border_match: float = 0.6
    grabcut_iterations: int = 4
    grabcut_margin: float = 0.03
    work_max_side: int = 384
    min_foreground: float = 0.02
    max_foreground: float = 0.97


@dataclass(frozen=True)
class GateParams:
    action: str = "reject"  # reject | flag | off
    min_largest_part: float = 0.9
    max_holes: float = 0.1
    max_border: float = 0.25
    min_seed_kept: float = 0.0  # not judged: on textured backgrounds GrabCut rightly drops much of the fill
    contact_sheet: int = 24  # rows of the stage's contact sheet (worst first); 0 = none


@dataclass
class Cutout:
    rgb: np.ndarray  # H x W x 3 uint8, background black
    mask: np.ndarray  # H x W uint8, 0 background .. 255 foreground
    method: str
    checks: dict[str, float] = field(default_factory=dict)  # plausibility() of automatic methods, else {}

    @property
    def foreground_fraction(self) -> float:
        return float((self.mask > 127).mean())


def apply_mask(rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Put ``rgb`` on black using a (soft) 0..255 mask."""
    return ((rgb.astype(np.uint16) * mask[..., None].astype(np.uint16) + 127) // 255).astype(np.uint8)


def _border(arr: np.ndarray) -> np.ndarray:
    return np.concatenate([arr[0], arr[-1], arr[1:-1, 0], arr[1:-1, -1]])


def _border_coords(h: int, w: int):
    ys = np.concatenate([np.zeros(w, int), np.full(w, h - 1), np.arange(1, h - 1), np.arange(1, h - 1)])
    xs = np.concatenate([np.arange(w), np.arange(w), np.zeros(h - 2, int), np.full(h - 2, w - 1)])
    return ys, xs


def flood_background(rgb: np.ndarray, tolerance: int) -> tuple[np.ndarray, float]:
    """Background mask (bool) reached from the border, and the share of border pixels it covers."""
    h, w = rgb.shape[:2]
    border = _border(rgb).astype(np.int16)
    ref = np.median(border, axis=0)
    seed_ok = np.abs(border - ref).max(axis=1) <= 3 * tolerance
    ff_mask = np.zeros((h + 2, w + 2), np.uint8)
    img = rgb.copy()  # floodFill wants a writable image even with FLOODFILL_MASK_ONLY
    flags = 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8)
    lo = up = (tolerance, tolerance, tolerance)
    for y, x, ok in zip(*_border_coords(h, w), seed_ok):
        if ok and not ff_mask[y + 1, x + 1]:
            cv2.floodFill(img, ff_mask, (int(x), int(y)), 0, lo, up, flags)
    bg = ff_mask[1:-1, 1:-1].astype(bool)
    return bg, float(_border(bg).mean())


def rect_inset(w: int, h: int, margin: float) -> tuple[int, int]:
    """The (x, y) inset in pixels of GrabCut's starting rectangle."""
    return max(1, round(w * margin)), max(1, round(h * margin))


def grabcut_refine(rgb: np.ndarray, bg: np.ndarray | None, iterations: int, margin: float) -> np.ndarray:
    """Foreground mask (bool) from GrabCut seeded with a background mask, or with a rectangle."""
    h, w = rgb.shape[:2]
    bgd, fgd = np.zeros((1, 65), np.float64), np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    # GrabCut's GMMs start from k-means on OpenCV's per-thread RNG: seeded per image, a result depends on
    # the image alone, not on how many images this process cut before (tested: one worker vs two)
    cv2.setRNGSeed(0)
    if bg is not None:
        mask = np.where(bg, cv2.GC_BGD, cv2.GC_PR_FGD).astype(np.uint8)
        cv2.grabCut(bgr, mask, None, bgd, fgd, iterations, cv2.GC_INIT_WITH_MASK)
    else:
        mx, my = rect_inset(w, h, margin)
        mask = np.zeros((h, w), np.uint8)
        cv2.grabCut(bgr, mask, (mx, my, w - 2 * mx, h - 2 * my), bgd, fgd, iterations, cv2.GC_INIT_WITH_RECT)
    return (mask == cv2.GC_FGD) | (mask == cv2.GC_PR_FGD)


def clean_mask(fg: np.ndarray, min_component: float = 0.002) -> np.ndarray:
    """Drop speckles: components smaller than ``min_component`` of the image area."""
    fg8 = fg.astype(np.uint8)
    n, labels, stats, _ = cv2.connectedComponentsWithStats(fg8, connectivity=8)
    keep = np.zeros(n, bool)
    keep[1:] = stats[1:, cv2.CC_STAT_AREA] >= min_component * fg.size
    return keep[labels]


def plausibility(fg: np.ndarray, seed: np.ndarray | None = None, inset: tuple[int, int] = (0, 0)) -> dict[str, float]:
    """The gate's measures of a foreground mask (bool, H x W, not empty); ``seed`` is the flood fill's
    foreground GrabCut started from, when it did (same shape).  ``inset`` (x, y) moves the frame of the
    ``border`` measure inside the image: GrabCut from a rectangle can never keep the band outside its
    rectangle, so a figure cut by the frame shows as foreground along the rectangle's edge instead."""
    fg8 = fg.astype(np.uint8)
    area = int(fg8.sum())
    _, _, stats, _ = cv2.connectedComponentsWithStats(fg8, connectivity=8)
    largest = int(stats[1:, cv2.CC_STAT_AREA].max()) if len(stats) > 1 else 0
    # background reachable from outside: flood the inverse mask from a one-pixel frame around it
    outside = np.pad(1 - fg8, 1, constant_values=1)
    reach = np.zeros((outside.shape[0] + 2, outside.shape[1] + 2), np.uint8)
    cv2.floodFill(outside, reach, (0, 0), 2, 0, 0, 4 | cv2.FLOODFILL_MASK_ONLY | (1 << 8))
    holes = int(((1 - fg8) & (1 - reach[2:-2, 2:-2])).sum())
    checks = {
        "largest_part": largest / max(area, 1),
        "holes": holes / max(area + holes, 1),
        "border": float(_border(fg[inset[1] : fg.shape[0] - inset[1], inset[0] : fg.shape[1] - inset[0]]).mean()),
    }
    if seed is not None and seed.any():
        checks["seed_kept"] = float((fg & seed).sum() / seed.sum())
    return {k: round(v, 4) for k, v in checks.items()}


# measure -> (threshold key, True if the measure must stay at or above the threshold)
_LIMITS = {"largest_part": ("min_largest_part", True), "holes": ("max_holes", False),
           "border": ("max_border", False), "seed_kept": ("min_seed_kept", True)}  # fmt: skip


def suspicions(checks: dict[str, float], gate: GateParams) -> list[str]:
    """The measures past their threshold, each as ``"holes 0.12 > 0.05"`` (empty: plausible)."""
    out = []
    for name, value in checks.items():
        key, at_least = _LIMITS[name]
        limit = getattr(gate, key)
        if (value < limit) if at_least else (value > limit):
            out.append(f"{name} {value:.3f} {'<' if at_least else '>'} {limit:g}")
    return out


def plausibility_margin(checks: dict[str, float], gate: GateParams) -> float:
    """The smallest ratio of a measure to its threshold, oriented so that below 1 is suspect (a
    "max" measure m with limit L gives (1 - m) / (1 - L)); 9.99 for no measures (not judged)."""
    margins = [9.99]
    for name, value in checks.items():
        key, at_least = _LIMITS[name]
        limit = getattr(gate, key)
        if at_least:
            margins.append(value / limit if limit > 0 else 9.99)
        else:
            margins.append((1.0 - value) / (1.0 - limit) if limit < 1 else 9.99)
    return round(min(margins), 4)


class OnnxSegmenter:
    """A salient-object / anime-segmentation model in ONNX format (e.g. SkyTNT's ``isnetis.onnx``).

    The input is letterboxed onto a black ``size`` x ``size`` square, scaled to [0, 1], NCHW float32;
    the first output is read as a [0, 1] foreground mask, un-letterboxed and resized back.
    """

    def __init__(self, path: str | Path, size: int = 1024):
        try:
            import onnxruntime as ort
        except ImportError as e:  # pragma: no cover - depends on the install
            raise RuntimeError("cutout.onnx_model is set but onnxruntime is not installed: pip install 'animegen[seg]'") from e
        self.path = Path(path)
        self.size = size
        self.session = ort.InferenceSession(str(self.path), providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name

    def __call__(self, rgb: np.ndarray) -> np.ndarray:
        h, w = rgb.shape[:2]
        s = self.size
        scale = s / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
        y0, x0 = (s - nh) // 2, (s - nw) // 2
        canvas = np.zeros((s, s, 3), np.float32)
        canvas[y0 : y0 + nh, x0 : x0 + nw] = cv2.resize(rgb, (nw, nh), interpolation=cv2.INTER_AREA) / 255.0
        out = self.session.run(None, {self.input_name: canvas.transpose(2, 0, 1)[None]})[0]
        m = np.squeeze(np.asarray(out, dtype=np.float32))
        if m.ndim != 2 or m.shape != (s, s):
            raise RuntimeError(f"{self.path.name}: expected a {s}x{s} mask output, got shape {np.shape(out)}")
        m = np.clip(m[y0 : y0 + nh, x0 : x0 + nw], 0.0, 1.0)
        return (cv2.resize(m, (w, h), interpolation=cv2.INTER_LINEAR) * 255).round().astype(np.uint8)


def _checks_at_work_size(fg: np.ndarray, work_max_side: int) -> dict[str, float]:
    """:func:`plausibility` of a full-size mask, measured at most ``work_max_side`` px (as flood fill's)."""
    if not fg.any():
        return {}
    h, w = fg.shape
    scale = min(1.0, work_max_side / max(h, w))
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        fg = cv2.resize(fg.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    return plausibility(fg) if fg.any() else {}


def remove_background(img: Image.Image, p: CutoutParams, segmenter: OnnxSegmenter | None = None) -> Cutout:
    """Cut out the character of ``img`` (mode RGB or RGBA) onto black; raise Rejected on failure."""
    method = p.method
    if method == "auto":
        method = "alpha" if img.mode == "RGBA" else ("onnx" if segmenter is not None else "grabcut")
    rgb = np.asarray(img.convert("RGB"))
    if method == "none":
        if img.mode == "RGBA":
            rgb = apply_mask(rgb, np.asarray(img.getchannel("A")))
        return Cutout(rgb, np.full(rgb.shape[:2], 255, np.uint8), "none")
    checks: dict[str, float] = {}
    if method == "alpha":
        if img.mode != "RGBA":
            raise Rejected("no_alpha", "cutout.method is 'alpha' but the image has no transparency")
        mask = np.asarray(img.getchannel("A")).copy()
    elif method == "onnx":
        if segmenter is None:
            raise ValueError("method 'onnx' needs a segmenter")
        mask = segmenter(rgb)
        checks = _checks_at_work_size(mask > 127, p.work_max_side)
    elif method in ("floodfill", "grabcut"):
        h, w = rgb.shape[:2]
        scale = min(1.0, p.work_max_side / max(h, w))
        work = rgb if scale == 1.0 else cv2.resize(
            rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA
        )  # fmt: skip
        bg, border_share = flood_background(work, p.flood_tolerance)
        fg, seed = ~bg, None
        if method == "grabcut" and p.grabcut_iterations > 0:
            # trust the fill as a seed only if it followed the border and did not leak into the figure
            seeded = border_share >= p.border_match and fg.mean() >= p.min_foreground
            fg = grabcut_refine(work, bg if seeded else None, p.grabcut_iterations, p.grabcut_margin)
            method = "grabcut" if seeded else "grabcut_rect"
            seed = ~bg if seeded else None
        fg = clean_mask(fg)
        inset = rect_inset(work.shape[1], work.shape[0], p.grabcut_margin) if method == "grabcut_rect" else (0, 0)
        checks = plausibility(fg, seed, inset) if fg.any() else {}
        mask = fg.astype(np.uint8) * 255
        if scale != 1.0:
            mask = np.where(cv2.resize(mask, (w, h), interpolation=cv2.INTER_LINEAR) > 127, 255, 0).astype(np.uint8)
    else:
        raise ValueError(f"unknown cutout method {p.method!r}")
    result = Cutout(apply_mask(rgb, mask), mask, method, checks)
    frac = result.foreground_fraction
    if frac < p.min_foreground:
        raise Rejected("cutout_empty", f"{method}: foreground {frac:.3f} < {p.min_foreground}")
    if frac > p.max_foreground:
        raise Rejected("cutout_no_background", f"{method}: foreground {frac:.3f} > {p.max_foreground}")
    return result
