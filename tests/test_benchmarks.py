"""Every script in benchmarks/ runs at a tiny size, so none can rot unnoticed (their numbers are read by
people, never asserted: only that they run to the end and print their table)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO

BIN = Path(sys.executable).parent
TINY = {
    "preprocess.py": (["--n-demo", "4", "--n-large", "4", "--size", "64", "--sequential", "--scale", "12"], "dvc status (again)"),
    "cam.py": (["--n", "8", "--batch-size", "4", "--repeats", "1"], "resnet18 @ 128 px"),
    "track.py": (["--steps", "4", "--every", "2", "--repeats", "1", "--size", "16"], "identical trained weights: True"),
    "fid.py": (["--n-gen", "8", "--n-ref", "6", "--size", "16", "--batch-size", "8", "--device", "cpu", "--n-plain", "4",
                "--frechet-dim", "64", "--frechet-ref", "100", "--points", "2"], "| 100 vectors (rank 64) |"),  # fmt: skip
    "mae.py": (["--n-gen", "4", "--n-ref", "6", "--sizes", "16"], "| 16 | anchor: one cdist in float32 |"),
    "translation.py": (["--size", "32", "--ngf", "4", "--batch", "2", "--arch", "small_cnn", "--steps", "1"],
                       "| cam cached |"),  # fmt: skip
    "animegan.py": (["--size", "32", "--ch", "4", "--batch", "2", "--steps", "1"], "| study D |"),
    "councilgan.py": (["--scale", "0.125", "--dim", "4", "--steps", "1"], "| proposed: 512 px, 3 councils, IN | 64 |"),
    "gpu.py": (["--dry-run"], "| ddpm_hourglass | 32 | 2 | fp32 |"),  # on a machine without CUDA it refuses (tested below)
    # the memory part builds study A's full-size networks (minutes on a CPU): run it by hand
    "models.py": (["--steps", "2", "--size", "16", "--batch", "16", "--dim", "8", "--ddim-n", "2", "--ddim-counts", "2,4",
                   "--only", "step,ddim", "--device", "cpu"], "ddpm train step"),  # fmt: skip
}


def test_every_benchmark_script_is_covered():
    assert sorted(p.name for p in (REPO / "benchmarks").glob("*.py")) == sorted(TINY)


@pytest.mark.parametrize("script", sorted(TINY))
def test_the_benchmark_runs_at_a_tiny_size(script):
    args, expect = TINY[script]
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}"}
    r = subprocess.run([sys.executable, str(REPO / "benchmarks" / script), *args], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)  # fmt: skip
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    assert expect in r.stdout, r.stdout[-2000:]


def test_the_gpu_benchmark_refuses_in_one_line_without_cuda():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the benchmark would run")
    r = subprocess.run([sys.executable, str(REPO / "benchmarks/gpu.py")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and r.stdout == "" and r.stderr.count("\n") == 1 and "no CUDA device here" in r.stderr, r.stderr


def _mutation_script():
    """scripts/mutation.py as a module (it is a script, not part of the package)."""
    import importlib.util  # noqa: PLC0415

    spec = importlib.util.spec_from_file_location("mutation", REPO / "scripts/mutation.py")
    mutation = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mutation)
    return mutation


def test_the_mutation_script_counts_mutmut_results_per_module(tmp_path):
    """scripts/mutation.py is not run in CI (hours); its table is, on mutmut's own meta format."""
    mutation = _mutation_script()
    meta = tmp_path / "src/animegen/metrics/kid.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {"a": 1, "b": 1, "c": 0, "d": 36, "e": 33, "f": None, "g": 3}
    meta.write_text(json.dumps({"exit_code_by_key": {f"animegen.metrics.kid.x_f__mutmut_{k}": v for k, v in codes.items()}}))
    table, by_module = mutation.summary(tmp_path)
    assert by_module == {"animegen.metrics.kid": {"killed": 3, "survived": 1, "timeout": 1, "no tests": 1}}
    assert "| animegen.metrics.kid | 6 | 3 | 1 | 1 | 1 | 0 | 80.0 % |" in table  # 3 killed + 1 timeout of 5 judged


def test_the_mutation_scripts_sample_is_seeded_uniform_and_reported_with_its_interval(tmp_path):
    """``--sample N``: N distinct names per seed, the table over them only, the Wilson interval pinned."""
    mutation = _mutation_script()
    names = [f"animegen.m.x_f__mutmut_{i}" for i in range(1, 101)]
    first = mutation.draw_sample(names, 10, seed=0)
    assert first == mutation.draw_sample(list(reversed(names)), 10, seed=0) == sorted(first)  # order-free
    assert len(set(first)) == 10 and set(first) <= set(names)
    assert first != mutation.draw_sample(names, 10, seed=1)
    for bad in (0, 101):
        with pytest.raises(ValueError, match=f"--sample: {bad} is not between 1 and the 100 mutants"):
            mutation.draw_sample(names, bad, seed=0)
    # Wilson's interval, checked against its closed form at 95 of 100 (statsmodels: 0.88825, 0.97846)
    lo, hi = mutation.wilson(95, 100)
    assert (round(lo, 5), round(hi, 5)) == (0.88825, 0.97846)
    assert mutation.wilson(10, 10)[1] == pytest.approx(1.0) and mutation.wilson(10, 10)[0] == pytest.approx(0.7225, abs=1e-4)
    meta = tmp_path / "src/animegen/m.py.meta"
    meta.parent.mkdir(parents=True)
    codes = {1: 1, 2: 0, 3: 36, 4: 33, 5: 1}
    meta.write_text(json.dumps({"exit_code_by_key": {f"animegen.m.x_f__mutmut_{k}": v for k, v in codes.items()}}))
    only = {"animegen.m.x_f__mutmut_1", "animegen.m.x_f__mutmut_2", "animegen.m.x_f__mutmut_3", "animegen.m.x_f__mutmut_4"}
    table, by_module = mutation.summary(tmp_path, only)
    assert by_module == {"animegen.m": {"killed": 1, "survived": 1, "timeout": 1, "no tests": 1}}
    line = mutation.estimate(by_module)
    assert line.startswith("sample score 66.7 % (95 % Wilson interval 20.8-93.9 %) over 3 judged mutants")
    assert "timeouts counted as survivors: 33.3 %" in line and "'no tests' counted as survivors: 50.0 %" in line
