"""Stage ``evaluate_translation``: how well one translator's outputs match the target domain.

Reads:  ``data/translations/<name>/``; ``data/reference/<target.dataset>/`` (Inception features and
        statistics of the target images ``translators.<name>.reference``: its ``train`` split or ``all``
        its images); ``data/cam/classifiers/<classifier>/`` (the source-class vs target-class
        classifier), which also scores the untranslated inputs kept beside the outputs as a baseline;
        ``params.yaml`` sections ``inception``, ``metrics`` (KID
        subsets and seed, shared with ``evaluate``) and ``evaluate_translation`` (the bootstrap).
Writes: ``metrics/translation/<name>.json`` (the numbers, :data:`METRICS`) and ``<name>.record.json``
        beside it (the same with the datasets, classifier, counts and weights): FID and KID of the translations against the target
        images, KID also x100 with its standard deviation over subsets as U-GAT-IT reports it
        (selfie2anime: 11.61 +- 0.57); the **character ratio** (study C, Table 4: the share of
        translations the classifier assigns to the target class) with its bootstrap 95 % interval; the
        same share of the untranslated inputs (what the classifier says before any translation); the
        target set's real-vs-real FID floor; the Inception weights' origin and SHA-256; for a model of
        several members (Council GAN) every member's FID (``member_fid``; the table's numbers are
        ``net.member``'s); for a paired translator the mean absolute difference (pixels in [0, 1])
        between each translation and its input's own target image (``paired_l1``).
Guarantees: each file appears complete or not at all; statistics made with other weights are refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from animegen import paths
from animegen.artifacts.classifier import read_classifier
from animegen.artifacts.images import read_images
from animegen.artifacts.records import write_result
from animegen.artifacts.reference import read_dataset_reference
from animegen.artifacts.translations import read_inputs, read_member, read_translations
from animegen.cam.classifier import predict
from animegen.metrics.extractor import load_extractor
from animegen.metrics.proportion import share_with_interval
from animegen.metrics.suite import MetricSettings, fid_against, fid_and_kid
from animegen.stages import StageError

METRICS = ("fid", "kid_x100", "kid_x100_std", "character_ratio", "character_ratio_ci95_low", "character_ratio_ci95_high",
           "source_character_ratio", "floor_fid", "paired_l1")  # fmt: skip


def describe_backbones(backbones: dict | None) -> str | None:
    """``content: mobilenet_v2 features.6 (packaged, sha256 b0353104...)``; ``random`` says so (tables show it)."""
    if not backbones:
        return None
    parts = []
    for role, b in sorted(backbones.items()):
        weights = "random" if b["weights"] == "random" else f"{b['weights']}, sha256 {b['sha256'][:8]}"
        parts.append(f"{role}: {b['arch']} {b['layer']} ({weights})")
    return "; ".join(parts)


def run(params: dict, name: str, root: Path) -> dict:
    t = params["translators"][name]
    boot = params["evaluate_translation"]
    ids, outputs, info = read_translations(root / paths.TRANSLATIONS.format(model=name))
    if len(ids) < 2:
        raise StageError(f"evaluate_translation {name}: {len(ids)} translated image(s); FID needs at least 2")
    target, source, against = t["target"]["dataset"], t["source"]["dataset"], t["reference"]
    extractor = load_extractor(params["inception"], root)
    device = extractor.device
    reference = read_dataset_reference(root, target, extractor.weights.sha256, against)
    fid, kid = fid_and_kid(outputs, reference, extractor, MetricSettings.from_params(params["metrics"]))
    fid = float(fid)
    folder = root / paths.TRANSLATIONS.format(model=name)
    member_fid = {m: float(fid_against(read_member(folder, m, ids), reference, extractor)) for m in info.get("members", [])}
    paired_l1 = None
    if info.get("paired_targets"):
        targets = read_images(root / paths.PROCESSED.format(dataset=target), ids)
        paired_l1 = float(np.abs(outputs.astype(np.float64) - targets.astype(np.float64)).mean() / 255.0)

    classifier, meta = read_classifier(root / paths.CAM_CLASSIFIER.format(classifier=t["classifier"]), device)
    if meta["image_size"] != outputs.shape[1]:
        raise StageError(f"translators.{name}.classifier: {t['classifier']!r} takes {meta['image_size']} px images, "
                         f"the translations are {outputs.shape[1]} px")  # fmt: skip
    cls = 1 if t["target_class"] == "positive" else 0
    inputs = read_inputs(root / paths.TRANSLATIONS.format(model=name), ids)
    ratio = share_with_interval(predict(classifier, outputs, meta["arch"], device).argmax(1) == cls, boot["bootstrap"], boot["seed"])
    before = share_with_interval(predict(classifier, inputs, meta["arch"], device).argmax(1) == cls, boot["bootstrap"], boot["seed"])
    result = {
        "model": name, "family": t["family"], "source": source, "target": target, "translated_images": info["images"],
        "reference_images": against, "n_translated": len(ids), "n_reference": len(reference.info["ids"]),
        "fid": fid, "kid": kid.mean, "kid_std": kid.std, "kid_x100": 100.0 * kid.mean, "kid_x100_std": 100.0 * kid.std,
        "kid_subsets": kid.num_subsets, "kid_subset_size": kid.subset_size,
        "character_ratio": ratio["share"], "character_ratio_ci95": [ratio["ci95_low"], ratio["ci95_high"]],
        "character_ratio_ci95_low": ratio["ci95_low"], "character_ratio_ci95_high": ratio["ci95_high"],
        "source_character_ratio": before["share"],
        "classifier": t["classifier"], "target_class": meta["classes"][str(cls)],
        "bootstrap": boot["bootstrap"], "floor_fid": reference.info["floor"] and reference.info["floor"]["mean"],
        "member_fid": member_fid or None, "member": info.get("member"), "paired_l1": paired_l1,
        "trained_steps": info["trained_steps"], "backbones": describe_backbones(info.get("backbones")),
        "backbone_weights": info.get("backbones"), "face_method": (info.get("faces") or {}).get("method"),
        "inception_weights": extractor.weights.provenance(),
        "inception": extractor.record(),
    }  # fmt: skip
    write_result(root / paths.TRANSLATION_METRICS.format(model=name), root / paths.TRANSLATION_RECORD.format(model=name),
                 "evaluate_translation", result, METRICS)
    return {k: result[k] for k in ("model", "fid", "kid_x100", "character_ratio")}
