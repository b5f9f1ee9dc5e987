"""Stage ``summary``: every model's, translator's and comparison's metrics in one file and three tables.

Reads:  the records ``metrics/models/<model>.record.json`` for each model,
        ``metrics/translation/<translator>.record.json`` for each translator and
        ``metrics/compare/<pair>.record.json`` for each pair declared in ``params.yaml`` (``models:``,
        ``translators:``, ``compare.pairs``); it has no settings of its own.
Writes: ``metrics/summary.json`` (the headline numbers of all of them and the Inception weights used: a
        record for the report and scripts, not a DVC metric, since the stages' own metrics files already
        hold each number once for ``dvc metrics diff``),
        ``metrics/table.md`` / ``table.csv`` (study A's Table 2: FID, MAE, NWI per model, with KID, the
        memorisation rate and the real-vs-real FID floor beside them) and ``metrics/compare.md`` /
        ``compare.csv`` (study A's validity table of NWI) and ``metrics/translation.md`` /
        ``translation.csv`` (studies B-D: FID, KID x100 +- std and the character ratio with its 95 %
        interval per translator).
"""

from __future__ import annotations

import json
from pathlib import Path

from animegen import paths
from animegen.artifacts.records import read_record
from animegen.io import write_csv, write_json_atomic, write_text_atomic

MODEL_COLUMNS = ["model", "family", "dataset", "reference_images", "fid", "mae", "nwi", "kid", "memorisation_rate", "floor_fid",
                 "n_candidate", "n_reference", "trained_steps"]  # fmt: skip
COMPARE_COLUMNS = ["pair", "reference", "candidate", "images", "fid", "mae", "nwi", "kid", "floor_fid_reference",
                   "floor_fid_candidate", "n_candidate", "n_reference"]  # fmt: skip
TRANSLATION_COLUMNS = ["model", "family", "source", "target", "reference_images", "fid", "kid_x100", "kid_x100_std",
                       "character_ratio", "character_ratio_ci95", "source_character_ratio", "floor_fid", "n_translated",
                       "trained_steps", "paired_l1", "member_fid", "backbones"]  # fmt: skip
HEADERS = {"fid": "FID", "mae": "MAE", "nwi": "NWI", "kid": "KID x 1e3", "memorisation_rate": "memorised",
           "floor_fid": "FID floor", "floor_fid_reference": "floor (ref)", "floor_fid_candidate": "floor (cand)",
           "n_candidate": "n", "n_reference": "n ref", "trained_steps": "steps", "kid_x100": "KID x100",
           "kid_x100_std": "+-", "character_ratio": "character ratio", "character_ratio_ci95": "95 % interval",
           "source_character_ratio": "inputs' ratio", "n_translated": "n", "paired_l1": "paired L1"}  # fmt: skip
HEADERS_TEXT = {"reference_images": "vs images", "backbones": "pretrained networks", "member_fid": "members' FID"}  # text columns
TRANSLATION_SUMMARY = ("fid", "kid_x100", "kid_x100_std", "character_ratio", "source_character_ratio", "floor_fid", "paired_l1",
                       "backbones")  # fmt: skip


def _cell(key: str, value) -> str:
    if value is None:
        return "-"
    if key == "kid":
        return f"{value * 1e3:.2f}"
    if key == "memorisation_rate":
        return f"{value:.1%}"
    if key == "member_fid":  # Council GAN: every member's FID, the evaluated one's in the FID column
        return "; ".join(f"{m}: {v:.1f}" for m, v in sorted(value.items(), key=lambda kv: int(kv[0])))
    if key == "character_ratio_ci95":
        return "-" if value[0] is None else f"[{value[0]:.2f}, {value[1]:.2f}]"
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


def markdown_table(rows: list[dict], columns: list[str]) -> str:
    head = "| " + " | ".join(HEADERS.get(c, HEADERS_TEXT.get(c, c)) for c in columns) + " |"
    rule = "|" + "|".join("---:" if c in HEADERS else "---" for c in columns) + "|"
    body = ["| " + " | ".join(_cell(c, r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join([head, rule, *body]) + "\n"


def run(params: dict, target: str | None, root: Path) -> dict:
    models = [read_record(root / paths.MODEL_RECORD.format(model=m), "evaluate", 1) for m in sorted(params["models"])]
    pairs = [read_record(root / paths.COMPARE_RECORD.format(pair=p), "compare", 1) for p in sorted(params["compare"]["pairs"])]
    translators = [read_record(root / paths.TRANSLATION_RECORD.format(model=m), "evaluate_translation", 1)
                   for m in sorted(params["translators"])]  # fmt: skip
    weights = {json.dumps(r["inception_weights"], sort_keys=True): r["inception_weights"] for r in models + pairs + translators}
    summary = {
        "models": {r["model"]: {k: r[k] for k in ("fid", "mae", "nwi", "kid", "memorisation_rate", "floor_fid")} for r in models},
        "compare": {r["pair"]: {k: r[k] for k in ("fid", "mae", "nwi", "kid")} for r in pairs},
        "translation": {r["model"]: {k: r[k] for k in TRANSLATION_SUMMARY} for r in translators},
        "inception_weights": [weights[w] for w in sorted(weights)],
        "inception_precision": sorted({r["inception"]["precision"] for r in models + pairs + translators}),
    }  # fmt: skip
    write_json_atomic(root / paths.SUMMARY, summary)
    note = ("FID and KID: pytorch-fid's Inception-V3 pool3 features, weights " +
            ", ".join(f"{w['origin']} sha256 {w['sha256'][:12]}" for w in summary["inception_weights"]) +
            f", computed in {' and '.join(summary['inception_precision']) or 'fp32'}" +
            ("" if summary["inception_precision"] in ([], ["fp32"]) else " (inception.precision: values from "
             "reduced precision are not comparable with fp32 FIDs)") +
            ". MAE: mean absolute 0-255 error to the nearest reference image; NWI = MAE - FID. FID floor: "
            "FID between random halves of the reference images (small-sample bias). 'vs images' / 'images': "
            "the dataset's train split or all its images (train and test).\n")  # fmt: skip
    tables = {
        "models": "# Models (study A, Table 2)\n\n" + markdown_table(models, MODEL_COLUMNS) + "\n" + note,
        "compare": "# Dataset pairs (validity of NWI)\n\n" + markdown_table(pairs, COMPARE_COLUMNS) + "\n" + note,
    }
    tables["translation"] = (
        "# Translators (studies B-D)\n\n" + markdown_table(translators, TRANSLATION_COLUMNS) + "\n" + note +
        "KID x100 +- its standard deviation over subsets (as U-GAT-IT reports it). Character ratio: the share of "
        "translated images the translator's classifier assigns to the target class (study C, Table 4), with a "
        "percentile-bootstrap 95 % interval; inputs' ratio: the same share of the untranslated inputs. Paired L1: "
        "the mean absolute difference (pixels in [0, 1]) between each translation and its input's own target (paired "
        "translators). Members' FID: every Council GAN member's (the FID column is the evaluated member's).\n"
    )  # fmt: skip
    for table, columns, rows in (("models", MODEL_COLUMNS, models), ("compare", COMPARE_COLUMNS, pairs),
                                 ("translation", TRANSLATION_COLUMNS, translators)):  # fmt: skip
        md, csv = paths.SUMMARY_TABLES[table]
        write_text_atomic(root / md, tables[table])
        write_csv(root / csv, columns, [{c: r.get(c) for c in columns} for r in rows])
    return {"models": len(models), "pairs": len(pairs), "translators": len(translators)}
