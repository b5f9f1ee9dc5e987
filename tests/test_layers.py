"""The code's shape, checked fast (no pipeline run): layers and stage independence (import-linter), one
source of truth for each stage's code dependencies in both orchestrators, and stages that touch
artifacts only through :mod:`animegen.artifacts`."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, copy_workspace
from dvc_plan import dvc_stages

from animegen import codedeps

BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}
DATA_STAGES = ["collect", "cutout", "resize", "split"]


def _lint_imports(cwd: Path, src: Path) -> subprocess.CompletedProcess:
    env = {**ENV, "PYTHONPATH": str(src)}  # the copy's package, not the installed one
    return subprocess.run([str(BIN / "lint-imports")], cwd=cwd, env=env, capture_output=True, text=True)


def test_the_import_contracts_hold():
    r = _lint_imports(REPO, REPO / "src")
    assert r.returncode == 0 and "2 kept, 0 broken" in r.stdout, r.stdout + r.stderr


@pytest.mark.parametrize(
    "module, line, broken",
    [
        ("stages/compare.py", "from animegen.stages import evaluate  # noqa", "no stage imports another stage"),
        ("artifacts/split.py", "from animegen.stages import StageError  # noqa", "layers"),
        ("metrics/fid.py", "from animegen.artifacts import reference  # noqa", "layers"),
        # a stage reading params through validation code would make config every stage's dependency
        ("stages/split.py", "from animegen.config import entry  # noqa", "layers"),
    ],
)
def test_a_stage_importing_a_stage_or_an_upward_import_breaks_a_contract(tmp_path, module, line, broken):
    shutil.copytree(REPO / "src", tmp_path / "src", ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    shutil.copy2(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "src/animegen" / module
    target.write_text(target.read_text() + "\n" + line + "\n")
    r = _lint_imports(tmp_path, tmp_path / "src")
    assert r.returncode != 0 and "Broken contracts" in r.stdout, r.stdout + r.stderr
    assert broken in r.stdout.split("Broken contracts")[1]


def test_dvc_yaml_lists_exactly_the_import_graph_of_each_stage():
    text = (REPO / "dvc.yaml").read_text()
    assert codedeps.rewrite_dvc_yaml(text) == text, "run: python -m animegen.codedeps --write"


def test_the_closure_follows_function_level_imports_and_parent_packages():
    files = codedeps.closure("animegen.stages.cam_select")
    assert "src/animegen/artifacts/classifier.py" in files  # imported inside run()
    assert "src/animegen/cam/gradcam.py" in files and "src/animegen/cam/__init__.py" in files
    assert codedeps.needs_family("train") and codedeps.needs_family("track") and not codedeps.needs_family("evaluate")
    with pytest.raises(ValueError, match="name its family"):
        codedeps.stage_code("sample")


def test_data_stages_depend_on_no_model_metric_or_validation_code():
    for stage in DATA_STAGES:
        files = codedeps.stage_code(stage)
        assert not [f for f in files if f.startswith(("src/animegen/models/", "src/animegen/metrics/",
                                                       "src/animegen/config/", "src/animegen/cli"))], stage  # fmt: skip


@pytest.fixture(scope="module")
def fresh(tmp_path_factory) -> Path:
    """A fresh clone's files, never run: both tools plan every job from scratch."""
    ws = copy_workspace(tmp_path_factory.mktemp("layers") / "ws")
    subprocess.run(["git", "init", "-q"], cwd=ws, check=True)
    return ws


def _snakemake_inputs(ws: Path) -> dict[str, set[str]]:
    """Each planned job's inputs by output file, from a dry run's job listing (every job is planned)."""
    r = subprocess.run([str(BIN / "snakemake"), "-n", "--cores", "1"], cwd=ws, env=ENV, capture_output=True,
                       text=True, check=True)  # fmt: skip
    jobs, inputs = {}, set()
    for line in r.stdout.splitlines():
        key, _, value = line.strip().partition(": ")
        if key == "input":
            inputs = set(value.split(", "))
        elif key == "output":
            jobs.update({out: inputs for out in value.split(", ")})
            inputs = set()
    return jobs


def _dvc_stages(ws: Path) -> dict[str, dict]:
    return dvc_stages(ws, ENV)


def test_snakemake_and_dvc_give_every_stage_the_same_code_deps(fresh):
    smk = _snakemake_inputs(fresh)
    dvc = _dvc_stages(fresh)
    assert dvc
    for name, stage in dvc.items():
        dvc_code = {d for d in stage["deps"] if d.startswith("src/")}
        smk_code = {i for out in stage["outs"] for i in smk[out] if i.startswith("src/")}
        assert dvc_code == smk_code and dvc_code, name
        if name.split("@")[0] in DATA_STAGES:
            assert not [f for f in dvc_code if f.startswith("src/animegen/models/")], name


def test_touching_a_model_module_leaves_every_data_stage_up_to_date_in_both_tools(fresh):
    """Static: which stages list the file.  (tests/test_pipeline.py edits it in a run workspace.)"""
    smk, dvc = _snakemake_inputs(fresh), _dvc_stages(fresh)
    for module in ("src/animegen/models/dcgan.py", "src/animegen/models/registry.py", "src/animegen/config/schema.py"):
        in_dvc = {n.split("@")[0] for n, s in dvc.items() if module in s["deps"]}
        in_smk = {n.split("@")[0] for n, s in dvc.items() if any(module in smk[o] for o in s["outs"])}
        assert in_dvc == in_smk, module
        assert not in_dvc & {*DATA_STAGES, "reference", "cam_classifier", "cam_select"}, module
    assert {n.split("@")[0] for n, s in dvc.items() if "src/animegen/models/dcgan.py" in s["deps"]} == {"train", "sample", "track"}


# Calls that open a file's layout by hand; stages must go through animegen.artifacts instead.
RAW_READS = {("torch", "load"), ("Image", "open"), ("json", "loads"), ("json", "load"), ("np", "load"), ("read_csv",)}


def _raw_reads(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Call):
            f = node.func
            key = (f.value.id, f.attr) if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else (
                (f.id,) if isinstance(f, ast.Name) else None)  # fmt: skip
            if key in RAW_READS:
                found.append(f"{path.name}:{node.lineno} {'.'.join(key)}")
    return found


def test_no_stage_reads_a_pipeline_file_by_hand():
    stages = sorted((REPO / "src/animegen/stages").glob("*.py"))
    assert len(stages) > 10
    assert [hit for p in stages for hit in _raw_reads(p)] == []


def test_the_raw_read_check_sees_a_hand_read(tmp_path):
    p = tmp_path / "stage.py"
    p.write_text("import json\nx = json.loads(open('data/splits/a.json').read())\n")
    assert _raw_reads(p) == ["stage.py:2 json.loads"]
