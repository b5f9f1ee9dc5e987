"""Stage ``evaluate``: study A's metrics for one model's samples against its dataset's train split.

Reads:  ``data/samples/<name>/``; ``data/reference/<dataset>/`` (features and statistics of the train
        split); ``data/processed/<dataset>/images/`` and ``data/splits/<dataset>.json`` (pixels for MAE);
        ``params.yaml`` sections ``inception`` and ``evaluate``.
Writes: ``metrics/models/<name>.json``: FID (pytorch-fid's Inception, pool3, Frechet distance in the
        stable eigenvalue form), KID (subset size capped by the smaller set), MAE (per sample, mean
        absolute error on the 0-255 scale to its nearest training image; averaged), NWI = MAE - FID, the
        memorisation rate (share of samples with nearest / second-nearest distance below the
        threshold), the dataset's real-vs-real FID floor beside them, and the Inception weights' origin
        and SHA-256.  ``data/evaluate/<name>/``: ``audit.png`` (the samples closest to the training set,
        each beside its nearest training image, distances written on it) and ``nearest.csv``.
Guarantees: outputs appear complete or not at all; statistics made with other weights are refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from animegen import config, paths
from animegen.io import atomic_dir, save_png, write_csv, write_json_atomic
from animegen.metrics.extractor import load_extractor
from animegen.metrics.features import feature_statistics, image_features
from animegen.metrics.fid import frechet_distance
from animegen.metrics.kid import kernel_inception_distance
from animegen.metrics.mae import nearest_train_mae, nwi
from animegen.metrics.reference import load_image_folder, read_reference
from animegen.stages import StageError, load_split_images

AUDIT_SCALE = 128  # audit tiles are enlarged to at least this many pixels (nearest neighbour) for people


def score(candidate: np.ndarray, ref_images: np.ndarray, ref_ids: list[str], reference, net, device,
          batch_size: int, kid_subsets: int, kid_subset_size: int, seed: int, threshold: float):  # fmt: skip
    """FID, KID, MAE and NWI of ``candidate`` images against a reference set (shared with ``compare``)."""
    feats = image_features(net, candidate, batch_size=batch_size, device=device)
    mu, sigma = feature_statistics(feats)
    fid = frechet_distance(mu, sigma, reference.mu, reference.sigma)
    kid = kernel_inception_distance(reference.features, feats, kid_subsets, kid_subset_size, seed)
    mae = nearest_train_mae(candidate, ref_images, threshold=threshold, device=device)
    metrics = {
        "fid": fid, "kid": kid.mean, "kid_std": kid.std, "kid_subset_size": kid.subset_size,
        "kid_subsets": kid.num_subsets, "mae": mae.mae, "nwi": nwi(mae.mae, fid),
        "memorisation_rate": mae.memorisation_rate, "memorisation_threshold": threshold,
        "mae_method": mae.method, "n_candidate": int(len(candidate)), "n_reference": int(len(ref_ids)),
    }  # fmt: skip
    return metrics, mae


def audit_image(samples: np.ndarray, names: list[str], train: np.ndarray, ids: list[str], mae, count: int) -> Image.Image:
    """Rows of [sample | nearest training image] for the ``count`` samples closest to the training set."""
    order = np.argsort(mae.d1, kind="stable")[:count]
    h, w = samples.shape[1:3]
    k = max(1, -(-AUDIT_SCALE // h))
    th, tw, label = h * k, w * k, 26
    canvas = Image.new("RGB", (max(2 * tw + 12, 300), len(order) * (th + label + 6) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for row, i in enumerate(order):
        y = 4 + row * (th + label + 6)
        for col, img in enumerate((samples[i], train[mae.nearest_index[i]])):
            canvas.paste(Image.fromarray(img).resize((tw, th), Image.Resampling.NEAREST), (4 + col * (tw + 4), y))
        draw.text((4, y + th + 1), f"sample {names[i]} | nearest train {ids[mae.nearest_index[i]]}", fill=(0, 0, 0))
        draw.text((4, y + th + 13), f"MAE {mae.d1[i]:.1f}  2nd nearest {mae.d2[i]:.1f}  ratio {mae.ratio[i]:.2f}", fill=(0, 0, 0))
    return canvas


def run(params: dict, name: str, root: Path) -> dict:
    m = config.model(params, name)
    e, inc = params["evaluate"], params["inception"]
    dataset = m["dataset"]
    samples_dir = root / paths.SAMPLES.format(model=name)
    try:
        names, samples = load_image_folder(samples_dir / "images")
    except ValueError as err:
        raise StageError(f"evaluate {name}: {err}") from None
    ids, train = load_split_images(root, dataset, "train")
    if samples.shape[1:] != train.shape[1:]:
        raise StageError(f"evaluate {name}: samples are {samples.shape[1:3]}, {dataset} is {train.shape[1:3]}; resample")
    if len(ids) < 2:
        raise StageError(f"evaluate {name}: {dataset} has {len(ids)} train image(s); nearest/second-nearest needs 2")
    net, weights, device = load_extractor(inc, root)
    try:
        reference = read_reference(root / paths.REFERENCE.format(dataset=dataset), weights.sha256)
    except ValueError as err:
        raise StageError(f"evaluate {name}: {err}") from None
    if reference.info["ids"] != ids:
        raise StageError(f"evaluate {name}: data/reference/{dataset} is out of date with its split; rerun reference")
    metrics, mae = score(samples, train, ids, reference, net, device, inc["batch_size"], e["kid_subsets"],
                         e["kid_subset_size"], e["seed"], e["memorisation_threshold"])  # fmt: skip
    sample_info = json.loads((samples_dir / "sample.json").read_text())
    result = {
        "model": name, "family": m["family"], "dataset": dataset, **metrics,
        "floor_fid": reference.info["floor"] and reference.info["floor"]["mean"],
        "floor_fid_std": reference.info["floor"] and reference.info["floor"]["std"],
        "trained_steps": sample_info["trained_steps"], "inception_weights": weights.provenance(),
    }  # fmt: skip
    with atomic_dir(root / paths.EVALUATE.format(model=name)) as tmp:
        save_png(audit_image(samples, names, train, ids, mae, e["audit_count"]), tmp / "audit.png")
        rows = [
            {"sample": n, "nearest_train_id": ids[j], "mae_nearest": round(float(a), 4), "mae_second": round(float(b), 4),
             "ratio": round(float(r), 4), "memorised": bool(r < e["memorisation_threshold"])}
            for n, j, a, b, r in zip(names, mae.nearest_index, mae.d1, mae.d2, mae.ratio)
        ]  # fmt: skip
        write_csv(tmp / "nearest.csv", list(rows[0]), rows)
    write_json_atomic(root / paths.MODEL_METRICS.format(model=name), result)
    return {k: result[k] for k in ("model", "fid", "kid", "mae", "nwi", "memorisation_rate")}
