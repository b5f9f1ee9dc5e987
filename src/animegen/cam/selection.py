"""Study C's selection evidence: per image and per selection, what was kept and why we can trust it.

From the Grad-CAM maps and their scores (:mod:`animegen.cam.scores`) this builds the table people read
(``scores.csv``: rank, score, kept, in the random control, p(target), and where the manifest records
face parts, the CAM mass on them, their area and the drawn clarity) and the selection's metrics (mean
scores of all, kept and control images; on data with recorded parts, the CAM mass on them against
their area; with recorded clarity, how the score ranks with it, over the scored images).  Plain
arrays and dicts in and out.
"""

from __future__ import annotations

import math

import numpy as np

from animegen.cam import scores as sc

PARTS = ("left_eye", "right_eye", "mouth")  # the evidence boxes, when the manifest records them
COLUMNS = ["rank", "id", "score", "selected", "random_control", "p_target", "confident", "parts_mass", "parts_area", "clarity"]


def regions_per_image(spec: list, ids: list[str], extras: dict[str, dict]) -> list[list[list[float]]]:
    """Per image, the boxes of ``spec`` (fixed boxes as given, part names looked up in the image's
    manifest ``extra.parts``); ``ValueError`` naming the image and the part when one is not recorded."""
    out = []
    for i in ids:
        parts = extras.get(i, {}).get("parts") or {}
        boxes = []
        for r in spec:
            if isinstance(r, str):
                if r not in parts:
                    have = ", ".join(sorted(parts)) or "none"
                    raise ValueError(f"image {i} has no part {r!r} in its manifest (recorded: {have})")
                boxes.append([float(v) for v in parts[r]])
            else:
                boxes.append([float(v) for v in r])
        out.append(boxes)
    return out


def _mean(values) -> float | None:
    v = [x for x in values if x is not None and not math.isnan(x)]
    return float(np.mean(v)) if v else None


def _rounded(x):
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else round(float(x), 6)


def full_rank(ids: list[str], values: list[float], method: str) -> dict[str, int]:
    """1 = most concentrated; unscored (NaN) images last; ties by id."""
    higher = sc.HIGHER_IS_MORE_CONCENTRATED[method]

    def order(t):
        i, v = t
        return (1, 0.0, i) if math.isnan(v) else (0, -v if higher else v, i)

    return {i: r for r, (i, _) in enumerate(sorted(zip(ids, values), key=order), 1)}


def evidence(ids: list[str], values: list[float], p_target, cams: np.ndarray, extras: dict[str, dict],
             kept: list[str], control: list[str], method: str) -> tuple[list[dict], dict, dict[str, int]]:  # fmt: skip
    """(the rows of ``scores.csv`` by rank, the evidence metrics, each id's rank)."""
    has_parts = all(all(p in (extras.get(i, {}).get("parts") or {}) for p in PARTS) for i in ids)
    part_boxes = [[extras[i]["parts"][p] for p in PARTS] for i in ids] if has_parts else None
    parts_mass = [sc.region_mass(m, b) for m, b in zip(cams, part_boxes)] if has_parts else [None] * len(ids)
    h, w = cams.shape[1:]
    parts_area = [sc.area_share(b, h, w) for b in part_boxes] if has_parts else [None] * len(ids)
    clarity = [extras.get(i, {}).get("clarity") for i in ids]
    has_clarity = all(c is not None for c in clarity)

    kept_set, control_set = set(kept), set(control)
    rank = full_rank(ids, values, method)
    rows = sorted(
        ({"rank": rank[i], "id": i, "score": _rounded(v), "selected": i in kept_set, "random_control": i in control_set,
          "p_target": _rounded(p), "parts_mass": _rounded(pm), "parts_area": _rounded(pa), "clarity": cl}
         for i, v, p, pm, pa, cl in zip(ids, values, p_target, parts_mass, parts_area, clarity)),
        key=lambda r: r["rank"],
    )  # fmt: skip
    index = {i: k for k, i in enumerate(ids)}
    higher = sc.HIGHER_IS_MORE_CONCENTRATED[method]
    metrics = {
        "n_images": len(ids), "n_selected": len(kept), "n_unscored": int(sum(math.isnan(v) for v in values)),
        "cutoff_score": _rounded(values[index[kept[-1]]]),
        "score_mean_all": _rounded(_mean(values)),
        "score_mean_selected": _rounded(_mean(values[index[i]] for i in kept)),
        "score_mean_random": _rounded(_mean(values[index[i]] for i in control)),
        "higher_is_more_concentrated": higher, "p_target_mean": _rounded(float(np.mean(p_target))),
    }  # fmt: skip
    if has_parts:
        mass, area = _mean(parts_mass), _mean(parts_area)
        metrics.update(parts_mass_mean=_rounded(mass), parts_area_mean=_rounded(area),
                       parts_mass_over_area=_rounded(mass / area) if area else None)  # fmt: skip
    if has_clarity:
        # over the scored images: one map without mass (no score) must not blank the statistic
        scored = [k for k, v in enumerate(values) if not math.isnan(v)]
        rho = sc.spearman([values[k] for k in scored], [clarity[k] for k in scored])
        metrics.update(
            clarity_mean_all=_rounded(_mean(clarity)),
            clarity_mean_selected=_rounded(_mean(clarity[index[i]] for i in kept)),
            clarity_mean_random=_rounded(_mean(clarity[index[i]] for i in control)),
            spearman_score_clarity=_rounded(rho * (1 if higher else -1)),
        )
    return rows, metrics, rank
