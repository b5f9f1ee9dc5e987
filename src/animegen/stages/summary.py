"""Stage ``summary``: every model's and every comparison's metrics in one file and two tables.

Reads:  ``metrics/models/<model>.json`` for each model and ``metrics/compare/<pair>.json`` for each pair
        declared in ``params.yaml`` (``models:``, ``compare.pairs``).
Writes: ``metrics/summary.json`` (DVC metrics: ``dvc metrics diff main my-branch`` compares it),
        ``metrics/table.md`` / ``table.csv`` (study A's Table 2: FID, MAE, NWI per model, with KID, the
        memorisation rate and the real-vs-real FID floor beside them) and ``metrics/compare.md`` /
        ``compare.csv`` (study A's validity table of NWI).
"""

from __future__ import annotations

import json
from pathlib import Path

from animegen import paths
from animegen.io import write_csv, write_json_atomic, write_text_atomic

MODEL_COLUMNS = ["model", "family", "dataset", "fid", "mae", "nwi", "kid", "memorisation_rate", "floor_fid",
                 "n_candidate", "n_reference", "trained_steps"]  # fmt: skip
COMPARE_COLUMNS = ["pair", "reference", "candidate", "fid", "mae", "nwi", "kid", "floor_fid_reference",
                   "floor_fid_candidate", "n_candidate", "n_reference"]  # fmt: skip
HEADERS = {"fid": "FID", "mae": "MAE", "nwi": "NWI", "kid": "KID x 1e3", "memorisation_rate": "memorised",
           "floor_fid": "FID floor", "floor_fid_reference": "floor (ref)", "floor_fid_candidate": "floor (cand)",
           "n_candidate": "n", "n_reference": "n ref", "trained_steps": "steps"}  # fmt: skip


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "kid":
        return f"{value * 1e3:.2f}"
    if key == "memorisation_rate":
        return f"{value:.1%}"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    head = "| " + " | ".join(HEADERS.get(c, c) for c in columns) + " |"
    rule = "|" + "|".join("---:" if c in HEADERS else "---" for c in columns) + "|"
    body = ["| " + " | ".join(_cell(c, r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body]) + "\n"


def run(params: dict, target: str | None, root: Path) -> dict:
    models = [json.loads((root / paths.MODEL_METRICS.format(model=m)).read_text()) for m in sorted(params["models"])]
    pairs = [json.loads((root / paths.COMPARE.format(pair=p)).read_text()) for p in sorted(params["compare"]["pairs"])]
    weights = {json.dumps(r["inception_weights"], sort_keys=True) for r in models + pairs}
    summary = {
        "models": {r["model"]: {k: r[k] for k in ("fid", "mae", "nwi", "kid", "memorisation_rate", "floor_fid")} for r in models},
        "compare": {r["pair"]: {k: r[k] for k in ("fid", "mae", "nwi", "kid")} for r in pairs},
        "inception_weights": [json.loads(w) for w in sorted(weights)],
    }  # fmt: skip
    write_json_atomic(root / paths.SUMMARY, summary)
    note = ("FID and KID: pytorch-fid's Inception-V3 pool3 features, weights " +
            ", ".join(f"{w['origin']} sha256 {w['sha256'][:12]}" for w in summary["inception_weights"]) +
            ". MAE: mean absolute 0-255 error to the nearest reference image; NWI = MAE - FID. FID floor: "
            "FID between random halves of the reference train split (small-sample bias).\n")  # fmt: skip
    tables = {
        "metrics/table.md": "# Models (study A, Table 2)\n\n" + markdown_table(models, MODEL_COLUMNS) + "\n" + note,
        "metrics/compare.md": "# Dataset pairs (validity of NWI)\n\n" + markdown_table(pairs, COMPARE_COLUMNS) + "\n" + note,
    }
    for path, text in tables.items():
        write_text_atomic(root / path, text)
    write_csv(root / "metrics/table.csv", MODEL_COLUMNS, [{c: r.get(c) for c in MODEL_COLUMNS} for r in models])
    write_csv(root / "metrics/compare.csv", COMPARE_COLUMNS, [{c: r.get(c) for c in COMPARE_COLUMNS} for r in pairs])
    return {"models": len(models), "pairs": len(pairs)}
