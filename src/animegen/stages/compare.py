"""Stage ``compare``: FID, KID, MAE and NWI between two datasets (study A's validity table for NWI).

Reads:  ``data/reference/<reference>/`` and ``data/reference/<candidate>/`` (features of both train
        splits), their processed images and splits; ``params.yaml`` sections ``inception`` and
        ``compare`` (its pair ``compare.pairs.<name>``).
Writes: ``metrics/compare/<name>.json``: the candidate's images scored as if they were samples of a model
        trained on the reference dataset (FID, KID, MAE to the nearest reference image, NWI = MAE - FID),
        with both datasets' FID floors.  Study A expects an early and a later release of one style to
        score a high NWI and two different styles a low one.
"""

from __future__ import annotations

from pathlib import Path

from animegen import paths
from animegen.io import write_json_atomic
from animegen.metrics.extractor import load_extractor
from animegen.metrics.reference import read_reference
from animegen.stages import StageError, load_split_images
from animegen.stages.evaluate import score


def run(params: dict, pair: str, root: Path) -> dict:
    c, inc = params["compare"], params["inception"]
    spec = c["pairs"][pair]
    ref_ids, ref_images = load_split_images(root, spec["reference"], "train")
    cand_ids, cand_images = load_split_images(root, spec["candidate"], "train")
    if ref_images.shape[1:] != cand_images.shape[1:]:
        raise StageError(f"compare.pairs.{pair}: {spec['reference']} is {ref_images.shape[1:3]} px but "
                         f"{spec['candidate']} is {cand_images.shape[1:3]} px; MAE needs one size")  # fmt: skip
    net, weights, device = load_extractor(inc, root)
    refs = {}
    for role in ("reference", "candidate"):
        try:
            refs[role] = read_reference(root / paths.REFERENCE.format(dataset=spec[role]), weights.sha256)
        except ValueError as err:
            raise StageError(f"compare {pair}: {err}") from None
    metrics, _ = score(cand_images, ref_images, ref_ids, refs["reference"], net, device, inc["batch_size"],
                       c["kid_subsets"], c["kid_subset_size"], c["seed"], c["memorisation_threshold"])  # fmt: skip
    floors = {role: r.info["floor"] and r.info["floor"]["mean"] for role, r in refs.items()}
    result = {"pair": pair, **spec, **metrics, "floor_fid_reference": floors["reference"],
              "floor_fid_candidate": floors["candidate"], "inception_weights": weights.provenance()}  # fmt: skip
    write_json_atomic(root / paths.COMPARE.format(pair=pair), result)
    return {k: result[k] for k in ("pair", "fid", "mae", "nwi")}
