"""One GPU per GPU stage (animegen.gpus): claims by real processes on declared fake GPUs.

The Snakemake run with ``--resources gpu=2`` is in test_pipeline.py (it reuses the pipeline workspace).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from animegen import cli, gpus

# claims a GPU, prints "<id> <CUDA_VISIBLE_DEVICES>", then holds it until its stdin closes
HOLDER = (
    "import os, sys\n"
    "from animegen import gpus\n"
    "g = gpus.claim(log=lambda m: print('waiting:', m, flush=True), poll_s=0.05)\n"
    "print(g, os.environ.get('CUDA_VISIBLE_DEVICES'), flush=True)\n"
    "sys.stdin.read()\n"
)


def env_with(tmp_path: Path, **over: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CUDA_VISIBLE_DEVICES", gpus.ENV_COUNT)}
    return {**env, gpus.ENV_LOCKS: str(tmp_path / "locks"), **over}


def holder(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", HOLDER], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)


def release(*procs: subprocess.Popen) -> None:
    for p in procs:
        if p.poll() is None:
            p.stdin.close()
            p.wait(timeout=30)


def test_two_processes_get_two_gpus_a_third_waits_and_a_killed_holders_gpu_is_reused(tmp_path):
    env = env_with(tmp_path, ANIMEGEN_GPUS="2")
    first, second = holder(env), holder(env)
    try:
        got = {first.stdout.readline().split()[0], second.stdout.readline().split()[0]}
        assert got == {"0", "1"}  # two GPUs, one each
        third = holder(env)
        try:
            line = third.stdout.readline()
            assert line.startswith("waiting: all 2 GPUs (0, 1) are in use"), line
            first_gpu = open(tmp_path / "locks/gpu-0.lock").read().split()[0]  # the holder's PID is in its lock file
            killed = first if int(first_gpu) == first.pid else second
            os.kill(killed.pid, signal.SIGKILL)  # no chance to clean up: the kernel drops its lock
            killed.wait(timeout=30)
            assert third.stdout.readline().split() == ["0", "0"]  # reused, and the only visible device
        finally:
            release(third)
    finally:
        release(first, second)


def test_with_one_gpu_or_none_nothing_is_claimed_or_changed(tmp_path):
    for over in ({"ANIMEGEN_GPUS": "0"}, {"ANIMEGEN_GPUS": "1"}, {"CUDA_VISIBLE_DEVICES": "3"}):  # 3: e.g. SLURM's pick
        p = holder(env_with(tmp_path, **over))
        try:
            assert p.stdout.readline().split() == ["None", over.get("CUDA_VISIBLE_DEVICES", "None")], over
        finally:
            release(p)
    assert not (tmp_path / "locks").exists()


def test_the_gpus_are_those_the_environment_lists(tmp_path, monkeypatch):
    monkeypatch.delenv(gpus.ENV_COUNT, raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2, 5")
    assert gpus.visible_gpus() == ["2", "5"]  # ids as CUDA reads them; the claim exports one of them
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    fake = tmp_path / "bin"
    fake.mkdir()
    monkeypatch.setenv("PATH", str(fake))
    assert gpus.visible_gpus() == []  # no nvidia-smi: no GPU
    smi = fake / "nvidia-smi"
    smi.write_text("#!/bin/sh\necho 'GPU 0: NVIDIA H100 (UUID: GPU-a)'\necho '  MIG 1g.10gb Device 0: (UUID: MIG-b)'\n"
                   "echo 'GPU 1: NVIDIA H100 (UUID: GPU-c)'\n")  # fmt: skip
    smi.chmod(0o755)
    assert gpus.visible_gpus() == ["0", "1"]
    monkeypatch.setenv(gpus.ENV_COUNT, "3")
    assert gpus.visible_gpus() == ["0", "1", "2"]
    for bad in ("two", "-1", "1.5"):
        monkeypatch.setenv(gpus.ENV_COUNT, bad)
        with pytest.raises(gpus.GpuError, match=f"ANIMEGEN_GPUS={bad!r}: expected the number of GPUs"):
            gpus.visible_gpus()


def test_the_gpu_stages_are_the_rules_that_declare_a_gpu():
    import re

    from conftest import REPO

    declared = set()
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        for rule, body in re.findall(r"^rule (\w+):\n((?:[ \t].*\n|\n)*)", smk.read_text(), re.M):
            if re.search(r"^\s+gpu=1,", body, re.M):
                declared.add(rule)
    assert declared == cli.GPU_STAGES


def test_a_gpu_stage_on_the_cpu_or_pinned_to_a_gpu_claims_none():
    from conftest import REPO

    from animegen.config import load_params

    params = load_params(REPO / "params.yaml")
    assert all(cli.claims_gpu(stage, params) for stage in cli.GPU_STAGES)  # the demo's devices are auto
    assert not cli.claims_gpu("collect", params)
    for stage in cli.GPU_STAGES:
        section = cli.DEVICE_SECTIONS.get(stage, "inception")
        for device, claims in (("cpu", False), ("cuda:1", False), ("cuda", True), ("auto", True)):
            changed = {**params, section: {**params[section], "device": device}}
            assert cli.claims_gpu(stage, changed) is claims, (stage, section, device)
    # every section named is one whose device that stage really reads
    assert set(cli.DEVICE_SECTIONS.values()) | {"inception"} == {s for s in params if isinstance(params[s], dict) and "device" in params[s]}
