"""One thin module per pipeline stage: read its params section, call library code, write outputs atomically.

Each module exposes ``run(params, target, root) -> report`` and a docstring saying what it reads,
writes and guarantees.  ``animegen.cli`` validates ``params.yaml`` and the target name, then calls it.
Stages read and write every file that crosses a stage boundary through :mod:`animegen.artifacts`;
no stage imports another stage (``import-linter`` contracts in ``pyproject.toml``, run by the tests).
"""

from __future__ import annotations

from pathlib import Path

from animegen.artifacts.images import count_reasons
from animegen.errors import PipelineError
from animegen.io import write_csv

FAILED_REJECTS = "logs/rejects/{stage}/{dataset}.csv"  # a log, never an output: the stage wrote nothing


class StageError(PipelineError):
    """A stage cannot produce a trustworthy output from its inputs (exit code 1, nothing written)."""


def require_kept(stage: str, dataset: str, kept, rejects: list[dict], root: Path) -> None:
    """An image stage where nothing survives (``kept``: a count or the kept rows) is an error: its message counts the rejects by reason and
    shows the first ones with their details, and every reject goes to ``logs/rejects/<stage>/<dataset>.csv``
    (the output folder is not written), so a user sees why each input was refused."""
    if kept:
        return
    where = FAILED_REJECTS.format(stage=stage, dataset=dataset)
    columns = list(dict.fromkeys(k for r in rejects for k in r))
    try:
        write_csv(root / where, columns, rejects)
        saved = f"; all of them in {where}"
    except OSError as e:
        saved = f"; {where} could not be written ({e.strerror})"
    first = "; ".join(f"{r.get('origin') or r.get('id', '?')}: {r['reason']}" + (f" ({r['detail']})" if r.get("detail") else "")
                      for r in rejects[:3])  # fmt: skip
    raise StageError(
        f"{stage} {dataset}: no image kept out of {len(rejects)} inputs "
        f"(rejects by reason: {count_reasons(rejects)}; first: {first or 'none'}{saved})"
    )
