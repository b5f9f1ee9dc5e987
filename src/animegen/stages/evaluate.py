"""Stage ``evaluate``: study A's metrics for one model's samples against its dataset's images.

Reads:  ``data/samples/<name>/``; ``data/reference/<dataset>/`` (features and statistics of the image
        set ``models.<name>.reference``: ``train``, the train split, or ``all``, train and test as study
        A measures); ``data/processed/<dataset>/images/`` and ``data/splits/<dataset>.json`` (pixels for
        MAE);
        ``params.yaml`` sections ``inception`` (the feature extractor), ``metrics`` (KID subsets,
        memorisation threshold, seed: shared with ``compare``) and ``evaluate`` (the audit).
Writes: ``metrics/models/<name>.json`` (the numbers, :data:`METRICS`) and ``<name>.record.json`` beside it
        (the same with provenance): FID (pytorch-fid's Inception, pool3, Frechet distance in the
        stable eigenvalue form), KID (subset size capped by the smaller set), MAE (per sample, mean
        absolute error on the 0-255 scale to its nearest reference image; averaged), NWI = MAE - FID, the
        memorisation rate (share of samples with nearest / second-nearest distance below the
        threshold), which image set they were measured against (``reference_images``), that set's
        real-vs-real FID floor beside them, and the Inception weights' origin and SHA-256.
        ``data/evaluate/<name>/``: ``audit.png`` (the samples closest to the training set,
        each beside its nearest training image, distances written on it) and ``nearest.csv``.
Guarantees: outputs appear complete or not at all; statistics made with other weights are refused.
"""

from __future__ import annotations

from pathlib import Path

from animegen import paths
from animegen.artifacts.records import write_result
from animegen.artifacts.reference import read_reference
from animegen.artifacts.samples import read_samples
from animegen.artifacts.split import load_split_images
from animegen.io import atomic_dir, save_png, write_csv
from animegen.metrics.extractor import load_extractor
from animegen.metrics.suite import MetricSettings, score
from animegen.plots import audit_image
from animegen.stages import StageError

# what `dvc metrics diff` / `dvc exp show` compare; names, methods, counts and weights stay in the record
METRICS = ("fid", "kid", "kid_std", "mae", "nwi", "memorisation_rate", "floor_fid", "floor_fid_std")


def run(params: dict, name: str, root: Path) -> dict:
    m = params["models"][name]
    settings = MetricSettings.from_params(params["metrics"])
    dataset = m["dataset"]
    names, samples, sample_info = read_samples(root / paths.SAMPLES.format(model=name))
    against = m["reference"]
    ids, train = load_split_images(root, dataset, against)
    if len(ids) < 2:
        raise StageError(f"evaluate {name}: {dataset} has {len(ids)} image(s) in {against!r}; nearest/second-nearest needs 2")
    if samples.shape[1:] != train.shape[1:]:
        raise StageError(f"evaluate {name}: samples are {samples.shape[1:3]}, {dataset} is {train.shape[1:3]}; resample")
    extractor = load_extractor(params["inception"], root)
    reference = read_reference(root / paths.REFERENCE.format(dataset=dataset), extractor.weights.sha256, against, ids)
    metrics, mae = score(samples, train, reference, extractor, settings)
    result = {
        "model": name, "family": m["family"], "dataset": dataset, "reference_images": against, **metrics,
        "floor_fid": reference.info["floor"] and reference.info["floor"]["mean"],
        "floor_fid_std": reference.info["floor"] and reference.info["floor"]["std"],
        "trained_steps": sample_info["trained_steps"], "inception_weights": extractor.weights.provenance(),
        "inception": extractor.record(),
    }  # fmt: skip
    threshold = settings.memorisation_threshold
    with atomic_dir(root / paths.EVALUATE.format(model=name)) as tmp:
        save_png(audit_image(samples, names, train, ids, mae, params["evaluate"]["audit_count"]), tmp / "audit.png")
        rows = [
            {"sample": n, "nearest_id": ids[j], "mae_nearest": round(float(a), 4), "mae_second": round(float(b), 4),
             "ratio": round(float(r), 4), "memorised": bool(r < threshold)}
            for n, j, a, b, r in zip(names, mae.nearest_index, mae.d1, mae.d2, mae.ratio)
        ]  # fmt: skip
        write_csv(tmp / "nearest.csv", list(rows[0]), rows)
    write_result(root / paths.MODEL_METRICS.format(model=name), root / paths.MODEL_RECORD.format(model=name), "evaluate",
                 result, METRICS)
    return {k: result[k] for k in ("model", "fid", "kid", "mae", "nwi", "memorisation_rate")}
