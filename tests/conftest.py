"""Shared fixtures: a throw-away workspace with the project's real params.yaml, Snakefile and dvc.yaml."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from ruamel.yaml import YAML

REPO = Path(__file__).resolve().parents[1]
WORKSPACE_FILES = ["Snakefile", "dvc.yaml", "params.yaml", ".dvcignore", ".gitignore", "workflow", "src", "data/sources"]


def copy_workspace(dest: Path) -> Path:
    """Copy what a fresh clone has (pipeline files, sources, code) into ``dest``."""
    dest.mkdir(parents=True)
    for name in WORKSPACE_FILES:
        src = REPO / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
        else:
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


def git(cwd: Path, *args: str) -> str:
    return subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    return copy_workspace(tmp_path / "ws")
