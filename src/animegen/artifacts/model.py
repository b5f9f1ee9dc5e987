"""Trained models ``data/models/<model>/`` (stage ``train``), read by ``sample`` and ``track``.

* ``model.pt`` (tagged ``animegen.model/1``): the family, its ``net`` settings, image size, channels,
  seed offset and steps done, every network's weights and the EMA generator's (``None`` without EMA).
  :func:`read_model` rebuilds the family's model from it and refuses one trained with other settings.
* ``train.json`` (tagged ``animegen.train/1``): what the run did (steps, stop reason, resume, device,
  fingerprint, the snapshot steps when FID is tracked).
* ``snapshots/step_NNNNNNNN.pt`` (tagged ``animegen.snapshot/1``): the generator and its EMA every
  ``track_fid_every`` steps and at the last step, with the run's fingerprint.  The training loop writes
  them through a :class:`SnapshotStore` into its checkpoint folder; the train stage copies them here.
* ``curves.png``: the loss curves, for people (no stage reads it).

``torch.load`` is always called with ``weights_only=True``.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from animegen.artifacts import ArtifactError, format_tag, load_tagged_torch
from animegen.artifacts.records import read_record, write_record
from animegen.io import save_torch_atomic
from animegen.models import registry

MODEL_KIND, MODEL_VERSION = "model", 1
TRAIN_KIND, TRAIN_VERSION = "train", 1
SNAPSHOT_KIND, SNAPSHOT_VERSION = "snapshot", 1
SNAPSHOT_NAME = "step_{step:08d}.pt"


def _load(path: Path, kind: str, version: int) -> dict:
    return load_tagged_torch(path, kind, version, "train")


# ------------------------------------------------------------------------------------------ model.pt


def write_model(folder: Path, *, family: str, net: dict, image_size: int, channels: int, seed_offset: int,
                step: int, exported: dict) -> None:  # fmt: skip
    """``exported`` is :func:`animegen.train.export_generator`'s ``{"networks", "ema"}``."""
    save_torch_atomic(folder / "model.pt", {
        "format": format_tag(MODEL_KIND, MODEL_VERSION), "family": family, "net": net, "image_size": image_size,
        "channels": channels, "seed_offset": seed_offset, "step": step, **exported,
    })  # fmt: skip


def read_model(folder: Path, family: str, net: dict):
    """(the rebuilt model, the blob) of ``folder/model.pt``, which must come from ``family`` with ``net``."""
    path = folder / "model.pt"
    blob = _load(path, MODEL_KIND, MODEL_VERSION)
    if blob["family"] != family or blob["net"] != net:
        raise ArtifactError(f"{path} was trained with other settings ({blob['family']}, net differs); rerun train")
    model = registry.model_class(blob["family"])(blob["net"], blob["image_size"], blob["channels"])
    return model, blob


# ----------------------------------------------------------------------------------------- train.json


def write_train_record(folder: Path, record: dict) -> None:
    write_record(folder / "train.json", TRAIN_KIND, TRAIN_VERSION, record)


def read_train_record(folder: Path) -> dict:
    return read_record(folder / "train.json", TRAIN_KIND, TRAIN_VERSION)


# ------------------------------------------------------------------------------------------ snapshots


def snapshot_steps(directory: Path) -> list[tuple[int, Path]]:
    """The snapshots in ``directory`` as sorted (step, path) pairs."""
    found = []
    for path in directory.glob("step_*.pt") if directory.is_dir() else ():
        digits = path.stem.removeprefix("step_")
        if digits.isdigit():
            found.append((int(digits), path))
    return sorted(found)


class SnapshotStore:
    """The generator snapshots of one training run, as the loop keeps them (in its checkpoint folder)."""

    def __init__(self, directory: Path, fingerprint: str):
        self.directory = Path(directory)
        self.fingerprint = fingerprint

    def save(self, step: int, generator: dict, ema: dict | None) -> None:
        """The generator's state dict (and its EMA's, when kept) at ``step``, written atomically."""
        save_torch_atomic(self.directory / SNAPSHOT_NAME.format(step=step), {
            "format": format_tag(SNAPSHOT_KIND, SNAPSHOT_VERSION), "fingerprint": self.fingerprint, "step": step,
            "generator": generator, "ema": ema,
        })  # fmt: skip

    def has(self, step: int) -> bool:
        return (self.directory / SNAPSHOT_NAME.format(step=step)).exists()

    def steps(self) -> list[tuple[int, Path]]:
        return snapshot_steps(self.directory)

    def prune(self, after: int | None, every: int) -> None:
        """Start over (``after=None``: every snapshot goes), or resume from step ``after``: drop those past
        it and those off the cadence (a last-step one, saved again if the run ends there), so a run
        continued from a finished shorter one keeps exactly the snapshots of an uninterrupted run."""
        for step, path in self.steps():
            if after is None or step > after or not every or step % every:
                path.unlink()

    def copy_to(self, folder: Path, up_to: int) -> list[int]:
        """Copy the snapshots up to step ``up_to`` into ``folder/snapshots``; returns their steps."""
        (folder / "snapshots").mkdir()
        kept = [(s, p) for s, p in self.steps() if s <= up_to]
        for _, path in kept:
            shutil.copyfile(path, folder / "snapshots" / path.name)
        return [s for s, _ in kept]


def read_snapshots(folder: Path, fingerprint: str, expected_steps: list[int]):
    """(step, snapshot) for each snapshot of ``folder/snapshots``, loaded one at a time as the caller
    iterates.  The folder must hold exactly ``expected_steps`` (as ``train.json`` lists them: checked
    now), each from the run with ``fingerprint`` (checked as it is loaded)."""
    found = snapshot_steps(folder / "snapshots")
    if [s for s, _ in found] != expected_steps or not expected_steps:
        raise ArtifactError(f"{folder / 'snapshots'} holds steps {[s for s, _ in found]}, "
                            f"train.json lists {expected_steps}; rerun train")  # fmt: skip
    return _load_snapshots(found, fingerprint)


def _load_snapshots(found: list[tuple[int, Path]], fingerprint: str):
    for step, path in found:
        snap = _load(path, SNAPSHOT_KIND, SNAPSHOT_VERSION)
        if snap.get("fingerprint") != fingerprint or snap.get("step") != step:
            raise ArtifactError(f"{path} is not a snapshot of this training run; rerun train")
        yield step, snap
