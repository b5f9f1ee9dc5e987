"""Snakemake and DVC on one workspace through `animegen-sync` (src/animegen/sync.py).

Snakemake runs the tiny pipeline, the helper records it in dvc.lock; a branch changes one model's
learning rate and reruns only that model; switching branches with the helper leaves neither tool
anything to do (without it Snakemake would retrain); `dvc metrics diff` compares the branches.  And the
one lock: a second command is refused (or waits) while the first holds it.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_workspace, dump_yaml, git, load_yaml
from test_pipeline import BIN, ENV, _summary, sh
from tiny_workspace import MODEL, commit, tiny_workspace, tree_digest

pytestmark = pytest.mark.slow

SYNC = str(BIN / "animegen-sync")
SNAKEMAKE_ARGS = ["--cores", "2", "--resources", "gpu=1", "--workflow-profile", "workflow/profiles/default"]
MODEL_OUTS = [f"data/models/{MODEL}", f"data/samples/{MODEL}", f"data/evaluate/{MODEL}"]


def sync(ws: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    return sh(ws, SYNC, *args, check=check)


def job_stats(output: str) -> dict[str, int]:
    """The "Job stats" table Snakemake prints before it runs (or dry-runs) anything."""
    table = output.split("Job stats:", 1)[1].split("\n\n")[0]
    return {rule: int(n) for rule, n in re.findall(r"^(\w+)\s+(\d+)$", table, re.M) if rule != "total"}


def snakemake_pending(ws: Path) -> set[str]:
    """Rules with an output that `snakemake -n --summary` plans to update."""
    return {row["rule"] for row in _summary(ws, "-n", "--summary").values() if row["plan"] == "update pending"}


def dvc_status(ws: Path) -> dict:
    return json.loads(sh(ws, "dvc", "status", "--json").stdout or "{}")


def test_branch_switch_and_metrics_diff_with_both_tools(tmp_path: Path):
    ws = tiny_workspace(tmp_path / "ws")
    stages = set(sh(ws, "dvc", "stage", "list", "--name-only").stdout.split())

    # main: Snakemake runs everything (under the lock); DVC knows nothing of it until the helper records it
    ran = sync(ws, "run", "--", "snakemake", *SNAKEMAKE_ARGS)
    assert job_stats(ran.stdout + ran.stderr) == {"all": 1, "collect": 2, "cutout": 2, "resize": 2, "split": 2,
                                                  "reference": 2, "derive": 2, "train": 1, "sample": 1, "evaluate": 1,
                                                  "track": 1, "compare": 1, "summary": 1, "survey": 1,
                                                  "survey_score": 1}  # fmt: skip  (an empty survey: no translators)
    assert not (ws / "dvc.lock").exists() and set(dvc_status(ws)) == stages
    recorded = sync(ws, "after-snakemake")
    assert "`dvc status` is clean" in recorded.stderr
    assert set(load_yaml(ws / "dvc.lock")["stages"]) == stages and dvc_status(ws) == {}
    assert "Nothing to be done" in sh(ws, "snakemake", "-n", "--cores", "1").stdout
    git(ws, "add", "-A")
    commit(ws, "results on main")
    on_main = {rel: tree_digest(ws, rel) for rel in MODEL_OUTS}
    reference = tree_digest(ws, "data/reference/face_a_early")

    # branch lr: one model's learning rate; only that model's stages (and the summary) are stale
    git(ws, "checkout", "-q", "-b", "lr")
    params = load_yaml(ws / "params.yaml")
    assert params["models"][MODEL]["net"]["lr"] == 0.0002
    params["models"][MODEL]["net"]["lr"] = 0.0005
    dump_yaml(params, ws / "params.yaml")
    assert snakemake_pending(ws) == {"train", "sample", "evaluate", "track", "summary"}
    lock_before = (ws / "dvc.lock").read_text()
    refused = sync(ws, "after-snakemake", check=False)  # recording now would call stale outputs up to date
    assert refused.returncode == 3 and "Snakemake still has jobs to run" in refused.stderr
    assert "train x1" in refused.stderr and (ws / "dvc.lock").read_text() == lock_before
    rerun = sync(ws, "snakemake", *SNAKEMAKE_ARGS)  # runs, then records, under one lock
    assert job_stats(rerun.stdout + rerun.stderr) == {"all": 1, "train": 1, "sample": 1, "evaluate": 1, "track": 1, "summary": 1}
    assert "`dvc status` is clean" in rerun.stderr and dvc_status(ws) == {}
    assert "Nothing to be done" in sh(ws, "snakemake", "-n", "--cores", "1").stdout
    git(ws, "add", "-A")
    commit(ws, "dcgan lr 0.0005")
    on_branch = {rel: tree_digest(ws, rel) for rel in MODEL_OUTS}
    assert on_branch[f"data/models/{MODEL}"] != on_main[f"data/models/{MODEL}"]
    assert tree_digest(ws, "data/reference/face_a_early") == reference

    # back to main with the helper: main's outputs from the cache, and neither tool has anything to do
    sync(ws, "after-checkout", "main")
    assert git(ws, "rev-parse", "--abbrev-ref", "HEAD").strip() == "main"
    assert load_yaml(ws / "params.yaml")["models"][MODEL]["net"]["lr"] == 0.0002
    assert {rel: tree_digest(ws, rel) for rel in MODEL_OUTS} == on_main
    dry = sh(ws, "snakemake", "-n", "--cores", "1").stdout
    assert "Nothing to be done" in dry and "missing provenance/metadata" not in dry
    assert dvc_status(ws) == {} and git(ws, "status", "--porcelain").strip() == ""

    # the same switch by hand, without telling Snakemake: DVC is content, Snakemake would retrain
    git(ws, "checkout", "-q", "lr")
    sh(ws, "dvc", "checkout", "-q")
    assert dvc_status(ws) == {} and {rel: tree_digest(ws, rel) for rel in MODEL_OUTS} == on_branch
    assert {"train", "sample", "evaluate", "track", "summary"} <= snakemake_pending(ws)
    assert "Snakemake and DVC both have nothing to do" in sync(ws, "after-dvc").stderr
    assert "Nothing to be done" in sh(ws, "snakemake", "-n", "--cores", "1").stdout
    repro = sync(ws, "repro")  # dvc repro + after-dvc: nothing runs
    assert "Running stage" not in repro.stdout and "Data and pipelines are up to date." in repro.stdout

    # the two experiments side by side: only the changed model's metrics differ
    diff = json.loads(sh(ws, "dvc", "metrics", "diff", "main", "lr", "--json").stdout)
    fid = diff[f"metrics/models/{MODEL}.json"]["fid"]
    assert fid["old"] != fid["new"]
    assert not any(k.startswith("metrics/compare/") for k in diff)  # the datasets' pair is untouched
    assert f"metrics/train/{MODEL}/metrics.json" in diff


HOLD = """
import os, pathlib, sys, time
here = pathlib.Path(sys.argv[1])
(here / "holder.pid").write_text(str(os.getpid()))
(here / "started").touch()
while not (here / "release").exists():
    time.sleep(0.05)
