"""One model's training run, from its params entry to its model folder: what the ``train`` stage (an
unconditional model of ``models:``) and the ``train_translator`` stage (an image-to-image model of
``translators:``) share.  The stage loads the images and says how; this module builds the model, runs
the one training loop (:mod:`animegen.train`) with checkpoints in ``data/checkpoints/<name>/`` and
writes ``data/models/<name>/`` and ``metrics/train/<name>/`` atomically.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path
from typing import Callable

import torch

from animegen import paths
from animegen.artifacts.model import SnapshotStore, write_model, write_train_record
from animegen.device import device_name
from animegen.device import setup as device_setup
from animegen.errors import PipelineError
from animegen.io import atomic_dir
from animegen.models import registry
from animegen.plots import training_curves_png
from animegen.train import LoopConfig, data_fingerprint, export_generator, train


class FitError(PipelineError):
    """The run cannot start or diverged; the message names the key or the step."""


def fit(params: dict, section: str, name: str, images, size: int, root: Path, record: dict, title: str, data: str,
        prepare: "Callable[[object, torch.device], dict | None] | None" = None) -> dict:  # fmt: skip
    """Train ``params[section][name]`` on ``images`` (an array, or ``{"a", "b"}`` arrays for a translator).

    ``record`` (what the stage knows of the data) goes into ``train.json`` beside the run's own facts,
    ``title`` ends the curves' title (``on <split>``) and ``data`` describes the images in the log;
    ``prepare(model, device)`` is called once the model is built (a translator attaches its CAM there); what
    it returns (e.g. the classifier's SHA-256) joins the checkpoint fingerprint, so a checkpoint made with
    another classifier is never resumed.
    Returns the stage's report, wall time and device name included (they go to the run record only).
    """
    m = params[section][name]
    cfg = LoopConfig.from_params(params["train"], m["train"], paired=m.get("paired", False))
    device = device_setup(params["train"], "train")
    if cfg.precision == "fp16" and device.type != "cuda":
        raise FitError(f"{section}.{name}.train.precision: fp16 needs CUDA, this run is on {device} (use bf16 or fp32)")
    torch.manual_seed(cfg.seed)  # weight initialisation draws from the global generator too
    try:
        model = registry.model_class(m["family"])(m["net"], size)
    except ValueError as e:
        raise FitError(f"{section}.{name}.net: {e}") from None
    extra = prepare(model, device) if prepare is not None else None
    fingerprint = hashlib.sha256(
        json.dumps(
            {"family": m["family"], "net": m["net"], "loop": cfg.fingerprint_fields(), "data": data_fingerprint(images),
             **({"extra": extra} if extra else {})},
            sort_keys=True,
        ).encode()
    ).hexdigest()
    ckpt_dir = root / paths.CHECKPOINTS.format(model=name)
    log = lambda msg: print(f"train {name}: {msg}", file=sys.stderr, flush=True)  # noqa: E731
    log(f"{m['family']} on {data} at {size} px, device {device}, parameters {model.n_parameters()}")

    snapshots = SnapshotStore(ckpt_dir / "snapshots", fingerprint)
    try:
        result, ema_net = train(model, images, cfg, device, ckpt_dir, ckpt_dir / "live", fingerprint, log=log,
                                snapshots=snapshots)  # fmt: skip
    except FloatingPointError as e:
        raise FitError(f"train {name}: {e}") from None

    summary = {
        "model": name, "family": m["family"], **record,
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
        (tmp / "curves.png").write_bytes(training_curves_png(result.history, f"{name} ({m['family']}) {title}"))
    with atomic_dir(root / paths.TRAIN_METRICS.format(model=name)) as tmp:
        shutil.copytree(ckpt_dir / "live", tmp, dirs_exist_ok=True)
    # Wall time and device name go to the run record only (logs/runs/, written by the cli): on the CPU the
    # outputs are byte-identical across reruns, and DVC hashes them.
    report = {k: summary[k] for k in ("model", "steps_done", "stop_reason", "resumed_from_step", "time_budget_hours")}
    return {**report, "training_seconds": result.elapsed_seconds, "device_name": device_name(device)}
