"""Project promises that are easy to break silently: the README's two commands, CI, git/DVC hygiene."""

from __future__ import annotations

import re

from conftest import REPO


def quickstart_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    section = text.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```bash\n(.*?)```", section, re.S).group(1)
    return [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]


def test_readme_quickstart_has_exactly_two_commands_and_ci_runs_the_test_one():
    demo, test = quickstart_commands()
    assert demo == "make demo" and test == "make test"
    ci = [line.strip() for line in (REPO / ".ci/run").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert ci[-1] == test


def test_makefile_installs_everything_the_commands_need():
    mk = (REPO / "Makefile").read_text()
    assert "pip install --quiet torch==2.14.1 torchvision==0.29.1" in mk
    assert "pip install --quiet -e '.[dev]'" in mk
    for target in ("demo: install", "test: install", "demo-dvc: install"):
        assert target in mk


def test_git_and_dvc_ignore_files_keep_the_tools_apart():
    gitignore = (REPO / ".gitignore").read_text().split()
    assert ".snakemake/" in gitignore and "/data/raw/" in gitignore
    assert ".snakemake_timestamp" in (REPO / ".dvcignore").read_text().split()
    assert (REPO / ".dvc/config").is_file()
