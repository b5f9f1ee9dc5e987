"""The mutation run of issue 19: mutmut over the core modules, driven by the fast test files only.

Not part of CI (a full run takes a long time on a small machine).  Usage, from the repository root:

    .venv/bin/pip install 'mutmut==3.8.1'          # or: pip install -e '.[mutation]'
    python scripts/mutation.py                      # every module [tool.mutmut] in pyproject.toml names
    python scripts/mutation.py 'animegen.metrics.*' # only mutants whose name matches (mutmut's globs)
    python scripts/mutation.py --report-only        # the table of the last run
    python scripts/mutation.py --sample 400 --seed 0  # 400 mutants drawn at random from the whole scope

The whole scope is about 21,000 mutants, more than a working day of a 2-core machine.  ``--sample N``
draws N of them uniformly at random (seeded, from the sorted list of every mutant mutmut generates),
runs only those, and reports the score over the sample with its 95 % Wilson interval: an unbiased
estimate of the whole scope's score in a fraction of the time.  The drawn names are kept in
``mutants/sample.txt`` and the table covers only them.

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
import math
import random
import shutil
import subprocess
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 36: "timeout",
          24: "timeout", -24: "timeout", 152: "timeout", 255: "timeout", 37: "killed"}  # mutmut.stats.status_by_exit_code
COLUMNS = ("killed", "survived", "timeout", "no tests", "other")


def summary(mutants: Path, only: set[str] | None = None) -> tuple[str, dict[str, Counter]]:
    """Per module counts from mutmut's ``*.meta`` files, as a Markdown table (``only``: these mutants)."""
    by_module: dict[str, Counter] = defaultdict(Counter)
    for meta in sorted(mutants.rglob("*.py.meta")):
        module = meta.relative_to(mutants).as_posix().removeprefix("src/")[: -len(".py.meta")].replace("/", ".")
        for name, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            if code is None or (only is not None and name not in only):
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


def wilson(detected: int, judged: int, z: float = 1.96) -> tuple[float, float]:
    """The 95 % Wilson score interval of a proportion (sound near 100 %, where the normal one is not)."""
    if judged <= 0:
        raise ValueError("wilson: no judged mutants")
    p = detected / judged
    centre = (p + z * z / (2 * judged)) / (1 + z * z / judged)
    half = z * math.sqrt(p * (1 - p) / judged + z * z / (4 * judged * judged)) / (1 + z * z / judged)
    return centre - half, centre + half


def all_mutant_names(mutants: Path) -> list[str]:
    """Every mutant mutmut generated, sorted (the population a sample is drawn from)."""
    names = [n for meta in mutants.rglob("*.py.meta") for n in json.loads(meta.read_text())["exit_code_by_key"]]
    return sorted(names)


def draw_sample(names: list[str], n: int, seed: int) -> list[str]:
    """``n`` distinct names drawn uniformly at random; the same seed and population give the same draw."""
    if not 0 < n <= len(names):
        raise ValueError(f"--sample: {n} is not between 1 and the {len(names)} mutants generated")
    return sorted(random.Random(seed).sample(sorted(names), n))


def estimate(by_module: dict[str, Counter]) -> str:
    """The sample's overall score with its interval, and the stricter readings next to it."""
    total = Counter()
    for c in by_module.values():
        total.update(c)
    judged = total["killed"] + total["survived"] + total["timeout"]
    if not judged:
        return "no judged mutants in the sample"
    detected = total["killed"] + total["timeout"]
    lo, hi = wilson(detected, judged)
    strict = total["killed"] / judged
    with_untested = detected / (judged + total["no tests"])
    return (f"sample score {100 * detected / judged:.1f} % (95 % Wilson interval {100 * lo:.1f}-{100 * hi:.1f} %) "
            f"over {judged} judged mutants; timeouts counted as survivors: {100 * strict:.1f} %; "
            f"'no tests' counted as survivors: {100 * with_untested:.1f} %")


def generate() -> None:
    """mutmut's generation step alone (its ``run`` starts with it): every mutant, none run yet."""
    code = ("import mutmut.__main__ as mm; mm.set_mutant_under_test('mutant_generation'); mm.copy_src_dir(); "
            "mm.copy_also_copy_files(); mm.setup_source_paths(); mm.store_lines_covered_by_tests(); mm.create_mutants(2)")
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("names", nargs="*", help="mutant name globs, e.g. 'animegen.metrics.*' (default: all)")
    ap.add_argument("--max-children", type=int, default=2, help="parallel mutants (the CPUs to use)")
    ap.add_argument("--report-only", action="store_true", help="print the table of the last run")
    ap.add_argument("--sample", type=int, metavar="N", help="run N mutants drawn at random from the whole scope")
    ap.add_argument("--seed", type=int, default=0, help="the sample's seed (default 0)")
    args = ap.parse_args()
    if args.sample is not None and args.names:
        ap.error("--sample draws from the whole scope: give no mutant names with it")
    mutants = REPO / "mutants"
    sample_file = mutants / "sample.txt"
    mutmut = shutil.which("mutmut", path=str(Path(sys.executable).parent)) or shutil.which("mutmut")
    if not args.report_only:
        if mutmut is None:
            print("mutation.py: mutmut is not installed: pip install 'mutmut==3.8.1'", file=sys.stderr)
            return 2
        # mutmut copies also_copy's files without their folders: .dvc/config needs mutants/.dvc first
        (REPO / "mutants/.dvc").mkdir(parents=True, exist_ok=True)
        names = args.names
        sample_file.unlink(missing_ok=True)
        if args.sample is not None:
            generate()
            names = draw_sample(all_mutant_names(mutants), args.sample, args.seed)
            sample_file.write_text("\n".join(names) + "\n")
        done = subprocess.run([mutmut, "run", "--max-children", str(args.max_children), *names], cwd=REPO)
        if done.returncode:
            return done.returncode
    if not mutants.is_dir():
        print("mutation.py: no mutants/ folder: run without --report-only first", file=sys.stderr)
        return 2
    only = set(sample_file.read_text().split()) if sample_file.is_file() else None
    table, by_module = summary(mutants, only)
    if only is not None:
        table += "\n\n" + estimate(by_module)
    (mutants / "summary.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
