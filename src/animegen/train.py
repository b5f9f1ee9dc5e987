"""The one training loop every model family uses.

A family (:mod:`animegen.models`) knows its networks, its losses and how to sample; this loop knows
everything else, once:

* **Seeding.** torch's global generator is seeded with ``train.seed + models.<m>.train.seed_offset``
  (the train stage seeds it before building the model too, so initial weights are reproducible);
  the batch order and the horizontal flips come from generators seeded by (seed, epoch) and (seed, step),
  so they need no state at all.  The global generator's state (CPU and CUDA) is saved in every
  checkpoint, so a run resumed from step k is the same computation as an uninterrupted one.
* **Device and precision.** CUDA when present (or as ``train.device`` says); TF32 on or off
  (``train.tf32``); autocast in ``bf16`` or ``fp16`` (with a gradient scaler) or none (``fp32``).
* **EMA** of the generator with ema-pytorch (``models.<m>.train.ema``; ``beta: 0`` turns it off).
* **Stopping** at ``steps`` or when the wall-clock budget (``time_budget_hours``, summed over resumed
  runs) is spent, whichever comes first; which one is recorded (``stop_reason``).
* **Checkpoints** every N steps or M minutes, written atomically with a SHA-256 sidecar; the previous
  one is kept.  A rerun after an interruption resumes from the newest checkpoint that verifies and
  whose fingerprint (model family, net and loop settings, training data) matches; a corrupt, truncated
  or foreign checkpoint is reported and never loaded.  ``steps`` and the budget are not part of the
  fingerprint: raising them continues a finished run instead of starting again.
* **Logging** with dvclive (``Live(dir, save_dvc_exp=False, dvcyaml=None)``): the mean of each loss
  over every ``log_every`` steps.  The history travels in the checkpoint and is replayed on resume, so
  the curves of a resumed run equal those of an uninterrupted one.  tqdm shows progress.
* **Generator snapshots** for FID over training (``models.<m>.train.track_fid_every``, 0 = off): the
  generator and its EMA every N steps (and at the last step), each written atomically by the snapshot
  store (``<checkpoints>/snapshots/``) before any checkpoint that follows it, so a resumed run has
  every snapshot an uninterrupted one has.  Saving one draws no random numbers: tracking never changes the
  trained weights.  The track stage measures them; FID needs Inception, which training must not depend on.

``torch.load`` is always called with ``weights_only=True``.
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
import math
import os
import shutil
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from animegen.device import set_tf32
from animegen.io import save_torch_atomic, sha256_file, write_bytes_atomic, write_json_atomic
from animegen.models.base import GenerativeModel, StepContext

CHECKPOINT_FORMAT = 1


# ------------------------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class LoopConfig:
    """Loop settings: ``train:`` (global) merged with ``models.<m>.train`` (per model)."""

    steps: int
    time_budget_hours: float
    batch_size: int
    seed: int  # global seed + the model's offset
    hflip: bool
    precision: str  # fp32 | bf16 | fp16
    tf32: bool
    ema_beta: float  # 0 disables the EMA
    ema_update_after_step: int
    ema_update_every: int
    checkpoint_every_steps: int
    checkpoint_every_minutes: float
    log_every: int
    track_fid_every: int  # 0: no generator snapshots
    paired: bool = False  # a translator's domains drawn together (row i of b is row i of a's partner)

    @classmethod
    def from_params(cls, train: dict, model_train: dict, paired: bool = False) -> "LoopConfig":
        ema = model_train["ema"]
        return cls(
            steps=model_train["steps"],
            time_budget_hours=model_train["time_budget_hours"],
            batch_size=model_train["batch_size"],
            seed=train["seed"] + model_train["seed_offset"],
            hflip=model_train["hflip"],
            precision=model_train["precision"],
            tf32=train["tf32"],
            ema_beta=ema["beta"],
            ema_update_after_step=ema["update_after_step"],
            ema_update_every=ema["update_every"],
            checkpoint_every_steps=train["checkpoint_every_steps"],
            checkpoint_every_minutes=train["checkpoint_every_minutes"],
            log_every=train["log_every"],
            track_fid_every=model_train["track_fid_every"],
            paired=paired,
        )

    def fingerprint_fields(self) -> dict:
        """What makes two runs the same computation (not steps, budget, checkpoint or log cadence).

        The snapshot cadence is in it when on: a finished run must train again to gain snapshots (with
        the same weights); when off it is left out, so fingerprints of untracked runs never changed."""
        skip = {"steps", "time_budget_hours", "checkpoint_every_steps", "checkpoint_every_minutes"}
        if not self.track_fid_every:
            skip.add("track_fid_every")
        if not self.paired:
            skip.add("paired")
        return {k: v for k, v in self.__dict__.items() if k not in skip}


def autocast_for(device: torch.device, precision: str):
    if precision == "fp32":
        return contextlib.nullcontext
    if precision == "fp16" and device.type != "cuda":
        raise RuntimeError("precision fp16 needs a CUDA device (use bf16 or fp32 on the CPU)")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return lambda: torch.autocast(device_type=device.type, dtype=dtype)


# ----------------------------------------------------------------------------------------------- data


class ImageBank:
    """All training images as one uint8 tensor on the device; batches need no loader and no state.

    Batch ``s`` holds items ``s*B .. s*B+B-1`` of the endless sequence of epoch permutations, each
    permutation drawn from a generator seeded by (seed, epoch); flips come from one seeded by (seed, step).
    A few thousand images at 128-512 px fit in memory; this is the regime of the studies.
    """

    def __init__(self, images: np.ndarray, device: torch.device, seed: int, hflip: bool, stream: int = 0):
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"expected uint8 images of shape (N, H, W, 3), got {images.dtype} {images.shape}")
        self.data = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(device)
        self.n = self.data.shape[0]
        self.seed = seed
        self.hflip = hflip
        self.stream = 2 * stream  # a translation model's two domains draw independent orders and flips
        self._perm_cache: dict[int, torch.Tensor] = {}

    def _perm(self, epoch: int) -> torch.Tensor:
        if epoch not in self._perm_cache:
            g = torch.Generator().manual_seed(_mix_seed(self.seed, 1 + self.stream, epoch))
            self._perm_cache = {epoch: torch.randperm(self.n, generator=g)}
        return self._perm_cache[epoch]

    def batch(self, step: int, batch_size: int) -> torch.Tensor:
        """Float images in [-1, 1] of shape (B, 3, H, W)."""
        idx = []
        for i in range(step * batch_size, (step + 1) * batch_size):
            idx.append(int(self._perm(i // self.n)[i % self.n]))
        x = self.data[torch.tensor(idx, device=self.data.device)].float().div_(127.5).sub_(1.0)
        if self.hflip:
            g = torch.Generator().manual_seed(_mix_seed(self.seed, 2 + self.stream, step))
            flip = (torch.rand(batch_size, generator=g) < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x


def image_banks(images, kind: str, device: torch.device, seed: int, hflip: bool, paired: bool = False) -> dict[str, ImageBank]:
    """The batch's banks: ``{"image"}`` for an unconditional model, ``{"a", "b"}`` for a translation
    model, whose ``images`` are ``{"a": ..., "b": ...}``: unpaired, each domain in its own order; paired
    (``images["b"][i]`` is the partner of ``images["a"][i]``), both in one order with the same flips.

    A translation model may also take per-image companions of a domain, keyed ``a_<what>`` or
    ``b_<what>`` (AnimeGAN: ``b_smooth``, the edge-smoothed copy of each anime image; ``a_faces``, each
    photo's face mask): one array per domain image, in the same order, drawn in the domain's order with
    its flips, so a batch's companion rows belong to the batch's images."""
    if kind == "translation":
        if not isinstance(images, dict) or not {"a", "b"} <= set(images):
            raise ValueError("a translation model trains on {'a': images, 'b': images}")
        streams = {"a": 0, "b": 0 if paired else 1}
        if paired and len(images["a"]) != len(images["b"]):
            raise ValueError(f"paired domains need one image each per pair: a has {len(images['a'])}, b {len(images['b'])}")
        for k in images:
            domain = k.split("_", 1)[0]
            if k not in streams and (domain not in streams or "_" not in k):
                raise ValueError(f"unknown translation batch key {k!r} (a, b, or a_<what> / b_<what>)")
            if len(images[k]) != len(images[domain]):
                raise ValueError(f"{k} has {len(images[k])} images but domain {domain} has {len(images[domain])}")
        return {k: ImageBank(images[k], device, seed, hflip, stream=streams[k.split("_", 1)[0]]) for k in images}
    if isinstance(images, dict):
        raise ValueError(f"a {kind} model trains on one image array, not {sorted(images)}")
    return {"image": ImageBank(images, device, seed, hflip)}


def _mix_seed(seed: int, stream: int, i: int) -> int:
    h = hashlib.sha256(f"{seed}:{stream}:{i}".encode()).digest()
    return int.from_bytes(h[:8], "little") & (2**63 - 1)


def data_fingerprint(images) -> str:
    """SHA-256 of the training images (an array, or a translation model's ``{"a", "b"}`` arrays)."""
    if isinstance(images, dict):
        return hashlib.sha256("".join(f"{k}:{data_fingerprint(v)}" for k, v in sorted(images.items())).encode()).hexdigest()
    return hashlib.sha256(images.tobytes() + str(images.shape).encode()).hexdigest()


# ---------------------------------------------------------------------------------------- checkpoints


class CheckpointError(Exception):
    """A checkpoint that must not be loaded (corrupt, truncated, or from a different run)."""


def save_checkpoint(directory: Path, state: dict) -> Path:
    """Write ``last.pt`` atomically with a ``last.json`` sidecar (step, SHA-256); keep the old one as ``prev``.

    The order of the rotation matters: an interruption between any two file operations must leave a
    pair that verifies.  Moving ``last.pt`` and then ``last.json`` did not (killed in between, ``prev.pt``
    was the new file beside the old ``prev.json`` and ``last.pt`` was gone: both refused, the rerun started
    from step 0).  Here ``prev.json`` takes ``last.json``'s content first (``last`` still verifies), then
    ``last.pt`` becomes ``prev.pt`` (now ``prev`` verifies), and only then is ``last`` rewritten.
    """
    directory.mkdir(parents=True, exist_ok=True)
    last, last_meta = directory / "last.pt", directory / "last.json"
    if last.exists() and last_meta.exists():
        write_bytes_atomic(directory / "prev.json", last_meta.read_bytes())
        os.replace(last, directory / "prev.pt")
        last_meta.unlink()
    digest = save_torch_atomic(last, state)
    write_json_atomic(last_meta, {"step": state["step"], "sha256": digest, "fingerprint": state["fingerprint"]})
    return last


def load_checkpoint(path: Path, fingerprint: str) -> dict:
    """Verify the sidecar's SHA-256 and the fingerprint before unpickling anything; raise CheckpointError."""
    meta_path = path.with_suffix(".json")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as e:
        raise CheckpointError(f"{path.name}: no readable sidecar {meta_path.name} ({e})") from None
    if meta.get("fingerprint") != fingerprint:
        raise CheckpointError(f"{path.name}: made by a different configuration or dataset (fingerprint differs)")
    digest = sha256_file(path) if path.exists() else None
    if digest != meta.get("sha256"):
        raise CheckpointError(f"{path.name}: corrupt or truncated (SHA-256 {digest} != recorded {meta.get('sha256')})")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unpickling failure means the file is unusable
        raise CheckpointError(f"{path.name}: cannot be read: {e}") from None
    if state.get("format") != CHECKPOINT_FORMAT or state.get("fingerprint") != fingerprint:
        raise CheckpointError(f"{path.name}: unexpected format or fingerprint inside the file")
    return state


def find_resumable(directory: Path, fingerprint: str, max_step: int, log) -> tuple[dict | None, list[str]]:
    """The newest usable checkpoint (``last``, else ``prev``) and the reasons others were refused."""
    refused = []
    for name in ("last.pt", "prev.pt"):
        path = directory / name
        if not path.exists() and not path.with_suffix(".json").exists():
            continue
        try:
            state = load_checkpoint(path, fingerprint)
        except CheckpointError as e:
            refused.append(str(e))
            log(f"checkpoint refused: {e}")
            continue
        if state["step"] > max_step:
            refused.append(f"{name}: at step {state['step']}, beyond steps={max_step}")
            log(f"checkpoint refused: {refused[-1]}")
            continue
        return state, refused
    return None, refused


# ------------------------------------------------------------------------------------------- the loop


@dataclass
class TrainResult:
    steps_done: int
    stop_reason: str  # "steps" | "time_budget"
    resumed_from_step: int | None
    refused_checkpoints: list[str]
    elapsed_seconds: float
    history: list[dict] = field(default_factory=list)


def make_ema(model: GenerativeModel, cfg: LoopConfig):
    if cfg.ema_beta <= 0:
        return None
    from ema_pytorch import EMA  # noqa: PLC0415 - keep import cost out of stages that never train

    return EMA(
        model.ema_network(),
        beta=cfg.ema_beta,
        update_after_step=cfg.ema_update_after_step,
        update_every=cfg.ema_update_every,
        include_online_model=False,
    )


def _rng_state(device: torch.device) -> dict:
    state = {"cpu": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["cpu"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


def train(
    model: GenerativeModel,
    images: "np.ndarray | dict[str, np.ndarray]",
    cfg: LoopConfig,
    device: torch.device,
    checkpoint_dir: Path,
    live_dir: Path,
    fingerprint: str,
    log=print,
    progress: bool | None = None,
    snapshots=None,
) -> tuple[TrainResult, "torch.nn.Module | None"]:
    """Train ``model`` on ``images`` (uint8, N x H x W x 3; a translation model's ``{"a": ..., "b": ...}``)
    until ``cfg.steps`` or the time budget.

    Returns the result and the EMA copy of the generator (``None`` when the EMA is off).  Curves are
    written with dvclive into ``live_dir`` (replaced as a whole: the history is replayed on resume).
    ``snapshots`` receives the generator snapshots when ``cfg.track_fid_every`` is set: an object with
    ``save(step, generator_state, ema_state)``, ``has(step)`` and ``prune(after, every)``
    (:class:`animegen.artifacts.model.SnapshotStore`, which owns their file format).
    """
    if cfg.track_fid_every and snapshots is None:
        raise ValueError("track_fid_every is set but no snapshot store was given")
    set_tf32(cfg.tf32)
    torch.manual_seed(cfg.seed)
    model.to(device)
    model.train(True)
    ema = make_ema(model, cfg)
    if ema is not None:
        ema.to(device)
    scaler = torch.amp.GradScaler(device.type, enabled=cfg.precision == "fp16")
    ctx = StepContext(device=device, autocast=autocast_for(device, cfg.precision), scaler=scaler)
    banks = image_banks(images, model.kind, device, cfg.seed, cfg.hflip, cfg.paired)

    state, refused = find_resumable(checkpoint_dir, fingerprint, cfg.steps, log)
    if snapshots is not None:
        snapshots.prune(None if state is None else state["step"], cfg.track_fid_every)
    step, elapsed_before, history = 0, 0.0, []
    window: dict[str, list[float]] = defaultdict(list)  # losses since the last curve point
    resumed_from = None
    if state is not None:
        model.load_state_dict(state["model"])
        if ema is not None:
            ema.load_state_dict(state["ema"])
        scaler.load_state_dict(state["scaler"])
        _set_rng_state(state["rng"], device)
        step, elapsed_before, history = state["step"], state["elapsed_seconds"], list(state["history"])
        window.update({k: list(v) for k, v in state.get("window", {}).items()})  # a checkpoint between two log rows
        resumed_from = step
        log(f"resumed from checkpoint at step {step} ({elapsed_before:.0f} s of training so far)")

    live = _open_live(live_dir, history)
    budget = cfg.time_budget_hours * 3600.0
    t_start = time.monotonic()
    last_ckpt_time = t_start

    def elapsed() -> float:
        return elapsed_before + time.monotonic() - t_start

    def checkpoint() -> None:
        save_checkpoint(checkpoint_dir, {
            "format": CHECKPOINT_FORMAT, "fingerprint": fingerprint, "step": step,
            "elapsed_seconds": elapsed(), "model": model.state_dict(),
            "ema": ema.state_dict() if ema is not None else {}, "scaler": scaler.state_dict(),
            "rng": _rng_state(device), "history": history, "window": dict(window),
        })  # fmt: skip

    stop_reason = "steps"
    bar = tqdm(total=cfg.steps, initial=step, desc="train", unit="step", disable=None if progress is None else not progress)
    try:
        while step < cfg.steps:
            if elapsed() >= budget:
                stop_reason = "time_budget"
                break
            losses = model.train_step({k: b.batch(step, cfg.batch_size) for k, b in banks.items()}, step, ctx)
            scaler.update()
            if ema is not None:
                ema.update()
            step += 1
            for k, v in losses.items():
                if not math.isfinite(v):
                    raise FloatingPointError(f"loss {k} is {v} at step {step}: training diverged")
                window[k].append(float(v))
            if cfg.track_fid_every and step % cfg.track_fid_every == 0:
                _snapshot(snapshots, step, model, ema)
            if step % cfg.log_every == 0 or step == cfg.steps:
                row = {"step": step, **{k: float(np.mean(v)) for k, v in sorted(window.items())}}
                history.append(row)
                _log_row(live, row)
                window.clear()
                bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k != "step"})
            bar.update(1)
            minutes = (time.monotonic() - last_ckpt_time) / 60.0
            if step % cfg.checkpoint_every_steps == 0 or minutes >= cfg.checkpoint_every_minutes:
                checkpoint()
                last_ckpt_time = time.monotonic()
    finally:
        bar.close()
        live.end()
    if cfg.track_fid_every and step > 0 and not snapshots.has(step):
        _snapshot(snapshots, step, model, ema)  # the last step, off the cadence
    checkpoint()  # the finished state: raising `steps` later continues from here
    result = TrainResult(step, stop_reason, resumed_from, refused, round(elapsed(), 3), history)
    return result, (ema.ema_model if ema is not None else None)


def _snapshot(snapshots, step: int, model: GenerativeModel, ema) -> None:
    """The generator (and its EMA, when kept) at ``step``; draws no random numbers."""
    snapshots.save(step, model.ema_network().state_dict(), ema.ema_model.state_dict() if ema is not None else None)


def _open_live(live_dir: Path, history: list[dict]):
    from dvclive import Live  # noqa: PLC0415

    if live_dir.exists():
        shutil.rmtree(live_dir)
    live = Live(dir=str(live_dir), save_dvc_exp=False, dvcyaml=None, resume=False)
    for row in history:  # replay: a resumed run's curves equal an uninterrupted run's
        _log_row(live, row)
    return live


def _log_row(live, row: dict) -> None:
    live.step = row["step"]
    for k, v in row.items():
        if k != "step":
            live.log_metric(f"train/{k}", v)
    live.make_summary()


def export_generator(model: GenerativeModel, ema_net) -> dict:
    """What sampling needs: every network's weights and, when kept, the EMA generator's."""
    return {
        "networks": {k: m.state_dict() for k, m in model.networks.items()},
        "ema": ema_net.state_dict() if ema_net is not None else None,
    }


def generator_for_sampling(model: GenerativeModel, exported: dict, use_ema: bool) -> torch.nn.Module:
    """The EMA generator when asked for and present, else the live one (both already loaded)."""
    for k, m in model.networks.items():
        m.load_state_dict(exported["networks"][k])
    return _pick_generator(model, exported["ema"], use_ema)


def snapshot_generator(model: GenerativeModel, snapshot: dict, use_ema: bool) -> torch.nn.Module:
    """A snapshot's EMA generator when asked for and present, else its live one."""
    model.ema_network().load_state_dict(snapshot["generator"])
    return _pick_generator(model, snapshot["ema"], use_ema)


def _pick_generator(model: GenerativeModel, ema_state: dict | None, use_ema: bool) -> torch.nn.Module:
    net = model.ema_network()
    if use_ema:
        if ema_state is None:
            raise ValueError("true, but this model was trained without an EMA (its train.ema.beta is 0)")
        net = copy.deepcopy(net)
        net.load_state_dict(ema_state)
    return net
