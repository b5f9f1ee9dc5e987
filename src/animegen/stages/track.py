"""Stage ``track``: FID over training (study B) from the generator snapshots the train stage kept.

Reads:  ``data/models/<name>/`` (``model.pt`` to rebuild the model, ``train.json``, and
        ``snapshots/step_NNNNNNNN.pt`` when ``models.<name>.train.track_fid_every`` is set);
        ``data/reference/<dataset>/`` (the train split's Inception statistics, as evaluate uses);
        ``params.yaml`` sections ``track`` (images per snapshot, batch, seed, smoothing, device),
        ``inception`` (weights, batch size), ``sample.use_ema`` and ``models.<name>.sample``.
Writes: ``metrics/track/<name>/`` (declared as DVC plots): ``fid.tsv`` and ``fid_ema.tsv`` (step and
        FID, raw and smoothed by an exponential moving average of ``track.smoothing``, study B's 0.9) and
        ``fid.png`` (both curves, for people and the report); ``metrics/track/<name>.json``: whether the
        model was tracked, the points, the last and the best tracked FID, the settings and the Inception
        weights' origin and SHA-256.  For a model trained without snapshots the folder is empty and the
        JSON says ``tracked: false`` and why: nothing is generated or measured.
Every snapshot draws ``track.n`` images from the same seed (``track.seed`` plus the model's
``seed_offset``), so successive points differ by the generator only.  FID from a few images is biased
upwards: points of one curve compare with each other, not with evaluate's FID from ``sample.n`` images.
Guarantees: both outputs appear complete or not at all; a snapshot from another training run (its
fingerprint differs from ``train.json``'s) or statistics from other Inception weights are refused.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from animegen import config, paths
from animegen.io import atomic_dir, write_json_atomic
from animegen.metrics.extractor import load_extractor
from animegen.metrics.features import feature_statistics, image_features
from animegen.metrics.fid import frechet_distance
from animegen.metrics.reference import read_reference
from animegen.plots import ema, training_curves_png
from animegen.stages import StageError
from animegen.stages.sample import load_model, to_uint8
from animegen.train import SNAPSHOT_FORMAT, snapshot_generator, snapshot_steps


def generate(model, net, n: int, batch_size: int, seed: int, device, sample_cfg: dict) -> np.ndarray:
    """``n`` uint8 images (N, H, W, 3) from ``net``, drawn from the global generator seeded with ``seed``."""
    torch.manual_seed(seed)
    out, done = [], 0
    while done < n:
        b = min(batch_size, n - done)
        out.append(to_uint8(model.sample(net, b, device, **sample_cfg)))
        done += b
    return np.concatenate(out)


def write_tsv(path: Path, column: str, steps: list[int], values: list[float]) -> None:
    rows = "".join(f"{s}\t{v:.6f}\n" for s, v in zip(steps, values))
    path.write_text(f"step\t{column}\n{rows}")


def run(params: dict, name: str, root: Path) -> dict:
    m = config.model(params, name)
    t, inc = params["track"], params["inception"]
    model_dir = root / paths.MODEL.format(model=name)
    try:
        trained = json.loads((model_dir / "train.json").read_text())
    except (OSError, ValueError) as e:
        raise StageError(f"track {name}: data/models/{name}/train.json is unreadable ({e}); rerun train") from None
    every = trained.get("track_fid_every", 0)
    result = {"model": name, "family": m["family"], "dataset": m["dataset"], "tracked": bool(every)}
    if not every:
        result["reason"] = f"trained with models.{name}.train.track_fid_every 0: no generator snapshots"
        with atomic_dir(root / paths.TRACK.format(model=name)):
            pass  # no curve: an empty plots folder, so the DVC stage's declared output exists
        write_json_atomic(root / paths.TRACK_METRICS.format(model=name), result)
        return {"model": name, "tracked": False}

    snapshots = snapshot_steps(model_dir / "snapshots")
    expected = trained.get("snapshot_steps", [])
    if [s for s, _ in snapshots] != expected or not expected:
        raise StageError(f"track {name}: data/models/{name}/snapshots/ holds steps {[s for s, _ in snapshots]}, "
                         f"train.json lists {expected}; rerun train")  # fmt: skip
    model, blob = load_model(model_dir / "model.pt")
    if blob["family"] != m["family"] or blob["net"] != m["net"]:
        raise StageError(f"track {name}: data/models/{name}/model.pt was trained with other settings; rerun train")
    extractor, weights, device = load_extractor({**inc, "device": t["device"], "cpu_threads": t["cpu_threads"]}, root)
    try:
        reference = read_reference(root / paths.REFERENCE.format(dataset=m["dataset"]), weights.sha256)
    except ValueError as err:
        raise StageError(f"track {name}: {err}") from None
    model.to(device)
    seed = t["seed"] + blob["seed_offset"]
    use_ema = params["sample"]["use_ema"]
    steps, fids = [], []
    for step, path in snapshots:
        try:
            snap = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is unusable
            raise StageError(f"track {name}: {path.name} cannot be read ({e}); rerun train") from None
        if snap.get("format") != SNAPSHOT_FORMAT or snap.get("fingerprint") != trained["fingerprint"] or snap.get("step") != step:
            raise StageError(f"track {name}: {path.name} is not a snapshot of this training run; rerun train")
        try:
            net = snapshot_generator(model, snap, use_ema).to(device).eval()
        except ValueError as e:
            raise StageError(f"sample.use_ema: {e}") from None
        images = generate(model, net, t["n"], t["batch_size"], seed, device, m["sample"])
        mu, sigma = feature_statistics(image_features(extractor, images, batch_size=inc["batch_size"], device=device))
        steps.append(step)
        fids.append(float(frechet_distance(mu, sigma, reference.mu, reference.sigma)))
        print(f"track {name}: step {step}: FID {fids[-1]:.3f} ({t['n']} images)", flush=True)
    smoothed = [float(v) for v in ema(fids, t["smoothing"])]
    best = int(np.argmin(fids))
    result.update({
        "track_fid_every": every, "points": len(steps), "n_per_point": t["n"], "seed": seed,
        "generator": "ema" if use_ema else "live", "smoothing": t["smoothing"],
        "last_step": steps[-1], "last_fid": fids[-1], "last_fid_ema": smoothed[-1],
        "best_step": steps[best], "best_fid": fids[best],
        "steps": steps, "fid": fids, "fid_ema": smoothed,
        "n_reference": len(reference.info["ids"]), "inception_weights": weights.provenance(),
        "note": f"FID of {t['n']} images per point: biased upwards, comparable within this curve, not with evaluate's FID",
    })  # fmt: skip
    with atomic_dir(root / paths.TRACK.format(model=name)) as tmp:
        write_tsv(tmp / "fid.tsv", "fid", steps, fids)
        write_tsv(tmp / "fid_ema.tsv", "fid_ema", steps, smoothed)
        title = f"{name}: FID of {t['n']} samples vs {m['dataset']} train, over training"
        rows = [{"step": s, "fid": f} for s, f in zip(steps, fids)]
        (tmp / "fid.png").write_bytes(training_curves_png(rows, title, t["smoothing"], legend="FID per snapshot"))
    write_json_atomic(root / paths.TRACK_METRICS.format(model=name), result)
    return {"model": name, "tracked": True, "points": len(steps), "last_fid": fids[-1], "best_fid": fids[best]}
