"""Interrupting an orchestrator mid-training and running the same command again (the issue's requirement).

A user presses Ctrl-C on ``snakemake`` or ``dvc repro`` while a model trains, or the machine kills the
whole job (OOM killer, ``scancel`` past its grace period, power loss: SIGKILL, nothing can clean up).
Running the same command again must resume the train stage from its last checkpoint and end with the
same bytes as a run that was never interrupted; meanwhile no output may exist half-written.

Each case copies one small prepared workspace (data stages already run by Snakemake and committed to DVC,
one tiny DCGAN with frequent checkpoints), starts the orchestrator in its own session, waits for a
checkpoint at step KILL_AT or later, signals the whole process group (what a terminal's Ctrl-C does: the
orchestrator, its shell and ``animegen train`` all get SIGINT), checks what is left, reruns the same
command and compares with one uninterrupted Snakemake run.  Everything is on the CPU with one thread, so
an uninterrupted and a resumed run compute the same bits.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import copy_workspace, dump_yaml, git, load_yaml, without_study_c

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
DATASET, MODEL = "face_a_early", "dcgan"
STEPS = 400  # ~6 s of training on one CPU thread: time enough to see a checkpoint and interrupt
KILL_AT = 50  # interrupt once a checkpoint at this step or later exists
SNAKEMAKE = ["snakemake", "--cores", "2", "--resources", "gpu=1", "--workflow-profile", "workflow/profiles/default",
             f"data/models/{MODEL}"]  # fmt: skip
DVC = ["dvc", "repro", f"train@{MODEL}"]
DATA_STAGES = ["collect", "cutout", "resize", "split"]
CKPT = f"data/checkpoints/{MODEL}"
OUTPUTS = [f"data/models/{MODEL}", f"metrics/train/{MODEL}/metrics.json", f"metrics/train/{MODEL}/plots"]


def sh(cwd: Path, *cmd: str, check: bool = True, timeout: float = 300) -> subprocess.CompletedProcess:
    r = subprocess.run(cmd, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}):\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}")
    return r


def _tiny_params(params: dict) -> None:
    """One dataset's data stages and one tiny DCGAN; nothing else in the DAG."""
    params["datasets"] = {DATASET: params["datasets"][DATASET]}
    for src in params["datasets"][DATASET]["sources"]:
        if src["type"] == "synthetic":
            src["n"] = 10
    params["split"]["test"] = 2
    params["compare"]["pairs"] = {}
    without_study_c(params)
    params["models"] = {MODEL: params["models"][MODEL]}
    m = params["models"][MODEL]
    m["train"].update(steps=STEPS, batch_size=8, track_fid_every=100)  # snapshots survive the interruption too
    m["train"]["ema"]["update_after_step"] = 1
    m["net"].update(nz=16, ngf=8, ndf=8)
    # one thread everywhere: the bits must not depend on how many CPUs each run happened to get
    params["train"].update(device="cpu", cpu_threads=1, checkpoint_every_steps=5, log_every=5)
    params["sample"].update(device="cpu", cpu_threads=1, n=6, batch_size=4, grid=4)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> Path:
    """A fresh clone with the data stages run by Snakemake and recorded by DVC; nothing trained yet."""
    ws = copy_workspace(tmp_path_factory.mktemp("interrupt") / "prepared")
    params = load_yaml(ws / "params.yaml")
    _tiny_params(params)
    dump_yaml(params, ws / "params.yaml")
    git(ws, "init", "-q", "-b", "main")
    git(ws, "add", "-A")
    git(ws, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "init")
    sh(ws, *SNAKEMAKE[:-1], f"data/splits/{DATASET}.json")
    sh(ws, "dvc", "commit", "-f", "-q", "--with-deps", f"split@{DATASET}")
    assert not (ws / CKPT).exists()
    return ws


def _clone(prepared: Path, dest: Path) -> Path:
    shutil.copytree(prepared, dest, symlinks=True)  # copy2 keeps mtimes: Snakemake sees the data as up to date
    return dest


@pytest.fixture(scope="module")
def reference(prepared: Path, tmp_path_factory) -> Path:
    """The same command, never interrupted."""
    ws = _clone(prepared, tmp_path_factory.mktemp("interrupt") / "reference")
    sh(ws, *SNAKEMAKE)
    info = json.loads((ws / f"data/models/{MODEL}/train.json").read_text())
    assert info["resumed_from_step"] is None and info["steps_done"] == STEPS
    return ws


def _checkpoint_step(ws: Path) -> int:
    try:
        return json.loads((ws / CKPT / "last.json").read_text())["step"]
    except (OSError, ValueError, KeyError):  # not there yet, or between two files of a rotation
        return -1


