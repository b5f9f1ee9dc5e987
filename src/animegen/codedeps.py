"""Which source files each stage depends on: the one source of truth for both orchestrators.

Neither Snakemake nor DVC follows Python imports, so each stage must list the files whose edits rerun
it.  Both take that list from here, and here it is not written by hand: it is the closure of
``animegen.stages.<stage>`` over the real import graph (every ``import`` in a module, at any depth,
read with :mod:`ast` without importing anything), with each package's ``__init__.py`` on the way.

* A stage that rebuilds a model (its closure reaches :mod:`animegen.models.registry`, which imports a
  family by name at run time) also depends on its model's family module,
  ``src/animegen/models/<family>.py``: Snakemake adds it per job, ``dvc.yaml`` writes
  ``src/animegen/models/${item.family}.py``.
* The command line (:mod:`animegen.cli`) and ``params.yaml`` validation (:mod:`animegen.config`) are not
  dependencies of any stage: they dispatch, accept or refuse, and never change an output.  Stages read
  their sections directly, so editing the schema or the registry's family blocks reruns nothing, and
  editing ``models/dcgan.py`` leaves every data stage up to date.

The Snakefile calls :func:`stage_code` when it is parsed.  ``dvc.yaml`` cannot compute, so its ``deps``
lists are generated: ``python -m animegen.codedeps --write`` rewrites them in place, ``--check`` (and a
fast test) fails when they differ from the import graph.
"""

from __future__ import annotations

import argparse
import ast
import sys
from functools import lru_cache
from pathlib import Path

PACKAGE = "animegen"
SRC = Path(__file__).resolve().parent.parent  # the folder holding the package (src/)
REGISTRY = "src/animegen/models/registry.py"
FAMILY_MODULE = "src/animegen/models/{family}.py"
DVC_FAMILY_MODULE = FAMILY_MODULE.format(family="${item.family}")


def _imports(path: Path) -> set[str]:
    """Every ``animegen`` module a file names in an import statement (as module or ``from`` target)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
    return {n for n in names if n.split(".")[0] == PACKAGE}


def _module_file(module: str) -> Path | None:
    base = SRC / module.replace(".", "/")
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None  # a name imported from a module (a function, a class), not a module itself


@lru_cache(maxsize=None)
def closure(module: str) -> tuple[str, ...]:
    """The files ``module`` imports, directly or not, as sorted paths relative to the repository root."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        mod = todo.pop()
        path = _module_file(mod)
        if path is None:
            continue
        rel = "src/" + path.relative_to(SRC).as_posix()
        if rel in seen:
            continue
        seen.add(rel)
        todo.extend(_imports(path))
        parts = mod.split(".")
        todo.extend(".".join(parts[:i]) for i in range(1, len(parts)))  # parent packages run first
    return tuple(sorted(seen))


def stages() -> list[str]:
    """Every stage: the modules of ``animegen/stages/`` (each one ``run`` behind one command)."""
    return sorted(p.stem for p in (SRC / PACKAGE / "stages").glob("*.py") if p.stem != "__init__")


def needs_family(stage: str) -> bool:
    """Whether the stage rebuilds a model, and so depends on its family's module too."""
    return REGISTRY in closure(f"{PACKAGE}.stages.{stage}")


def stage_code(stage: str, family: str | None = None) -> list[str]:
    """The source files of ``stage`` (plus, for a model stage, its model's ``family`` module)."""
    files = list(closure(f"{PACKAGE}.stages.{stage}"))
    if needs_family(stage):
        if family is None:
            raise ValueError(f"stage {stage} rebuilds a model: name its family")
        files.append(FAMILY_MODULE.format(family=family))
    return files


def dvc_code(stage: str) -> list[str]:
    """The code deps as ``dvc.yaml`` writes them (a model stage's family module templated)."""
    files = list(closure(f"{PACKAGE}.stages.{stage}"))
    return files + [DVC_FAMILY_MODULE] if needs_family(stage) else files


# ------------------------------------------------------------------------------------------ dvc.yaml


def _is_code(line: str) -> bool:
    return line.strip().startswith("- src/animegen/")


def rewrite_dvc_yaml(text: str) -> str:
    """``dvc.yaml``'s text with every stage's code deps replaced by :func:`dvc_code`; everything else
    (data deps, params, outs, comments) is kept as it is.  A stage's code deps follow its data deps."""
    lines = text.split("\n")
    out: list[str] = []
    stage = None
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if indent == 2 and stripped.endswith(":") and not stripped.startswith("#"):
            stage = stripped[:-1]
        if stripped == "deps:" and stage is not None:
            out.append(line)
            i += 1
            item_indent = None
            while i < len(lines) and lines[i].strip().startswith("- "):
                item_indent = len(lines[i]) - len(lines[i].lstrip())
                if not _is_code(lines[i]):
                    out.append(lines[i])
                i += 1
            pad = " " * (item_indent if item_indent is not None else indent + 2)
            out.extend(f"{pad}- {f}" for f in dvc_code(stage))
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m animegen.codedeps", description=__doc__.split("\n")[0])
    parser.add_argument("--dvc-yaml", default="dvc.yaml", type=Path)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--check", action="store_true", help="exit 1 when dvc.yaml's code deps are not the import graph's")
    mode.add_argument("--write", action="store_true", help="rewrite dvc.yaml's code deps from the import graph")
    mode.add_argument("--list", action="store_true", help="print each stage's code deps")
    args = parser.parse_args(argv)
    if args.list:
        for stage in stages():
            print(f"{stage}: {' '.join(dvc_code(stage))}")
        return 0
    text = args.dvc_yaml.read_text(encoding="utf-8")
    new = rewrite_dvc_yaml(text)
    if args.write:
        if new != text:
            args.dvc_yaml.write_text(new, encoding="utf-8")
        return 0
    if new != text:
        print(f"{args.dvc_yaml}: code deps differ from the import graph; run python -m animegen.codedeps --write",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
