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
        images, scored regions outlined) and ``selection.json`` (what was kept, the settings and the
        evidence); ``metrics/cam/selections/<name>.json`` (the evidence's numbers: mean scores, and on data
        with recorded parts the CAM mass on them against their area).
Regions: ``regions`` items are boxes ``[x0, y0, x1, y1]`` in normalised image coordinates (fixed, for
aligned faces) or names of parts recorded per image in the processed manifest's ``extra.parts`` (the
synthetic demo data records ``face``, ``left_eye``, ``right_eye``, ``mouth``); an image without a named
part stops the stage, naming the image.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from animegen import paths
from animegen.artifacts.images import read_manifest
from animegen.artifacts.records import pick, write_metrics
from animegen.artifacts.split import load_split_images, split_ids, write_split
from animegen.cam import scores as sc
from animegen.cam.selection import COLUMNS, evidence, regions_per_image
from animegen.device import setup as device_setup
from animegen.io import atomic_dir, write_csv, write_json_atomic
from animegen.stages import StageError

# the evidence a user compares across experiments; names, settings and counts stay in selection.json
METRICS = ("cutoff_score", "score_mean_selected", "score_mean_random", "score_mean_all", "clarity_mean_selected",
           "clarity_mean_random", "clarity_mean_all", "spearman_score_clarity", "p_target_mean", "parts_mass_mean",
           "parts_area_mean", "parts_mass_over_area")  # fmt: skip


def run(params: dict, name: str, root: Path) -> dict:
    from animegen.artifacts.classifier import read_classifier  # noqa: PLC0415 - torch only when run
    from animegen.cam import classifier as clf  # noqa: PLC0415
    from animegen.cam import gradcam  # noqa: PLC0415

    s = params["cam_select"][name]
    key = f"cam_select.{name}"
    ids, images = load_split_images(root, s["dataset"], "train")
    test_ids = split_ids(root, s["dataset"], "test")
    manifest = read_manifest(root / paths.PROCESSED.format(dataset=s["dataset"]))
    extras = {r["id"]: r.get("extra") or {} for r in manifest}
    try:
        regions = regions_per_image(s["regions"], ids, extras) if s["score"] == "region_mass" else [[] for _ in ids]
    except ValueError as e:
        raise StageError(f"{key}.regions: {e}") from None
    device = device_setup(params["cam"], "cam")
    net, meta = read_classifier(root / paths.CAM_CLASSIFIER.format(classifier=s["classifier"]), device)
    if meta["image_size"] != images.shape[1]:
        raise StageError(f"{key}.dataset: images are {images.shape[1]} px, the classifier was trained at {meta['image_size']}")
    layer_name = s["target_layer"] or meta["default_target_layer"]
    try:
        layer = clf.target_layer(net, layer_name)
    except ValueError as e:
        raise StageError(f"{key}.target_layer: {e}") from None
    target = 1 if s["target"] == "positive" else 0
    log = lambda msg: print(f"cam_select {name}: {msg}", file=sys.stderr, flush=True)  # noqa: E731
    log(f"Grad-CAM of class {meta['classes'][str(target)]!r} at layer {layer_name} on {len(ids)} images of {s['dataset']}")
    cams, p_target = gradcam.maps(net, layer, images, meta["arch"], target, device, s["batch_size"])

    values = [sc.score(m, s["score"], b, s["topk_percent"]) for m, b in zip(cams, regions)]
    # study C's "recognisable as a face": below the floor an image is neither selected nor drawn for the
    # control, so the two training sets differ in CAM concentration only
    confident = [bool(p >= s["min_confidence"]) for p in p_target]
    eligible = [i for i, ok in zip(ids, confident) if ok]
    try:
        kept = sc.select(ids, [v if ok else float("nan") for v, ok in zip(values, confident)], s["score"], s["select"],
                         s["n"], s["threshold"])  # fmt: skip
    except ValueError as e:
        raise StageError(f"{key}.n: {e} (the train split of {s['dataset']} has {len(ids)} images, {len(eligible)} "
                         f"at or above min_confidence {s['min_confidence']})") from None  # fmt: skip
    if not kept:
        raise StageError(f"{key}.threshold: no image reaches {s['threshold']} (scores from "
                         f"{np.nanmin(values):.4f} to {np.nanmax(values):.4f})")  # fmt: skip
    control = sc.random_control(eligible, len(kept), s["seed"])

    rows, found, rank = evidence(ids, values, p_target, cams, extras, kept, control, s["score"])
    confident_by_id = dict(zip(ids, confident))
    for row in rows:
        row["confident"] = confident_by_id[row["id"]]
    metrics = {
        "selection": name, "classifier": s["classifier"], "dataset": s["dataset"], "target": s["target"],
        "target_layer": layer_name, "score": s["score"], "select": s["select"], "min_confidence": s["min_confidence"],
        "n_below_confidence": len(ids) - len(eligible), **found,
    }  # fmt: skip
    index = {i: k for k, i in enumerate(ids)}
    by_rank = [index[r["id"]] for r in rows]
    count = min(s["overlay_count"], len(ids))

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
    write_metrics(root / paths.CAM_SELECTION_METRICS.format(selection=name), pick(metrics, METRICS))
    return {k: metrics[k] for k in ("selection", "n_images", "n_selected", "cutoff_score")}

