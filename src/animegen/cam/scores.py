"""How concentrated a class activation map is, and which images a score selects.

Every map is a non-negative float array (H, W), as ``grad-cam`` returns it (ReLU, min-max scaled per
image).  The scores, all in [0, 1]:

* ``region_mass``: the share of the map's mass inside a set of boxes (the "energy-based pointing
  game" of Score-CAM, Wang et al. 2020).  Boxes are ``[x0, y0, x1, y1]`` in normalised image
  coordinates; a pixel belongs to a box when its centre lies inside.  A uniform map scores the
  boxes' area share, a map concentrated in them scores 1.
* ``topk_mass``: the share of the mass in the top ``k`` percent of pixels (label-free).
* ``entropy``: the Shannon entropy of ``map / sum(map)`` divided by ``log(H * W)``: 1 for a uniform
  map, 0 for a single hot pixel.  Lower is more concentrated.

A map with no mass (the class has no positive evidence anywhere) has no defined score: NaN, and it is
never selected.
"""

from __future__ import annotations

import math

import numpy as np

SCORES = ("region_mass", "topk_mass", "entropy")
HIGHER_IS_MORE_CONCENTRATED = {"region_mass": True, "topk_mass": True, "entropy": False}


def box_mask(boxes, height: int, width: int) -> np.ndarray:
    """Boolean (H, W): pixels whose centre lies inside any of the normalised boxes."""
    ys = (np.arange(height) + 0.5) / height
    xs = (np.arange(width) + 0.5) / width
    mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask |= ((ys >= y0) & (ys < y1))[:, None] & ((xs >= x0) & (xs < x1))[None, :]
    return mask


def _check(cam: np.ndarray) -> np.ndarray:
    cam = np.asarray(cam, dtype=np.float64)
    if cam.ndim != 2:
        raise ValueError(f"a map is 2-D (H, W), got shape {cam.shape}")
    if not np.all(np.isfinite(cam)) or cam.min() < 0:
        raise ValueError("a map must be finite and non-negative")
    return cam


def region_mass(cam, boxes) -> float:
    cam = _check(cam)
    total = cam.sum()
    if total <= 0:
        return math.nan
    return float(cam[box_mask(boxes, *cam.shape)].sum() / total)


def area_share(boxes, height: int, width: int) -> float:
    """The share of pixels inside the boxes: what ``region_mass`` of a uniform map is."""
    return float(box_mask(boxes, height, width).mean())


def topk_mass(cam, percent: float) -> float:
    cam = _check(cam)
    total = cam.sum()
    if total <= 0:
        return math.nan
    k = max(1, math.ceil(cam.size * percent / 100.0))
    top = np.partition(cam.ravel(), cam.size - k)[cam.size - k :]
    return float(top.sum() / total)


def entropy(cam) -> float:
    cam = _check(cam)
    total = cam.sum()
    if total <= 0:
        return math.nan
    if cam.size == 1:
        return 0.0
    p = cam.ravel() / total
    p = p[p > 0]
    return float(-(p * np.log(p)).sum() / math.log(cam.size))


def score(cam, method: str, boxes=(), topk_percent: float = 10.0) -> float:
    if method == "region_mass":
        return region_mass(cam, boxes)
    if method == "topk_mass":
        return topk_mass(cam, topk_percent)
    if method == "entropy":
        return entropy(cam)
    raise ValueError(f"unknown score {method!r}; expected one of {', '.join(SCORES)}")


def select(ids: list[str], scores: list[float], method: str, mode: str, n: int | None = None,
           threshold: float | None = None) -> list[str]:  # fmt: skip
    """The selected ids, most concentrated first (ties broken by id, so the order is stable).

    ``mode`` top_n keeps the ``n`` most concentrated images; ``threshold`` keeps every image at or
    above it (at or below it for ``entropy``).  NaN scores are never kept.
    """
    if len(ids) != len(scores):
        raise ValueError("one score per id")
    higher = HIGHER_IS_MORE_CONCENTRATED[method]
    ranked = sorted(
        ((s, i) for i, s in zip(ids, scores) if not math.isnan(s)), key=lambda t: (-t[0] if higher else t[0], t[1])
    )
    if mode == "top_n":
        if n is None or n < 1:
            raise ValueError("top_n needs n >= 1")
        if n > len(ranked):
            raise ValueError(f"top_n asks for {n} images but only {len(ranked)} have a score")
        return [i for _, i in ranked[:n]]
    if mode == "threshold":
        if threshold is None:
            raise ValueError("threshold mode needs a threshold")
        return [i for s, i in ranked if (s >= threshold if higher else s <= threshold)]
    raise ValueError(f"unknown selection mode {mode!r}")


def random_control(ids: list[str], size: int, seed: int) -> list[str]:
    """``size`` ids drawn uniformly without replacement (study C's random baseline), sorted."""
    if size > len(ids):
        raise ValueError(f"cannot draw {size} of {len(ids)} ids")
    rng = np.random.default_rng(seed)
    return sorted(np.asarray(sorted(ids))[rng.choice(len(ids), size=size, replace=False)].tolist())


def spearman(a, b) -> float:
    """Spearman's rank correlation (average ranks for ties); NaN when either side is constant."""
    from scipy.stats import spearmanr  # noqa: PLC0415 - only the selection metrics need scipy

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return math.nan
    return float(spearmanr(a, b).statistic)
