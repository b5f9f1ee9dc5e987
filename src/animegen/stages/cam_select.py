"""Stage ``cam_select``: score every train image of a dataset by its Grad-CAM and select training images.

Reads:  ``data/cam/classifiers/<classifier>/classifier.pt``; the train split of ``dataset``
        (``data/processed/<dataset>/``: images and manifest, ``data/splits/<dataset>.json``);
        ``params.yaml`` sections ``cam_select.<name>`` and ``cam`` (device and threads, shared with
        ``cam_classifier``).
Writes: ``data/splits/<name>.json`` (the selection: ``train`` = the kept ids, ``test`` = the dataset's
        test split) and ``data/splits/<name>_random.json`` (study C's control: as many ids drawn at
        random), which a model trains on with ``models.<m>.split``;
        ``data/cam/selections/<name>/`` with ``scores.csv`` (every image: rank, score, kept, in the random
        control, p(target), and, where the manifest records face parts, the CAM mass on the true parts),
        ``overlay_top.png`` and ``overlay_bottom.png`` (heat maps on the most and least concentrated
        images, scored regions outlined); ``metrics/cam/selections/<name>.json`` (what was kept and the
        evidence: mean scores, and on data with recorded parts the CAM mass on them against their area).
Regions: ``regions`` items are boxes ``[x0, y0, x1, y1]`` in normalised image coordinates (fixed, for
aligned faces) or names of parts recorded per image in the processed manifest's ``extra.parts`` (the
synthetic demo data records ``face``, ``left_eye``, ``right_eye``, ``mouth``); an image without a named
part stops the stage, naming the image.
"""

from __future__ import annotations

import math
import sys
from pathlib import Path

import numpy as np

from animegen import paths
from animegen.artifacts.images import read_manifest
from animegen.artifacts.records import write_metrics
from animegen.artifacts.split import load_split_images, split_ids, write_split
from animegen.cam import scores as sc
from animegen.device import setup as device_setup
from animegen.io import atomic_dir, write_csv, write_json_atomic
from animegen.stages import StageError

PARTS = ("left_eye", "right_eye", "mouth")  # the evidence boxes, when the manifest records them
COLUMNS = ["rank", "id", "score", "selected", "random_control", "p_target", "parts_mass", "parts_area", "clarity"]


def _extras(root: Path, dataset: str) -> dict[str, dict]:
    return {r["id"]: r.get("extra") or {} for r in read_manifest(root / paths.PROCESSED.format(dataset=dataset))}


def _regions(spec: list, ids: list[str], extras: dict[str, dict], key: str) -> list[list[list[float]]]:
    """Per image, the boxes of ``spec`` (fixed boxes as given, part names looked up in the manifest)."""
    out = []
    for i in ids:
        parts = extras.get(i, {}).get("parts") or {}
        boxes = []
        for r in spec:
            if isinstance(r, str):
                if r not in parts:
                    have = ", ".join(sorted(parts)) or "none"
                    raise StageError(f"{key}.regions: image {i} has no part {r!r} in its manifest (recorded: {have})")
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


