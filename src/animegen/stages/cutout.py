"""Stage ``cutout``: put each collected character on a black background.

Reads:  ``data/raw/<name>/`` (manifest.csv, images/); ``params.yaml`` section ``cutout``.
Writes: ``data/interim/cutout/<name>/`` with ``images/<id>.png`` (RGB, background black),
        ``masks/<id>.png`` (8-bit foreground mask), ``manifest.csv`` (id, method used, foreground
        share, the raw manifest's ``extra``), ``rejects.csv`` (failed cutouts with their reason) and
        ``report.json`` (counts per method and per reject reason).
Guarantees: the folder appears complete or not at all; the method used for every image is recorded.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from animegen import paths
from animegen.data.cutout import CutoutParams, OnnxSegmenter, remove_background
from animegen.io import Rejected, atomic_dir, read_csv, read_image_file, save_png
from animegen.stages import write_image_stage_outputs

MANIFEST_COLUMNS = ["id", "file", "mask", "method", "foreground_fraction", "extra"]
REJECT_COLUMNS = ["id", "reason", "detail"]


def run(params: dict, dataset: str, root: Path) -> dict:
    c = dict(params["cutout"])
    model, size = c.pop("onnx_model"), c.pop("onnx_size")
    p = CutoutParams(**c)
    segmenter = OnnxSegmenter(root / model, size) if model and p.method in ("auto", "onnx") else None
    src = root / paths.RAW.format(dataset=dataset)
    rows = read_csv(src / "manifest.csv")
    kept, rejects = [], []
    with atomic_dir(root / paths.CUTOUT.format(dataset=dataset)) as tmp:
        (tmp / "images").mkdir()
        (tmp / "masks").mkdir()
        for row in tqdm(rows, desc=f"cutout {dataset}", unit="img", disable=None):
            try:
                img = read_image_file(src / row["file"]).image
                cut = remove_background(img, p, segmenter)
            except Rejected as r:
                rejects.append({"id": row["id"], "reason": r.reason, "detail": r.detail})
                continue
            save_png(Image.fromarray(cut.rgb, "RGB"), tmp / "images" / f"{row['id']}.png", compress_level=1)
            save_png(Image.fromarray(np.ascontiguousarray(cut.mask), "L"), tmp / "masks" / f"{row['id']}.png", compress_level=1)
            kept.append({
                "id": row["id"], "file": f"images/{row['id']}.png", "mask": f"masks/{row['id']}.png",
                "method": cut.method, "foreground_fraction": round(cut.foreground_fraction, 4),
                "extra": row["extra"],
            })  # fmt: skip
        report = write_image_stage_outputs(
            tmp, "cutout", dataset, kept, rejects, MANIFEST_COLUMNS, REJECT_COLUMNS,
            by_method=dict(sorted(Counter(r["method"] for r in kept).items())),
            onnx_model=model if segmenter is not None else None,
        )  # fmt: skip
    return report
