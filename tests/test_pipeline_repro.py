"""`dvc repro` in a fresh clone of the Snakemake-built pipeline workspace reproduces the same bytes.

Its own file so that pytest-xdist can run it on another worker than test_pipeline.py's checks: both
use the one workspace built per session (test_pipeline.shared_pipeline), whose last commit holds the
dvc.lock that Snakemake's outputs gave.  The clone shares no DVC cache, so every stage it runs really
runs again, under DVC this time.

Every kind of stage runs once, not every stage: DVC rewrites the whole dvc.lock after each stage (a
round-trip parse and dump of a 400 kB YAML, ~17 s a stage on the dev box; dvc#10629), so the whole
DAG took 30 minutes of CI for 118 stages that repeat 20 commands.  The clone starts without dvc.lock
and runs the upstream closure of one model's and one CAM translator's chain (DVC's own `dvc repro
<targets>`, 27 stages covering every stage kind but the three that aggregate every model); those three
then run alone (`dvc repro -s`) on the other models' results copied from the Snakemake run.  Every
lock entry DVC writes must equal the one Snakemake's outputs gave: the same deps, params and output
hashes.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import git
from test_pipeline import sh, shared_pipeline

pytestmark = pytest.mark.slow

# one model with its sampling, evaluation and curve; one reference comparison; the CAM CycleGAN, whose
# upstream holds the classifier, the CAM selection and the derived data
CHAINS = ["track@dcgan", "evaluate@dcgan", "compare@a_early_vs_a_later", "track_translator@cyclegan_cam",
          "evaluate_translation@cyclegan_cam"]  # fmt: skip
AGGREGATES = ["survey", "survey_score", "summary"]  # every translator's / model's results


def _stages(lock: str) -> dict:
    return yaml.safe_load(lock)["stages"]


def test_dvc_repro_in_a_fresh_clone_reproduces_the_same_bytes(tmp_path_factory, tmp_path: Path):
    ran = shared_pipeline(tmp_path_factory)
    want = _stages(git(ran, "show", "HEAD:dvc.lock"))
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(ran), str(clone))
    (clone / "dvc.lock").unlink()
    sh(clone, "dvc", "repro", "-q", *CHAINS)
    chains = _stages((clone / "dvc.lock").read_text())
    assert {"collect@face_photo", "cam_classifier@photo_vs_anime", "cam_select@photo_cam", "derive@face_a_early",
            "train@dcgan", "reference@face_a_later"} <= set(chains)  # fmt: skip
    for dep in [d for s in AGGREGATES for d in _deps(clone, s)]:  # the other models' results, as Snakemake made them
        _copy_missing(ran / dep, clone / dep)
    for stage in AGGREGATES:
        sh(clone, "dvc", "repro", "-q", "-s", stage)
    got = _stages((clone / "dvc.lock").read_text())
    assert set(got) == set(chains) | set(AGGREGATES)
    assert {n.split("@")[0] for n in got} == {n.split("@")[0] for n in want}  # every kind of stage ran under DVC
    for name in sorted(got):
        assert got[name] == want[name], name  # same deps, params and output hashes as Snakemake's run
    assert json.loads(sh(clone, "dvc", "status", "--json", "--with-deps", *CHAINS).stdout or "{}") == {}
    assert json.loads(sh(clone, "dvc", "status", "--json", *AGGREGATES).stdout or "{}") == {}
    assert git(clone, "status", "--porcelain").splitlines() == [" M dvc.lock"]  # every output is ignored by git


def _deps(ws: Path, stage: str) -> list[str]:
    """The data (not code) dependencies of a dvc.yaml stage without a foreach."""
    deps = yaml.safe_load((ws / "dvc.yaml").read_text())["stages"][stage]["deps"]
    return [d for d in deps if not d.startswith("src/")]


def _copy_missing(src: Path, dst: Path) -> None:
    """Copy the files under ``src`` that ``dst`` lacks (what the clone's own stages made stays)."""
    for p in [src] if src.is_file() else sorted(q for q in src.rglob("*") if q.is_file()):
        target = dst / p.relative_to(src) if src.is_dir() else dst
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(p, target)