def _newest_verified_step(ws: Path) -> int | None:
    """The step of the newest checkpoint whose file matches its sidecar's SHA-256 (what a rerun may load)."""
    for name in ("last", "prev"):
        pt, meta = ws / CKPT / f"{name}.pt", ws / CKPT / f"{name}.json"
        if pt.exists() and meta.exists():
            recorded = json.loads(meta.read_text())
            if hashlib.sha256(pt.read_bytes()).hexdigest() == recorded["sha256"]:
                return recorded["step"]
    return None


def _alive_in_group(pgid: int) -> list[int]:
    """Processes of group ``pgid`` that still run (zombies of reparented children are finished)."""
    alive = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] not in "ZX":
            alive.append(int(stat.parent.name))
    return alive


def _interrupt(ws: Path, cmd: list[str], sig: signal.Signals) -> tuple[int, str]:
    """Run ``cmd`` in its own process group; once a checkpoint at KILL_AT or later exists send ``sig`` to
    the group, as a terminal's Ctrl-C does.  Returns the exit status and the output."""
    log = ws / "interrupted.log"
    with open(log, "w") as out:
        # A terminal's process takes Ctrl-C; one started in the background by a non-interactive shell (a
        # CI runner's `cmd &`) inherits SIGINT ignored, and so would the orchestrator: restore the default.
        proc = subprocess.Popen(cmd, cwd=ws, env=ENV, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while proc.poll() is None and _checkpoint_step(ws) < KILL_AT:
            if time.monotonic() > deadline:
                raise AssertionError(f"no checkpoint at step {KILL_AT} after 240 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.02)
        assert proc.poll() is None, (
            f"{cmd[0]} ended ({proc.returncode}) before it could be interrupted: raise STEPS or lower KILL_AT\n"
            + log.read_text()[-3000:]
        )
        os.killpg(proc.pid, sig)
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:  # only on a failure above: never leave our own processes behind
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    deadline = time.monotonic() + 30  # the orchestrator is gone; so must be its shell and stage process
    while _alive_in_group(proc.pid):
        assert time.monotonic() < deadline, f"processes of the interrupted {cmd[0]} still run: {_alive_in_group(proc.pid)}"
        time.sleep(0.05)
    return rc, log.read_text()


def _assert_nothing_half_written(ws: Path, output: str) -> int:
    """After the interruption: no output of the train stage exists, a verified checkpoint does.  Returns its step."""
    assert not (ws / f"data/models/{MODEL}/train.json").exists(), "training finished before the interruption"
    for out in OUTPUTS:
        assert not (ws / out).exists(), f"{out} exists after an interrupted run: a later stage would trust it\n{output[-3000:]}"
    step = _newest_verified_step(ws)
    assert step is not None and KILL_AT <= step < STEPS, f"no usable checkpoint after the interruption (step {step})"
    return step


def _files(ws: Path, folder: str) -> list[Path]:
    """Files below ``folder``, without the marker Snakemake puts in a directory output it made itself."""
    return sorted(p.relative_to(ws) for p in (ws / folder).rglob("*") if p.is_file() and p.name != ".snakemake_timestamp")


def _assert_same_as_uninterrupted(ws: Path, reference: Path, resumed_at: int) -> None:
    info = json.loads((ws / f"data/models/{MODEL}/train.json").read_text())
    assert info["resumed_from_step"] == resumed_at, "the rerun did not resume from the last checkpoint"
    assert info["steps_done"] == STEPS and info["stop_reason"] == "steps" and info["refused_checkpoints"] == []
    expected = json.loads((reference / f"data/models/{MODEL}/train.json").read_text())
    assert {**info, "resumed_from_step": None} == expected
    # model.pt is saved byte-reproducibly (save_torch_atomic), so equal bytes mean equal weights, EMA included
    model, ref_model = (w / f"data/models/{MODEL}/model.pt" for w in (ws, reference))
    assert model.read_bytes() == ref_model.read_bytes(), "resumed weights differ from an uninterrupted run"
    curves = _files(ws, f"metrics/train/{MODEL}")
    assert curves == _files(reference, f"metrics/train/{MODEL}")
    for rel in curves:
        assert (ws / rel).read_bytes() == (reference / rel).read_bytes(), rel
    assert not list(ws.rglob("*.partial")), "a temporary output directory was left behind"


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_interrupting_snakemake_and_rerunning_resumes_to_the_same_weights(prepared, reference, tmp_path, sig):
    ws = _clone(prepared, tmp_path / "ws")
    rc, output = _interrupt(ws, SNAKEMAKE, sig)
    assert rc != 0
    if sig == signal.SIGINT:
        assert "Terminating processes on user request" in output, output[-3000:]
    step = _assert_nothing_half_written(ws, output)

    r = sh(ws, *SNAKEMAKE, check=False)
    if r.returncode != 0 and sig == signal.SIGKILL:
        # A killed Snakemake cannot remove its lock; Snakemake refuses to guess and says what to do.
        # That is Snakemake's design (README): `--unlock`, then the same command.
        assert "--unlock" in r.stderr + r.stdout, r.stderr[-3000:]
        sh(ws, *SNAKEMAKE[:-1], "--unlock")
        r = sh(ws, *SNAKEMAKE)
    assert r.returncode == 0, r.stderr[-3000:]
    # only the train job ran again: the data stages were not touched.  (The killed job's outputs are
    # marked incomplete; the profile's rerun-incomplete reruns such a job should one of them exist.)
    ran = {line.split()[-1].rstrip(":") for line in (r.stdout + r.stderr).splitlines() if line.startswith("localrule ")}
    assert ran == {"train"}, ran
    assert f"resumed from checkpoint at step {step}" in (ws / f"logs/train/{MODEL}.log").read_text()
    _assert_same_as_uninterrupted(ws, reference, step)
    dry = sh(ws, *SNAKEMAKE, "-n")
    assert "Nothing to be done" in dry.stdout + dry.stderr


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_interrupting_dvc_repro_and_rerunning_resumes_to_the_same_weights(prepared, reference, tmp_path, sig):
    ws = _clone(prepared, tmp_path / "ws")
    rc, output = _interrupt(ws, DVC, sig)
    assert rc != 0
    if sig == signal.SIGINT:
        assert f"failed to reproduce 'train@{MODEL}'" in output, output[-3000:]
    step = _assert_nothing_half_written(ws, output)
    assert f"train@{MODEL}" not in load_yaml(ws / "dvc.lock")["stages"], "an interrupted stage was recorded"

    r = sh(ws, *DVC)
    out = r.stdout + r.stderr
    assert f"Running stage 'train@{MODEL}'" in out
    assert all(f"Stage '{s}@{DATASET}' didn't change, skipping" in out for s in DATA_STAGES), out
    assert f"resumed from checkpoint at step {step}" in out
    _assert_same_as_uninterrupted(ws, reference, step)
    assert json.loads(sh(ws, "dvc", "status", "--json", "--with-deps", f"train@{MODEL}").stdout or "{}") == {}
    lock = load_yaml(ws / "dvc.lock")["stages"][f"train@{MODEL}"]
    assert {o["path"] for o in lock["outs"]} == set(OUTPUTS)


def test_a_checkpoint_interrupted_at_any_point_of_its_rotation_leaves_one_that_verifies(tmp_path, monkeypatch):
    """Cut ``save_checkpoint`` short before each of its file operations (renames, unlinks), as a signal
    between two of them would: the newest checkpoint saved before must still load, and saving continues."""
    from animegen import train as T  # noqa: PLC0415

    def state(step: int) -> dict:
        return {"format": T.CHECKPOINT_FORMAT, "fingerprint": "f", "step": step}

    real_replace, real_unlink = os.replace, os.unlink
    for cut in range(20):
        d = tmp_path / str(cut)
        T.save_checkpoint(d, state(1))
        T.save_checkpoint(d, state(2))
        calls = [0]

        def interrupt_at_cut(real):
            def op(*args, **kwargs):
                calls[0] += 1
                if calls[0] == cut + 1:
                    raise KeyboardInterrupt
                return real(*args, **kwargs)

            return op

        monkeypatch.setattr(os, "replace", interrupt_at_cut(real_replace))
        monkeypatch.setattr(os, "unlink", interrupt_at_cut(real_unlink))
        try:
            T.save_checkpoint(d, state(3))
            finished = True
        except KeyboardInterrupt:
            finished = False
        monkeypatch.setattr(os, "replace", real_replace)
        monkeypatch.setattr(os, "unlink", real_unlink)
        found, _ = T.find_resumable(d, "f", 100, log=lambda m: None)
        assert found is not None and found["step"] >= 2, f"cut before file operation {cut}: nothing to resume from"
        T.save_checkpoint(d, state(4))
        assert T.find_resumable(d, "f", 100, log=lambda m: None)[0]["step"] == 4
        if finished:
            assert found["step"] == 3
            break
    else:
        raise AssertionError("save_checkpoint never finished: the loop above is wrong")
