"""Stage ``resize``: pad each cut-out to a black square and resize it to the dataset's size.

Reads:  ``data/interim/cutout/<name>/``; ``params.yaml`` keys ``datasets.<name>.size``,
        ``datasets.<name>.crop`` and section ``resize``.
Writes: ``data/processed/<name>/`` with ``images/<id>.png`` (RGB, size x size), ``manifest.csv`` (id,
        crop box, scale, whether it was upscaled, part boxes mapped to normalised output coordinates
        when the source recorded them), ``rejects.csv`` and ``report.json`` (counts, upscaled count).
Guarantees: the folder appears complete or not at all; no image is upscaled unless
``resize.allow_upscale`` is true, and every upscaled image is counted.
"""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm

from animegen import paths
from animegen.artifacts.images import image_file, pixel_digest, read_image, read_manifest, start, write_image, write_image_set
from animegen.data.resize import ResizeParams, pad_and_resize
from animegen.io import Rejected, atomic_dir
from animegen.recipes import dataset_section, overridden
from animegen.stages import require_kept

MANIFEST_COLUMNS = ["id", "file", "pixel_sha256", "size", "crop_box", "scale", "upscaled", "extra"]
REJECT_COLUMNS = ["id", "reason", "detail"]


def _map_parts(extra: dict, transform, size: int) -> dict:
    parts = extra.get("parts")
    if not parts:
        return extra
    mapped = {k: transform.box(v, size) for k, v in parts.items()}
    return {**extra, "parts": mapped, "parts_coords": "normalised_output"}


def run(params: dict, dataset: str, root: Path) -> dict:
    ds = params["datasets"][dataset]
    p = ResizeParams(size=ds["size"], crop=ds["crop"], **dataset_section(params, dataset, "resize"))
    src = root / paths.CUTOUT.format(dataset=dataset)
    rows = read_manifest(src)
    kept, rejects = [], []
    with atomic_dir(root / paths.PROCESSED.format(dataset=dataset)) as tmp:
        start(tmp)
        for row in tqdm(rows, desc=f"resize {dataset}", unit="img", disable=None):
            try:
                rgb, mask = read_image(src, row["file"]), read_image(src, row["mask"], "L")
                out, tf = pad_and_resize(rgb, mask, p)
            except Rejected as r:
                rejects.append({"id": row["id"], "reason": r.reason, "detail": r.detail})
                continue
            write_image(tmp, image_file(row["id"]), out)
            extra = _map_parts(row["extra"], tf, p.size)
            kept.append({
                "id": row["id"], "file": image_file(row["id"]), "pixel_sha256": pixel_digest(out), "size": p.size,
                "crop_box": list(tf.crop),
                "scale": round(tf.scale, 6), "upscaled": tf.upscaled, "extra": extra,
            })  # fmt: skip
        require_kept("resize", dataset, kept, rejects, root)
        report = write_image_set(
            tmp, dataset, kept, rejects, MANIFEST_COLUMNS, REJECT_COLUMNS,
            size=p.size, crop=p.crop, upscaled=sum(1 for r in kept if r["upscaled"]),
            recipe=overridden(params, dataset, "resize"),
        )  # fmt: skip
    return report
