"""One thin module per pipeline stage: read its params section, call library code, write outputs atomically.

Each module exposes ``run(params, dataset, root) -> report`` and a docstring saying what it reads,
writes and guarantees.  ``animegen.cli`` maps the subcommand of the same name onto it.
"""

from collections import Counter
from pathlib import Path

from animegen.io import write_csv, write_json_atomic


class StageError(Exception):
    """A stage cannot produce a trustworthy output from its inputs (exit code 1, nothing written)."""


def count_reasons(rows) -> dict[str, int]:
    """Rejects per reason; ``duplicate_of:<id>`` rows are counted together as ``duplicate``."""
    counts = Counter("duplicate" if r["reason"].startswith("duplicate_of:") else r["reason"] for r in rows)
    return dict(sorted(counts.items()))


def write_image_stage_outputs(
    tmp: Path, stage: str, dataset: str, kept: list[dict], rejects: list[dict],
    manifest_columns: list[str], reject_columns: list[str], **extra,
) -> dict:  # fmt: skip
    """Finish an image stage: refuse an empty result, then write manifest.csv, rejects.csv, report.json."""
    if not kept:
        raise StageError(
            f"{stage} {dataset}: no image kept out of {len(rejects)} inputs "
            f"(rejects by reason: {count_reasons(rejects)})"
        )
    report = {
        "dataset": dataset,
        "kept": len(kept),
        "rejected": len(rejects),
        "rejects_by_reason": count_reasons(rejects),
        **extra,
    }
    write_csv(tmp / "manifest.csv", manifest_columns, kept)
    write_csv(tmp / "rejects.csv", reject_columns, rejects)
    write_json_atomic(tmp / "report.json", report)
    return report
