"""Stage ``track_translator``: FID over training of one translator, from the snapshots its training kept.

Reads:  ``data/models/<name>/`` (``model.pt``, ``train.json`` and, when
        ``translators.<name>.train.track_fid_every`` is set, ``snapshots/step_NNNNNNNN.pt``: G_A, the
        a -> b generator, and its EMA); ``data/processed/<source.dataset>/images/`` and
        ``data/splits/<source.dataset>.json`` (the images ``translate`` translates: the source's test
        split, or all with ``translate.images: all``); ``data/reference/<target.dataset>/`` (the
        statistics of ``translators.<name>.reference``, as ``evaluate_translation`` uses);
        ``data/cam/classifiers/<classifier>/`` when the translator multiplies Grad-CAM maps in;
        ``params.yaml`` sections ``track`` (images per snapshot, smoothing), ``inception`` and
        ``translate`` (``use_ema``, ``batch_size``, ``images``).
Writes: ``metrics/track/<name>/`` (``fid.tsv``, ``fid_ema.tsv``, ``fid.png``),
        ``metrics/track/<name>.json`` and ``<name>.record.json``, as ``track`` writes them for a
        generator.  Every snapshot translates the same first ``track.n`` source images (fewer when the
        split has fewer), so successive points differ by the generator only.  For a translator trained
        without snapshots the folder is empty and the record says ``tracked: false`` and why.
Guarantees: the outputs appear complete or not at all; a snapshot from another training run or
statistics from other Inception weights are refused.
"""

from __future__ import annotations

from pathlib import Path

from animegen import paths
from animegen.artifacts.classifier import attach_cam_maps
from animegen.artifacts.model import read_model, read_snapshots, read_train_record
from animegen.artifacts.reference import read_dataset_reference
from animegen.artifacts.split import load_split_images
from animegen.metrics.extractor import load_extractor
from animegen.models.sampling import translate_images
from animegen.stages import StageError
from animegen.tracking import measure_snapshots, record_untracked, write_curve


def run(params: dict, name: str, root: Path) -> dict:
    t = params["translators"][name]
    tr, s, inc = params["track"], params["translate"], params["inception"]
    model_dir = root / paths.MODEL.format(model=name)
    trained = read_train_record(model_dir)
    every = trained.get("track_fid_every", 0)
    source, target, against = t["source"]["dataset"], t["target"]["dataset"], t["reference"]
    result = {"model": name, "family": t["family"], "source": source, "target": target, "tracked": bool(every)}
    if not every:
        return record_untracked(root, name, result, "translators")

    ids, images = load_split_images(root, source, s["images"])
    ids, images = ids[: tr["n"]], images[: tr["n"]]
    if len(ids) < 2:
        raise StageError(f"track_translator {name}: {source} has {len(ids)} {s['images']!r} image(s) to translate; FID needs at least 2")
    snapshots = read_snapshots(model_dir, trained["fingerprint"], trained.get("snapshot_steps", []))
    model, blob = read_model(model_dir, t["family"], t["net"])
    extractor = load_extractor(inc, root)
    device = extractor.device
    reference = read_dataset_reference(root, target, extractor.weights.sha256, against)
    model.to(device)
    model.train(False)
    attach_cam_maps(model, root, t, device, blob["image_size"])
    steps, fids = measure_snapshots(model, snapshots, ("translate.use_ema", s["use_ema"]),
                                    lambda net: translate_images(model, net, images, s["batch_size"], device),
                                    reference, extractor, f"track_translator {name}")  # fmt: skip
    result.update({
        "track_fid_every": every, "n_per_point": len(ids), "translated_images": s["images"],
        "generator": "ema" if s["use_ema"] else "live", "reference_images": against,
        "n_reference": len(reference.info["ids"]), "inception_weights": extractor.weights.provenance(), "inception": extractor.record(),
        "note": f"FID of {len(ids)} translations per point: biased upwards, comparable within this curve, "
                "not with evaluate_translation's FID",
    })  # fmt: skip
    title = f"{name}: FID of {len(ids)} translated {source} images vs {target} ({against}), over training"
    return write_curve(root, name, result, steps, fids, tr["smoothing"], title)
