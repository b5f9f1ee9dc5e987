"""Stage ``track``: FID over training (study B) from the generator snapshots the train stage kept.

Reads:  ``data/models/<name>/`` (``model.pt`` to rebuild the model, ``train.json``, and
        ``snapshots/step_NNNNNNNN.pt`` when ``models.<name>.train.track_fid_every`` is set);
        ``data/reference/<dataset>/`` (the Inception statistics of models.<name>.reference, as evaluate uses);
        ``params.yaml`` sections ``track`` (images per snapshot, batch, seed, smoothing), ``inception``
        (the feature extractor: weights, batch size, device and threads, on which the snapshots are
        sampled too), ``sample.use_ema`` and ``models.<name>.sample``.
Writes: ``metrics/track/<name>/`` (declared as DVC plots): ``fid.tsv`` and ``fid_ema.tsv`` (step and
        FID, raw and smoothed by an exponential moving average of ``track.smoothing``, study B's 0.9) and
        ``fid.png`` (both curves, for people and the report); ``metrics/track/<name>.json``: the last and the
        best tracked FID (numbers only); ``metrics/track/<name>.record.json``: whether the model was
        tracked, the points, the settings and the Inception weights' origin and SHA-256.  For a model
        trained without snapshots the folder is empty, the metrics file ``{}`` and the record says
        ``tracked: false`` and why: nothing is generated or measured.
Every snapshot draws ``track.n`` images from the same seed (``track.seed`` plus the model's
``seed_offset``), so successive points differ by the generator only.  FID from a few images is biased
upwards: points of one curve compare with each other, not with evaluate's FID from ``sample.n`` images.
Guarantees: both outputs appear complete or not at all; a snapshot from another training run (its
fingerprint differs from ``train.json``'s) or statistics from other Inception weights are refused.
"""

from __future__ import annotations

from pathlib import Path

from animegen import paths
from animegen.artifacts.model import read_model, read_snapshots, read_train_record
from animegen.artifacts.reference import read_dataset_reference
from animegen.metrics.extractor import load_extractor
from animegen.models.sampling import generate
from animegen.tracking import measure_snapshots, record_untracked, write_curve


def run(params: dict, name: str, root: Path) -> dict:
    m = params["models"][name]
    t = params["track"]
    model_dir = root / paths.MODEL.format(model=name)
    trained = read_train_record(model_dir)
    every = trained.get("track_fid_every", 0)
    result = {"model": name, "family": m["family"], "dataset": m["dataset"], "tracked": bool(every)}
    if not every:
        return record_untracked(root, name, result, "models")

    snapshots = read_snapshots(model_dir, trained["fingerprint"], trained.get("snapshot_steps", []))
    model, blob = read_model(model_dir, m["family"], m["net"])
    extractor = load_extractor(params["inception"], root)
    device = extractor.device
    reference = read_dataset_reference(root, m["dataset"], extractor.weights.sha256, m["reference"])
    model.to(device)
    seed = t["seed"] + blob["seed_offset"]
    use_ema = params["sample"]["use_ema"]
    steps, fids = measure_snapshots(model, snapshots, ("sample.use_ema", use_ema),
                                    lambda net: generate(model, net, t["n"], t["batch_size"], seed, device, m["sample"]),
                                    reference, extractor, f"track {name}")  # fmt: skip
    result.update({
        "track_fid_every": every, "n_per_point": t["n"], "seed": seed, "generator": "ema" if use_ema else "live",
        "reference_images": m["reference"], "n_reference": len(reference.info["ids"]),
        "inception_weights": extractor.weights.provenance(),
        "inception": extractor.record(),
        "note": f"FID of {t['n']} images per point: biased upwards, comparable within this curve, not with evaluate's FID",
    })  # fmt: skip
    title = f"{name}: FID of {t['n']} samples vs {m['dataset']} ({m['reference']}), over training"
    return write_curve(root, name, result, steps, fids, t["smoothing"], title)
