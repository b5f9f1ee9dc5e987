"""`dvc repro` in a fresh clone of the Snakemake-built pipeline workspace reproduces the same bytes.

Its own file so that pytest-xdist can run it on another worker than test_pipeline.py's checks: both
use the one workspace built per session (test_pipeline.shared_pipeline), whose last commit holds the
dvc.lock that Snakemake's outputs gave.  The clone shares no DVC cache, so every stage really runs
again, under DVC this time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import git
from test_pipeline import sh, shared_pipeline

pytestmark = pytest.mark.slow


def test_dvc_repro_in_a_fresh_clone_reproduces_the_same_bytes(tmp_path_factory, tmp_path: Path):
    ran = shared_pipeline(tmp_path_factory)
    clone = tmp_path / "clone"
    git(tmp_path, "clone", "-q", str(ran), str(clone))
    sh(clone, "dvc", "repro", "-q")
    assert json.loads(sh(clone, "dvc", "status", "--json").stdout or "{}") == {}
    assert (clone / "dvc.lock").read_text() == git(ran, "show", "HEAD:dvc.lock")
    assert git(clone, "status", "--porcelain").strip() == ""
