"""FID over training, shared by the ``track`` (generators) and ``track_translator`` (translators) stages.

The training loop keeps a generator snapshot every ``train.track_fid_every`` steps (the same loop for
both kinds of model, :mod:`animegen.fitting`).  A track stage turns each snapshot into a set of images --
a generator samples ``track.n`` images from one seed, a translator translates the same held-out source
images -- and measures their FID against a reference; this module holds what the two stages share: the
record of an untracked model, the loop over snapshots, and the curve files
(``metrics/track/<name>/fid.tsv``, ``fid_ema.tsv``, ``fid.png``), ``metrics/track/<name>.json`` (the
numbers, :data:`METRICS`) and ``metrics/track/<name>.record.json`` (everything, provenance included).
Successive points differ by the generator only, so they compare with each other; FID from a few images
is biased upwards, so they do not compare with the evaluation stages' FID.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

from animegen import paths
from animegen.artifacts.records import write_result
from animegen.errors import PipelineError
from animegen.io import atomic_dir, write_text_atomic
from animegen.metrics.extractor import Extractor
from animegen.metrics.suite import fid_against
from animegen.plots import ema, training_curves_png
from animegen.train import snapshot_generator

METRICS = ("best_fid", "best_step", "last_fid", "last_fid_ema")  # an untracked model's metrics file is empty


def _write(root: Path, name: str, result: dict) -> None:
    write_result(root / paths.TRACK_METRICS.format(model=name), root / paths.TRACK_RECORD.format(model=name), "track",
                 result, METRICS)


class TrackError(PipelineError):
    """A snapshot cannot give the generator asked for (the message names the params key)."""


def tsv(column: str, steps: list[int], values: list[float]) -> str:
    rows = "".join(f"{s}\t{v:.6f}\n" for s, v in zip(steps, values))
    return f"step\t{column}\n{rows}"


def record_untracked(root: Path, name: str, result: dict, section: str) -> dict:
    """A model trained without snapshots: an empty curve folder (the DVC stage's declared output exists)
    and a JSON that says so and why; nothing is generated or measured."""
    result.update(tracked=False, reason=f"trained with {section}.{name}.train.track_fid_every 0: no generator snapshots")
    with atomic_dir(root / paths.TRACK.format(model=name)):
        pass
    _write(root, name, result)
    return {"model": name, "tracked": False}


def measure_snapshots(model, snapshots: Iterable[tuple[int, dict]], use_ema: tuple[str, bool],
                      images_of: Callable[[torch.nn.Module], np.ndarray], reference, extractor: Extractor,
                      label: str) -> tuple[list[int], list[float]]:  # fmt: skip
    """(steps, FIDs): each snapshot's generator (its EMA one when ``use_ema``, a (params key, value) pair,
    says so) makes images through ``images_of(net)``, scored against ``reference``.  :class:`TrackError`
    naming the key when it asks for an EMA the model was trained without."""
    key, want_ema = use_ema
    steps, fids = [], []
    for step, snap in snapshots:
        try:
            net = snapshot_generator(model, snap, want_ema).to(extractor.device).eval()
        except ValueError as e:
            raise TrackError(f"{key}: {e}") from None
        images = images_of(net)
        steps.append(step)
        fids.append(fid_against(images, reference, extractor))
        print(f"{label}: step {step}: FID {fids[-1]:.3f} ({len(images)} images)", flush=True)
    return steps, fids


def write_curve(root: Path, name: str, result: dict, steps: list[int], fids: list[float], smoothing: float, title: str) -> dict:
    """Complete ``result`` with the curve's summary and write the curve folder and the JSON; returns the
    stage's report."""
    smoothed = [float(v) for v in ema(fids, smoothing)]
    best = int(np.argmin(fids))
    result.update({
        "tracked": True, "points": len(steps), "smoothing": smoothing,
        "last_step": steps[-1], "last_fid": fids[-1], "last_fid_ema": smoothed[-1],
        "best_step": steps[best], "best_fid": fids[best],
        "steps": steps, "fid": fids, "fid_ema": smoothed,
    })  # fmt: skip
    with atomic_dir(root / paths.TRACK.format(model=name)) as tmp:
        write_text_atomic(tmp / "fid.tsv", tsv("fid", steps, fids))
        write_text_atomic(tmp / "fid_ema.tsv", tsv("fid_ema", steps, smoothed))
        rows = [{"step": s, "fid": f} for s, f in zip(steps, fids)]
        (tmp / "fid.png").write_bytes(training_curves_png(rows, title, smoothing, legend="FID per snapshot"))
    _write(root, name, result)
    return {"model": name, "tracked": True, "points": len(steps), "last_fid": fids[-1], "best_fid": fids[best]}