def run(params: dict, name: str, root: Path) -> dict:
    from animegen.artifacts.classifier import read_classifier  # noqa: PLC0415 - torch only when run
    from animegen.cam import gradcam  # noqa: PLC0415

    s = params["cam_select"][name]
    key = f"cam_select.{name}"
    ids, images = load_split_images(root, s["dataset"], "train")
    test_ids = split_ids(root, s["dataset"], "test")
    extras = _extras(root, s["dataset"])
    regions = _regions(s["regions"], ids, extras, key) if s["score"] == "region_mass" else [[] for _ in ids]
    device = device_setup(params["cam"], "cam")
    net, meta = read_classifier(root / paths.CAM_CLASSIFIER.format(classifier=s["classifier"]), device)
    if meta["image_size"] != images.shape[1]:
        raise StageError(f"{key}.dataset: images are {images.shape[1]} px, the classifier was trained at {meta['image_size']}")
    layer_name = s["target_layer"] or meta["default_target_layer"]
    try:
        layer = gradcam.target_layer(net, layer_name)
    except ValueError as e:
        raise StageError(f"{key}.target_layer: {e}") from None
    target = 1 if s["target"] == "positive" else 0
    log = lambda msg: print(f"cam_select {name}: {msg}", file=sys.stderr, flush=True)  # noqa: E731
    log(f"Grad-CAM of class {meta['classes'][str(target)]!r} at layer {layer_name} on {len(ids)} images of {s['dataset']}")
    cams, p_target = gradcam.maps(net, layer, images, meta["arch"], target, device, s["batch_size"])

    values = [sc.score(m, s["score"], b, s["topk_percent"]) for m, b in zip(cams, regions)]
    try:
        kept = sc.select(ids, values, s["score"], s["select"], s["n"], s["threshold"])
    except ValueError as e:
        raise StageError(f"{key}.n: {e} (the train split of {s['dataset']} has {len(ids)} images)") from None
    if not kept:
        raise StageError(f"{key}.threshold: no image reaches {s['threshold']} (scores from "
                         f"{np.nanmin(values):.4f} to {np.nanmax(values):.4f})")  # fmt: skip
    control = sc.random_control(ids, len(kept), s["seed"])

    has_parts = all(all(p in (extras.get(i, {}).get("parts") or {}) for p in PARTS) for i in ids)
    part_boxes = [[extras[i]["parts"][p] for p in PARTS] for i in ids] if has_parts else None
    parts_mass = [sc.region_mass(m, b) for m, b in zip(cams, part_boxes)] if has_parts else [None] * len(ids)
    h, w = cams.shape[1:]
    parts_area = [sc.area_share(b, h, w) for b in part_boxes] if has_parts else [None] * len(ids)
    clarity = [extras.get(i, {}).get("clarity") for i in ids]
    has_clarity = all(c is not None for c in clarity)

    kept_set, control_set = set(kept), set(control)
    rank = _full_rank(ids, values, s["score"])
    rows = sorted(
        ({"rank": rank[i], "id": i, "score": _rounded(v), "selected": i in kept_set, "random_control": i in control_set,
          "p_target": _rounded(p), "parts_mass": _rounded(pm), "parts_area": _rounded(pa), "clarity": cl}
         for i, v, p, pm, pa, cl in zip(ids, values, p_target, parts_mass, parts_area, clarity)),
        key=lambda r: r["rank"],
    )  # fmt: skip

    index = {i: k for k, i in enumerate(ids)}
    by_rank = [index[r["id"]] for r in rows]
    count = min(s["overlay_count"], len(ids))
    higher = sc.HIGHER_IS_MORE_CONCENTRATED[s["score"]]
    metrics = {
        "selection": name, "classifier": s["classifier"], "dataset": s["dataset"], "target": s["target"],
        "target_layer": layer_name, "score": s["score"], "select": s["select"], "n_images": len(ids),
        "n_selected": len(kept), "n_unscored": int(sum(math.isnan(v) for v in values)),
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
        metrics.update(
            clarity_mean_all=_rounded(_mean(clarity)),
            clarity_mean_selected=_rounded(_mean(clarity[index[i]] for i in kept)),
            clarity_mean_random=_rounded(_mean(clarity[index[i]] for i in control)),
            spearman_score_clarity=_rounded(sc.spearman(values, clarity) * (1 if higher else -1)),
        )

    with atomic_dir(root / paths.CAM_SELECTION.format(selection=name)) as tmp:
        write_csv(tmp / "scores.csv", COLUMNS, rows)
        for label, picks in (("top", by_rank[:count]), ("bottom", by_rank[::-1][:count])):
            if not picks:
                continue
            grid = gradcam.overlay_grid(images[picks], cams[picks], [f"#{rank[ids[k]]} {values[k]:.3f}" for k in picks],
                                        [regions[k] for k in picks])  # fmt: skip
            grid.save(tmp / f"overlay_{label}.png", optimize=False, compress_level=6)
        write_json_atomic(tmp / "selection.json", metrics)
    for ids_kept, kind, path in ((kept, "cam", paths.CAM_SPLIT), (control, "random", paths.CAM_RANDOM_SPLIT)):
        write_split(root / path.format(selection=name), {
            "dataset": s["dataset"], "selection": name, "kind": kind, "n_train": len(ids_kept),
            "n_test": len(test_ids), "train": sorted(ids_kept), "test": test_ids,
        })  # fmt: skip
    write_metrics(root / paths.CAM_SELECTION_METRICS.format(selection=name), metrics)
    return {k: metrics[k] for k in ("selection", "n_images", "n_selected", "cutoff_score")}


def _full_rank(ids: list[str], values: list[float], method: str) -> dict[str, int]:
    """1 = most concentrated; unscored (NaN) images last; ties by id."""
    higher = sc.HIGHER_IS_MORE_CONCENTRATED[method]

    def order(t):
        i, v = t
        return (1, 0.0, i) if math.isnan(v) else (0, -v if higher else v, i)

    return {i: r for r, (i, _) in enumerate(sorted(zip(ids, values), key=order), 1)}
