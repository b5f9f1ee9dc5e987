"""Stage ``resize``: pad each cut-out to a black square and resize it to the dataset's size.

Reads:  ``data/interim/cutout/<name>/`` (the cut-outs; their masks only where the manifest has no
        ``foreground_box`` or the crop is ``shoulders_up``); ``params.yaml`` keys ``datasets.<name>.size``,
        ``datasets.<name>.crop`` and section ``resize``.
Writes: ``data/processed/<name>/`` with ``images/<id>.png`` (RGB, size x size), ``manifest.csv`` (id,
        crop box, scale, whether it was upscaled, part boxes mapped to normalised output coordinates
        when the source recorded them), ``rejects.csv`` and ``report.json`` (counts, upscaled count).
Guarantees: the folder appears complete or not at all; no image is upscaled unless
``resize.allow_upscale`` is true, and every upscaled image is counted; the outputs are byte-identical
for any ``resize.workers``.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from tqdm import tqdm

from animegen import paths
from animegen.artifacts import ArtifactError
from animegen.artifacts.images import ImageSetWriter, image_file, pixel_digest, read_image, read_manifest, start, write_image
from animegen.data.resize import ResizeParams, needs_mask, pad_and_resize
from animegen.io import Rejected, atomic_dir
from animegen.parallel import OrderedPool, resolve_workers
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


def recorded_box(row: dict, shape: tuple[int, int], src: Path) -> list[int] | None:
    """The foreground box cutout's manifest records for ``row`` (``[]``: no foreground; None where the
    manifest has no such column), checked against the image's ``shape`` (H, W).  (:func:`read_manifest`
    has parsed and checked the box itself.)"""
    box = row.get("foreground_box")
    if box and (box[2] > shape[1] or box[3] > shape[0]):
        raise ArtifactError(f"{src / 'manifest.csv'}: id {row['id']}: foreground_box {box} is not inside its "
                            f"{shape[1]}x{shape[0]} image; rerun cutout")  # fmt: skip
    return box


def resize_one(row: dict, src: Path, out: Path, p: ResizeParams) -> tuple[dict | None, dict | None]:
    """The per-image work (in a worker): crop, pad and resize one cut-out, write it into ``out``;
    returns (manifest row, None) or (None, reject row).  The mask is decoded only where the crop needs
    more than the foreground box cutout recorded (3 ms of ~25 ms per 1000 px image)."""
    try:
        rgb = read_image(src, row["file"])
        fg = recorded_box(row, rgb.shape[:2], src)
        mask = read_image(src, row["mask"], "L") if fg is None or needs_mask(p) else None
        image, tf = pad_and_resize(rgb, mask, p, fg)
    except Rejected as r:
        return None, {"id": row["id"], "reason": r.reason, "detail": r.detail}
    write_image(out, image_file(row["id"]), image)
    return {
        "id": row["id"], "file": image_file(row["id"]), "pixel_sha256": pixel_digest(image), "size": p.size,
        "crop_box": list(tf.crop), "scale": round(tf.scale, 6), "upscaled": tf.upscaled,
        "extra": _map_parts(row["extra"], tf, p.size),
    }, None  # fmt: skip


def run(params: dict, dataset: str, root: Path, workers: int | None = None) -> dict:
    ds = params["datasets"][dataset]
    section = dataset_section(params, dataset, "resize")
    n_workers = section.pop("workers")
    p = ResizeParams(size=ds["size"], crop=ds["crop"], **section)
    src = root / paths.CUTOUT.format(dataset=dataset)
    rows = read_manifest(src)
    upscaled = 0
    with atomic_dir(root / paths.PROCESSED.format(dataset=dataset)) as tmp:
        start(tmp)
        n_proc = resolve_workers(n_workers if workers is None else workers, len(rows))
        with OrderedPool(n_proc) as pool, ImageSetWriter(tmp, dataset, MANIFEST_COLUMNS, REJECT_COLUMNS) as out:
            results = pool.map(partial(resize_one, src=src, out=tmp, p=p), rows)
            for kept, reject in tqdm(results, total=len(rows), desc=f"resize {dataset}", unit="img", disable=None):
                if kept is None:
                    out.reject(reject)
                    continue
                out.keep(kept)
                upscaled += kept["upscaled"]
            require_kept("resize", dataset, out.kept, out.rejects, root)
            report = out.finish(size=p.size, crop=p.crop, upscaled=upscaled, recipe=overridden(params, dataset, "resize"))
    return report
