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

from tqdm import tqdm

from animegen import paths
from animegen.artifacts.images import image_file, mask_file, read_decoded, read_manifest, start, write_image, write_image_set
from animegen.data.cutout import CutoutParams, OnnxSegmenter, remove_background
from animegen.io import Rejected, atomic_dir
from animegen.recipes import dataset_section, overridden
from animegen.stages import require_kept

MANIFEST_COLUMNS = ["id", "file", "mask", "method", "foreground_fraction", "extra"]
REJECT_COLUMNS = ["id", "reason", "detail"]


def run(params: dict, dataset: str, root: Path) -> dict:
    c = dataset_section(params, dataset, "cutout")
    model, size = c.pop("onnx_model"), c.pop("onnx_size")
    p = CutoutParams(**c)
    segmenter = OnnxSegmenter(root / model, size) if model and p.method in ("auto", "onnx") else None
    src = root / paths.RAW.format(dataset=dataset)
    rows = read_manifest(src)
    kept, rejects = [], []
    with atomic_dir(root / paths.CUTOUT.format(dataset=dataset)) as tmp:
        start(tmp, masks=True)
        for row in tqdm(rows, desc=f"cutout {dataset}", unit="img", disable=None):
            try:
                img = read_decoded(src, row["file"])
                cut = remove_background(img, p, segmenter)
            except Rejected as r:
                rejects.append({"id": row["id"], "reason": r.reason, "detail": r.detail})
                continue
            file, mask = image_file(row["id"]), mask_file(row["id"])
            write_image(tmp, file, cut.rgb, compress_level=1)
            write_image(tmp, mask, cut.mask, compress_level=1)
            kept.append({
                "id": row["id"], "file": file, "mask": mask,
                "method": cut.method, "foreground_fraction": round(cut.foreground_fraction, 4),
                "extra": row["extra"],
            })  # fmt: skip
        require_kept("cutout", dataset, kept, rejects, root)
        report = write_image_set(
            tmp, dataset, kept, rejects, MANIFEST_COLUMNS, REJECT_COLUMNS,
            by_method=dict(sorted(Counter(r["method"] for r in kept).items())),
            onnx_model=model if segmenter is not None else None,
            recipe=overridden(params, dataset, "cutout"),
        )  # fmt: skip
    return report
