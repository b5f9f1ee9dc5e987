"""One thin module per pipeline stage: read its params section, call library code, write outputs atomically.

Each module exposes ``run(params, target, root) -> report`` and a docstring saying what it reads,
writes and guarantees.  ``animegen.cli`` validates ``params.yaml`` and the target name, then calls it.
Stages read and write every file that crosses a stage boundary through :mod:`animegen.artifacts`;
no stage imports another stage (``import-linter`` contracts in ``pyproject.toml``, run by the tests).
"""

from __future__ import annotations

from animegen.artifacts.images import count_reasons
from animegen.errors import PipelineError


class StageError(PipelineError):
    """A stage cannot produce a trustworthy output from its inputs (exit code 1, nothing written)."""


def require_kept(stage: str, dataset: str, kept: list, rejects: list[dict]) -> None:
    """An image stage where nothing survives is an error, with the rejects counted by reason."""
    if not kept:
        raise StageError(
            f"{stage} {dataset}: no image kept out of {len(rejects)} inputs "
            f"(rejects by reason: {count_reasons(rejects)})"
        )
