"""The smallest whole pipeline, for tests that run both tools end to end several times (remotes, branches).

Two 10-image datasets of one size (one `compare` pair needs two), one tiny DCGAN, and every stage of the
real Snakefile / dvc.yaml but study C's CAM stages (their datasets are left out): collect, cutout, resize,
split, reference per dataset; train, sample, evaluate, track (FID over training) for the model; compare
for the pair; summary.
About a minute and a half of CPU.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from conftest import copy_workspace, dump_yaml, git, load_yaml, without_study_c
from test_pipeline import shrink

DATASETS = ("face_a_early", "face_a_later")
MODEL = "dcgan"
PAIR = "a_early_vs_a_later"


def commit(ws: Path, message: str) -> None:
    git(ws, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", message)


def tiny_workspace(dest: Path) -> Path:
    """A git repo on branch ``main``, like a fresh clone, with params cut down to the tiny pipeline."""
    ws = copy_workspace(dest)
    params = load_yaml(ws / "params.yaml")
    without_study_c(params)  # study C's datasets are not in this DAG
    shrink(params)
    params["datasets"] = {k: v for k, v in params["datasets"].items() if k in DATASETS}
    params["models"] = {k: v for k, v in params["models"].items() if k == MODEL}
    params["compare"]["pairs"] = {k: v for k, v in params["compare"]["pairs"].items() if k == PAIR}
    params["reference"]["floor_splits"] = 2
    assert sorted(params["datasets"]) == list(DATASETS) and list(params["models"]) == [MODEL]
    assert list(params["compare"]["pairs"]) == [PAIR]
    dump_yaml(params, ws / "params.yaml")
    git(ws, "init", "-q", "-b", "main")
    git(ws, "add", "-A")
    commit(ws, "tiny pipeline")
    return ws


def lock_outs(ws: Path) -> list[str]:
    """Every output path recorded in dvc.lock (all cached: data/ and metrics/)."""
    lock = load_yaml(ws / "dvc.lock")
    return sorted(o["path"] for stage in lock["stages"].values() for o in stage.get("outs", []))


def tree_digest(root: Path, rel: str) -> dict[str, str]:
    """SHA-256 of every file under ``root/rel`` (or of the file itself), by path; Snakemake's markers left out."""
    path = root / rel
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    return {
        p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in files
        if p.name != ".snakemake_timestamp"
    }