(here / "finished").write_text(repr(time.time()))
"""


def wait_for(path: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_the_workspace_lock_is_honoured(tmp_path: Path):
    ws = copy_workspace(tmp_path / "ws")
    flags = tmp_path / "flags"
    flags.mkdir()
    holder = subprocess.Popen([SYNC, "run", "--", sys.executable, "-c", HOLD, str(flags)], cwd=ws, env=ENV)
    try:
        wait_for(flags / "started")

        # refused at once, naming the holder; the command never runs
        second = sync(ws, "run", "--", sys.executable, "-c", f"open({str(flags / 'second')!r}, 'w')", check=False)
        assert second.returncode == 75, second.stderr
        assert f"locked by pid {holder.pid} (animegen-sync run -- {sys.executable} -c" in second.stderr
        assert "Snakemake and DVC must not write it at the same time" in second.stderr
        assert not (flags / "second").exists()
        for args in (["repro"], ["after-snakemake"], ["after-dvc"], ["snakemake", "--cores", "1"]):
            r = sync(ws, *args, check=False)
            assert r.returncode == 75 and f"locked by pid {holder.pid}" in r.stderr, args
        assert not (ws / "dvc.lock").exists() and not (ws / ".snakemake").exists()

        # --wait: the second command starts only once the first has finished
        waiter = subprocess.Popen(
            [SYNC, "--wait", "60", "run", "--", sys.executable, "-c",
             f"import time; open({str(flags / 'second')!r}, 'w').write(repr(time.time()))"],
            cwd=ws, env=ENV, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        time.sleep(1.5)
        assert waiter.poll() is None and not (flags / "second").exists()
        (flags / "release").touch()
        assert holder.wait(timeout=30) == 0
        assert waiter.wait(timeout=30) == 0
        assert f"waiting (up to 60 s) for the workspace lock, held by pid {holder.pid}" in waiter.stderr.read()
        assert float((flags / "second").read_text()) >= float((flags / "finished").read_text())
    finally:
        (flags / "release").touch()
        holder.wait(timeout=30)

    # free again; a wrapped animegen-sync in the same workspace runs under its parent's lock
    nested = sync(ws, "run", "--", SYNC, "run", "--", sys.executable, "-c", "print('nested ran')")
    assert "nested ran" in nested.stdout

    # SIGTERM to the helper reaches the command; the lock is released only when the command has exited
    for name in ("started", "release", "finished", "holder.pid"):
        (flags / name).unlink(missing_ok=True)
    holder = subprocess.Popen([SYNC, "run", "--", sys.executable, "-c", HOLD, str(flags)], cwd=ws, env=ENV)
    try:
        wait_for(flags / "started")
        command = int((flags / "holder.pid").read_text())
        holder.send_signal(signal.SIGTERM)
        assert holder.wait(timeout=30) == 128 + signal.SIGTERM
    finally:
        (flags / "release").touch()
        holder.wait(timeout=30)
    assert not Path(f"/proc/{command}").exists() and not (flags / "finished").exists()
    assert sync(ws, "run", "--", "true").returncode == 0
    assert os.path.getsize(ws / ".dvc/tmp/animegen-sync.lock") == 0  # no holder recorded once released
