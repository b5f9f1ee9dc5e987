"""Stage ``compare``: FID, KID, MAE and NWI between two datasets (study A's validity table for NWI).

Reads:  ``data/reference/<reference>/`` and ``data/reference/<candidate>/`` (features of the image
        set ``compare.pairs.<name>.images`` of both: ``train`` splits, or ``all`` images as study A's
        table compares whole datasets), their processed images and splits; ``params.yaml`` sections
        ``inception`` (the feature extractor), ``metrics`` (shared with ``evaluate``) and
        ``compare.pairs.<name>``.
Writes: ``metrics/compare/<name>.json`` (the numbers, :data:`METRICS`) and ``<name>.record.json`` beside
        it (the same with the datasets, counts and the Inception weights): the candidate's images scored as if they were samples of a model
        trained on the reference dataset (FID, KID, MAE to the nearest reference image, NWI = MAE - FID),
        with both datasets' FID floors.  Study A expects an early and a later release of one style to
        score a high NWI and two different styles a low one.  The candidate's Inception features are
        the ones its reference stage stored (same weights, same images, checked), not computed again.
"""

from __future__ import annotations

from pathlib import Path

from animegen import paths
from animegen.artifacts.records import write_result
from animegen.artifacts.reference import read_reference
from animegen.artifacts.split import load_split_images
from animegen.metrics.extractor import load_extractor
from animegen.metrics.suite import MetricSettings, score
from animegen.stages import StageError

METRICS = ("fid", "kid", "kid_std", "mae", "nwi", "memorisation_rate", "floor_fid_reference", "floor_fid_candidate")


def run(params: dict, pair: str, root: Path) -> dict:
    spec = params["compare"]["pairs"][pair]
    settings = MetricSettings.from_params(params["metrics"])
    images = {role: load_split_images(root, spec[role], spec["images"]) for role in ("reference", "candidate")}
    ref_images, cand_images = images["reference"][1], images["candidate"][1]
    if ref_images.shape[1:] != cand_images.shape[1:]:
        raise StageError(f"compare.pairs.{pair}: {spec['reference']} is {ref_images.shape[1:3]} px but "
                         f"{spec['candidate']} is {cand_images.shape[1:3]} px; MAE needs one size")  # fmt: skip
    extractor = load_extractor(params["inception"], root)
    refs = {role: read_reference(root / paths.REFERENCE.format(dataset=spec[role]), extractor.weights.sha256, spec["images"],
                                 images[role][0])
            for role in ("reference", "candidate")}  # fmt: skip
    metrics, _ = score(cand_images, ref_images, refs["reference"], extractor, settings, candidate_features=refs["candidate"].features)
    floors = {role: r.info["floor"] and r.info["floor"]["mean"] for role, r in refs.items()}
    result = {"pair": pair, **spec, **metrics, "floor_fid_reference": floors["reference"],
              "floor_fid_candidate": floors["candidate"], "inception_weights": extractor.weights.provenance(), "inception": extractor.record(),
              "candidate_features": paths.REFERENCE.format(dataset=spec["candidate"])}  # fmt: skip
    write_result(root / paths.COMPARE.format(pair=pair), root / paths.COMPARE_RECORD.format(pair=pair), "compare", result, METRICS)
    return {k: result[k] for k in ("pair", "fid", "mae", "nwi")}
