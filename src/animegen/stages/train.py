"""Stage ``train``: train one model of ``params.yaml``'s ``models:`` on its dataset's train split.

Reads:  ``data/processed/<dataset>/images/`` and ``data/splits/<split>.json`` (``split`` is the dataset
        itself, or a CAM selection of it and its random control); ``params.yaml`` sections ``train``
        (the loop) and ``models.<name>`` (``family``, ``dataset``, ``split``, ``train``, ``net``).
Writes: ``data/models/<name>/`` with ``model.pt`` (every network's weights and the EMA generator's,
        plus what sampling needs to rebuild the model), ``curves.png`` (the loss curves with an EMA,
        for people and the report), ``train.json`` (steps done, why it stopped,
        resume, refused checkpoints, parameter counts, device) and, when ``train.track_fid_every`` is
        set, ``snapshots/step_NNNNNNNN.pt`` (the generator and its EMA every N steps and at the last
        step, for the track stage); ``metrics/train/<name>/``
        (dvclive ``metrics.json`` and ``plots/``: the training curves).
Keeps:  ``data/checkpoints/<name>/`` (not an output): the resumable state.  Rerunning the stage after an
        interruption continues from the last checkpoint that verifies; delete the folder to start over.
Guarantees: outputs appear complete or not at all; on the CPU a resumed run ends with the same weights
as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import torch

from animegen import paths
from animegen.artifacts.model import SnapshotStore, write_model, write_train_record
from animegen.artifacts.split import load_split_images
from animegen.device import device_name
from animegen.device import setup as device_setup
from animegen.io import atomic_dir
from animegen.models import registry
from animegen.plots import training_curves_png
from animegen.stages import StageError
from animegen.train import LoopConfig, data_fingerprint, export_generator, train


def run(params: dict, name: str, root: Path) -> dict:
    m = params["models"][name]
    ids, images = load_split_images(root, m["dataset"], split=m["split"])
    if len(ids) < 2:
        raise StageError(f"train {name}: the train split {m['split']} of {m['dataset']} has {len(ids)} image(s); need at least 2")
    size = images.shape[1]
    cfg = LoopConfig.from_params(params["train"], m["train"])
    device = device_setup(params["train"], "train")
    if cfg.precision == "fp16" and device.type != "cuda":
        raise StageError(f"models.{name}.train.precision: fp16 needs CUDA, this run is on {device} (use bf16 or fp32)")
    torch.manual_seed(cfg.seed)  # weight initialisation draws from the global generator too
    try:
        model = registry.model_class(m["family"])(m["net"], size)
    except ValueError as e:
        raise StageError(f"models.{name}.net: {e}") from None
    fingerprint = hashlib.sha256(
        json.dumps(
            {"family": m["family"], "net": m["net"], "loop": cfg.fingerprint_fields(), "data": data_fingerprint(images)},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    ckpt_dir = root / paths.CHECKPOINTS.format(model=name)
    log = lambda msg: print(f"train {name}: {msg}", file=sys.stderr, flush=True)  # noqa: E731
    log(f"{m['family']} on {len(ids)} images of {m['dataset']} (split {m['split']}) at {size} px, device {device}, "
        f"parameters {model.n_parameters()}")  # fmt: skip

    snapshots = SnapshotStore(ckpt_dir / "snapshots", fingerprint)
    try:
        result, ema_net = train(model, images, cfg, device, ckpt_dir, ckpt_dir / "live", fingerprint, log=log,
                                snapshots=snapshots)  # fmt: skip
    except FloatingPointError as e:
        raise StageError(f"train {name}: {e}") from None

    summary = {
        "model": name, "family": m["family"], "dataset": m["dataset"], "split": m["split"], "n_train_images": len(ids),
        "image_size": size, "device": device.type, "steps_done": result.steps_done,
        "steps_asked": cfg.steps, "stop_reason": result.stop_reason,
        "time_budget_hours": cfg.time_budget_hours, "resumed_from_step": result.resumed_from_step,
        "refused_checkpoints": result.refused_checkpoints,
        "parameters": model.n_parameters(), "ema": ema_net is not None, "precision": cfg.precision,
        "fingerprint": fingerprint, "final_losses": result.history[-1] if result.history else {},
        "track_fid_every": cfg.track_fid_every, "tf32": params["train"]["tf32"],
    }  # fmt: skip
    with atomic_dir(root / paths.MODEL.format(model=name)) as tmp:
        write_model(tmp, family=m["family"], net=m["net"], image_size=size, channels=3,
                    seed_offset=m["train"]["seed_offset"], step=result.steps_done,
                    exported=export_generator(model, ema_net))  # fmt: skip
        if cfg.track_fid_every:
            summary["snapshot_steps"] = snapshots.copy_to(tmp, result.steps_done)
        write_train_record(tmp, summary)
        (tmp / "curves.png").write_bytes(training_curves_png(result.history, f"{name} ({m['family']}) on {m['split']}"))
    with atomic_dir(root / paths.TRAIN_METRICS.format(model=name)) as tmp:
        shutil.copytree(ckpt_dir / "live", tmp, dirs_exist_ok=True)
    # Wall time and device name go to the run record only (logs/runs/, written by the cli): on the CPU the
    # outputs are byte-identical across reruns, and DVC hashes them.
    report = {k: summary[k] for k in ("model", "steps_done", "stop_reason", "resumed_from_step", "time_budget_hours")}
    return {**report, "training_seconds": result.elapsed_seconds, "device_name": device_name(device)}
