"""Run records: how long each stage run took and on what, kept beside the logs, never in an output.

Every ``animegen <stage>`` run that succeeds writes ``logs/runs/<stage>/<target>.json``: the stage's
report, its wall time (``seconds``, ``started_at``, ``finished_at``) and the host.  The train and sample
stages add the device's name (the GPU's, or the CPU's model and threads) and the time spent in the
training loop or in generation.  These facts differ from run to run, so they stay out of every stage
output: on the CPU the outputs are byte-identical across reruns, DVC hashes them, and a fresh clone's
``dvc repro`` reproduces the same ``dvc.lock``.  The records live under ``logs/`` (ignored by git) and
describe the runs made in this workspace; outputs pulled from a DVC remote come without them.

``animegen timing`` prints study A's budget table from them: per model, the training's and the
generation's wall time and device beside ``models.<m>.train.time_budget_hours`` (study A: 12 hours of
each on one RTX 3080).
"""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path

from animegen.io import write_json_atomic

RUNS = "logs/runs"


def record_path(root: Path, stage: str, target: str | None) -> Path:
    return root / RUNS / stage / f"{target or stage}.json"


def write_run_record(root: Path, stage: str, target: str | None, record: dict) -> None:
    write_json_atomic(record_path(root, stage, target), {"stage": stage, "target": target, **record, "host": platform.node()})


def read_run_record(root: Path, stage: str, target: str) -> dict | None:
    """The last successful run's record, or None when there is none (or it is unreadable)."""
    try:
        return json.loads(record_path(root, stage, target).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _duration(seconds) -> str:
    """h:mm:ss, readable for a demo's seconds and a study's twelve hours alike."""
    if seconds is None:
        return "-"
    s = round(seconds)
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def _when(record: dict | None) -> str:
    if not record or "finished_at" not in record:
        return "-"
    return datetime.fromtimestamp(record["finished_at"], timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def timing_table(params: dict, root: Path) -> str:
    """Study A's budget table of the models and translators in ``params``, from their last train and sample
    (translate) run records."""
    head = ("| model | train time | budget h | steps | stopped by | train device | sample time | images | sample device "
            "| trained at |")  # fmt: skip
    rows = [head, "|---|---:|---:|---:|---|---|---:|---:|---|---|"]
    missing = []
    entries = [(name, m, "train", "sample", "sampling_seconds") for name, m in sorted(params["models"].items())]
    entries += [(name, m, "train_translator", "translate", "seconds") for name, m in sorted(params["translators"].items())]
    for name, m, train_stage, gen_stage, gen_seconds in entries:  # a translator's generation is its translate run
        t, s = read_run_record(root, train_stage, name), read_run_record(root, gen_stage, name)
        if t is None or s is None:
            missing.append(name)
        t, s = t or {}, s or {}
        rows.append(
            f"| {name} | {_duration(t.get('training_seconds'))} | {m['train']['time_budget_hours']:g} | "
            f"{t.get('steps_done', '-')} | {t.get('stop_reason', '-')} | {t.get('device_name', '-')} | "
            f"{_duration(s.get(gen_seconds))} | {s.get('n', '-')} | {s.get('device_name', '-')} | {_when(t)} |"
        )
    notes = ["", "Wall time (h:mm:ss) of the training loop (summed over resumed runs) and of generation, from the last "
             f"successful run of each stage in this workspace ({RUNS}/); study A allows 12 h of each per model "
             "on one RTX 3080."]  # fmt: skip
    if missing:
        notes.append(f"No run record for {', '.join(missing)}: not run in this workspace yet (or its outputs came "
                     "from a DVC remote).")  # fmt: skip
    return "\n".join(rows + notes) + "\n"
