"""The mutation run of issue 19: mutmut over the core modules, driven by the fast test files only.

Not part of CI (a full run takes a long time on a small machine).  Usage, from the repository root:

    .venv/bin/pip install 'mutmut==3.8.1'          # or: pip install -e '.[mutation]'
    python scripts/mutation.py                      # every module [tool.mutmut] in pyproject.toml names
    python scripts/mutation.py 'animegen.metrics.*' # only mutants whose name matches (mutmut's globs)
    python scripts/mutation.py --report-only        # the table of the last run

mutmut 3 copies ``src/animegen`` into ``mutants/`` with every mutant behind a switch, learns which tests
reach which function (in process), and runs only those tests per mutant.  Tests that reach a function
only through a subprocess (the CLI tests) cannot kill its mutants: such a mutant is counted "no tests"
when no in-process test reaches it, which is why the selection in pyproject.toml is the fast,
in-process test files.  The table (killed / survived / timeout / no tests per module, and the score
(killed + timeout) / (killed + survived + timeout): a mutant that makes the tests run past mutmut's
time limit is detected, as mutation tools count it) is printed and written to ``mutants/summary.md`` for
BENCHMARKS.md; ``mutmut results`` lists the survivors by name and ``mutmut show <name>`` shows one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", 37: "killed"}  # mutmut.stats.status_by_exit_code
COLUMNS = ("killed", "survived", "timeout", "no tests", "other")


def summary(mutants: Path) -> tuple[str, dict[str, Counter]]:
    """Per module counts from mutmut's ``*.meta`` files, as a Markdown table."""
    by_module: dict[str, Counter] = defaultdict(Counter)
    for meta in sorted(mutants.rglob("*.py.meta")):
        module = meta.relative_to(mutants).as_posix().removeprefix("src/")[: -len(".py.meta")].replace("/", ".")
        for code in json.loads(meta.read_text())["exit_code_by_key"].values():
            if code is None:
                continue
            status = STATUS.get(code, "other")
            by_module[module][status if status in COLUMNS else "other"] += 1
    lines = ["| module | mutants | " + " | ".join(COLUMNS) + " | score |", "|---|" + "---:|" * (len(COLUMNS) + 2)]
    total = Counter()
    for module, c in sorted(by_module.items()):
        total.update(c)
        lines.append(_row(module, c))
    lines.append(_row("**all**", total))
    return "\n".join(lines), by_module


def _row(name: str, c: Counter) -> str:
    judged = c["killed"] + c["survived"] + c["timeout"]
    score = f"{100 * (c['killed'] + c['timeout']) / judged:.1f} %" if judged else "-"
    return f"| {name} | {sum(c.values())} | " + " | ".join(str(c[k]) for k in COLUMNS) + f" | {score} |"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="mutant name globs, e.g. 'animegen.metrics.*' (default: all)")
    ap.add_argument("--max-children", type=int, default=2, help="parallel mutants (the CPUs to use)")
    ap.add_argument("--report-only", action="store_true", help="print the table of the last run")
    args = ap.parse_args()
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or shutil.which("mutmut")
    if not args.report_only:
        if mutmut is None:
            print("mutation.py: mutmut is not installed: pip install 'mutmut==3.8.1'", file=sys.stderr)
            return 2
        # mutmut copies also_copy's files without their folders: .dvc/config needs mutants/.dvc first
        (REPO / "mutants/.dvc").mkdir(parents=True, exist_ok=True)
        done = subprocess.run([mutmut, "run", "--max-children", str(args.max_children), *args.names], cwd=REPO)
        if done.returncode:
            return done.returncode
    mutants = REPO / "mutants"
    if not mutants.is_dir():
        print("mutation.py: no mutants/ folder: run without --report-only first", file=sys.stderr)
        return 2
    table, _ = summary(mutants)
    (mutants / "summary.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
