"""One thin module per pipeline stage: read its params section, call library code, write outputs atomically.

Each module exposes ``run(params, dataset, root) -> report`` and a docstring saying what it reads,
writes and guarantees.  ``animegen.cli`` maps the subcommand of the same name onto it.
"""

from collections import Counter


class StageError(Exception):
    """A stage cannot produce a trustworthy output from its inputs (exit code 1, nothing written)."""


def count_reasons(rows) -> dict[str, int]:
    """Rejects per reason; ``duplicate_of:<id>`` rows are counted together as ``duplicate``."""
    counts = Counter("duplicate" if r["reason"].startswith("duplicate_of:") else r["reason"] for r in rows)
    return dict(sorted(counts.items()))
