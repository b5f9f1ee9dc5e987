"""Stage ``cutout``: put each collected character on a black background, and judge every cutout.

Reads:  ``data/raw/<name>/`` (manifest.csv, images/, each image's pixels checked against the manifest's
        ``sha256``); ``params.yaml`` section ``cutout``.
Writes: ``data/interim/cutout/<name>/`` with ``images/<id>.png`` (RGB, background black),
        ``masks/<id>.png`` (8-bit foreground mask), ``manifest.csv`` (id, method used, foreground
        share and bounding box (the mask above 127, which ``resize`` crops by), the plausibility
        measures and margin, why it is suspect if flagged, the raw manifest's ``extra``),
        ``rejects.csv`` (failed and suspect cutouts with their reason), ``report.json`` (counts per
        method and per reject reason, suspects), ``contact_sheet.png`` (input | mask | result of the
        ``cutout.gate.contact_sheet`` least plausible cutouts, rejected ones included, worst first)
        and, with an ONNX model, ``onnx_vs_grabcut.png`` and its agreement in the report.
Guarantees: the folder appears complete or not at all; the method used for every image is recorded;
a cutout the gate finds implausible is never passed on silently (rejected as ``cutout_suspect``, or
kept and marked with ``cutout.gate.action: flag``); the outputs are byte-identical for any ``workers``.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np
from tqdm import tqdm

from animegen import paths
from animegen.artifacts.images import ImageSetWriter, image_file, mask_file, read_decoded, read_manifest, start, write_image
from animegen.data.cutout import (
    CutoutParams,
    GateParams,
    OnnxSegmenter,
    plausibility_margin,
    remove_background,
    suspicions,
)  # fmt: skip
from animegen.data.resize import foreground_box
from animegen.io import Rejected, atomic_dir, composite_on_black, save_png
from animegen.parallel import OrderedPool, resolve_workers
from animegen.plots import columns_grid
from animegen.recipes import dataset_section, overridden
from animegen.stages import require_kept

MANIFEST_COLUMNS = ["id", "file", "mask", "method", "foreground_fraction", "foreground_box", "largest_part", "holes",
                    "border", "seed_kept", "plausibility", "suspect", "extra"]  # fmt: skip
REJECT_COLUMNS = ["id", "reason", "detail"]
THUMB = 64  # contact-sheet tiles (px), sent back by the workers for every image


@dataclass(frozen=True)
class Job:
    """What a worker needs besides the manifest row (picklable; the ONNX session is made per process)."""

    src: Path
    out: Path
    params: CutoutParams
    gate: GateParams
    onnx: tuple[str, int] | None  # (model path, input size)


@dataclass
class Outcome:
    row: dict | None  # the manifest row when kept
    reject: dict | None  # the reject row otherwise
    margin: float  # plausibility_margin (9.99: not judged); the contact sheet sorts by it
    label: str
    thumbs: tuple[np.ndarray, np.ndarray, np.ndarray] | None  # input | mask | result, THUMB px
    onnx_vs_grabcut: tuple[float, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None


_SEGMENTERS: dict[tuple[str, int], OnnxSegmenter] = {}


def _segmenter(onnx: tuple[str, int] | None) -> OnnxSegmenter | None:
    """One ONNX session per process (made on first use: a session does not survive a fork)."""
    if onnx is None:
        return None
    if onnx not in _SEGMENTERS:
        _SEGMENTERS[onnx] = OnnxSegmenter(*onnx)
    return _SEGMENTERS[onnx]


def _thumb(arr: np.ndarray) -> np.ndarray:
    """A square THUMB px copy (padded with black, aspect kept) of an RGB or grey uint8 image."""
    from PIL import Image

    img = Image.fromarray(arr).convert("RGB")
    img.thumbnail((THUMB, THUMB), Image.Resampling.BILINEAR)
    canvas = Image.new("RGB", (THUMB, THUMB))
    canvas.paste(img, ((THUMB - img.width) // 2, (THUMB - img.height) // 2))
    return np.asarray(canvas)


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return float(np.logical_and(a, b).sum() / union) if union else 1.0


def cut_one(item: tuple[int, dict], job: Job) -> Outcome:
    """The per-image work (in a worker) for manifest row ``item = (index, row)``: cut out, judge, write
    the image and mask into ``job.out``, and the contact sheet's tiles."""
    index, row = item
    image_id = row["id"]
    sheet = job.gate.contact_sheet > 0
    try:
        img = read_decoded(job.src, row["file"], row.get("sha256") or None)
        cut = remove_background(img, job.params, _segmenter(job.onnx))
    except Rejected as r:
        return Outcome(None, {"id": image_id, "reason": r.reason, "detail": r.detail}, 9.99, "", None)
    gate_on = job.gate.action != "off"
    reasons = suspicions(cut.checks, job.gate) if gate_on else []
    margin = plausibility_margin(cut.checks, job.gate) if gate_on else 9.99
    thumbs = (_thumb(np.asarray(composite_on_black(img))), _thumb(cut.mask), _thumb(cut.rgb)) if sheet else None
    verdict = ("REJECTED " if job.gate.action == "reject" else "FLAGGED ") + "; ".join(reasons) if reasons else "ok"
    label = f"{image_id[:10]} {cut.method} {margin:.2f} {verdict}"
    compared = None
    if cut.method == "onnx" and index < job.gate.contact_sheet:  # the same image by GrabCut, for the report
        try:
            grab = remove_background(img.convert("RGB"), replace(job.params, method="grabcut"))
            compared = (_iou(cut.mask > 127, grab.mask > 127), (thumbs[0], thumbs[1], _thumb(grab.mask)))
        except Rejected:
            compared = (0.0, (thumbs[0], thumbs[1], np.zeros_like(thumbs[1])))
    if reasons and job.gate.action == "reject":
        reject = {"id": image_id, "reason": "cutout_suspect", "detail": f"{cut.method}: " + "; ".join(reasons)}
        return Outcome(None, reject, margin, label, thumbs, compared)
    file, mask = image_file(image_id), mask_file(image_id)
    write_image(job.out, file, cut.rgb, compress_level=1)
    write_image(job.out, mask, cut.mask, compress_level=1)
    kept = {
        "id": image_id, "file": file, "mask": mask, "method": cut.method,
        "foreground_fraction": round(cut.foreground_fraction, 4), "foreground_box": list(foreground_box(cut.mask) or []),
        **{k: cut.checks.get(k, "") for k in ("largest_part", "holes", "border", "seed_kept")},
        "plausibility": margin if cut.checks and gate_on else "", "suspect": "; ".join(reasons), "extra": row["extra"],
    }  # fmt: skip
    return Outcome(kept, None, margin, label, thumbs, compared)


class _Worst:
    """The ``n`` entries with the smallest (score, id), kept while streaming (trimmed in batches)."""

    def __init__(self, n: int):
        self.n, self._items = n, []

    def add(self, score: float, image_id: str, item) -> None:
        if self.n <= 0:
            return
        self._items.append((score, image_id, item))
        if len(self._items) >= 2 * self.n:
            self._trim()

    def _trim(self) -> None:
        self._items = sorted(self._items, key=lambda e: e[:2])[: self.n]

    def sorted(self) -> list:
        self._trim()
        return [item for _, _, item in self._items]


def _sheet(entries: list, headers: list[str]):
    columns = [np.stack([e[1][k] for e in entries]) for k in range(3)]
    return columns_grid(columns, headers, [e[0] for e in entries])


def run(params: dict, dataset: str, root: Path, workers: int | None = None) -> dict:
    c = dataset_section(params, dataset, "cutout")
    model, size, n_workers = c.pop("onnx_model"), c.pop("onnx_size"), c.pop("workers")
    gate = GateParams(**c.pop("gate"))
    p = CutoutParams(**c)
    onnx = (str(root / model), size) if model and p.method in ("auto", "onnx") else None
    if onnx is not None:
        _segmenter(onnx)  # a missing or broken model fails here, before any work
    src = root / paths.RAW.format(dataset=dataset)
    rows = read_manifest(src)
    n_sheet = gate.contact_sheet
    by_method, suspects = Counter(), 0
    worst, compared = _Worst(n_sheet), _Worst(n_sheet)
    ious: list[float] = []
    with atomic_dir(root / paths.CUTOUT.format(dataset=dataset)) as tmp:
        start(tmp, masks=True)
        job = Job(src, tmp, p, gate, onnx)
        n_proc = resolve_workers(n_workers if workers is None else workers, len(rows))
        with OrderedPool(n_proc) as pool, ImageSetWriter(tmp, dataset, MANIFEST_COLUMNS, REJECT_COLUMNS) as out:
            results = pool.map(partial(cut_one, job=job), enumerate(rows))
            for i, o in enumerate(tqdm(results, total=len(rows), desc=f"cutout {dataset}", unit="img", disable=None)):
                image_id = rows[i]["id"]
                if o.thumbs is not None:
                    worst.add(o.margin, image_id, (o.label, o.thumbs))
                if o.onnx_vs_grabcut is not None:
                    iou, thumbs = o.onnx_vs_grabcut
                    ious.append(iou)
                    compared.add(iou, image_id, (f"{image_id[:10]} IoU {iou:.2f}", thumbs))
                if o.row is None:
                    out.reject(o.reject)
                    suspects += o.reject["reason"] == "cutout_suspect"
                    continue
                out.keep(o.row)
                by_method[o.row["method"]] += 1
                suspects += bool(o.row["suspect"])
            require_kept("cutout", dataset, out.kept, out.rejects, root)
            extra = {}
            if ious:
                extra["onnx_vs_grabcut"] = {"images": len(ious), "mean_iou": round(float(np.mean(ious)), 4),
                                            "min_iou": round(float(np.min(ious)), 4)}  # fmt: skip
            report = out.finish(
                by_method=dict(sorted(by_method.items())),
                gate={"action": gate.action, "suspects": suspects},
                onnx_model=model if onnx is not None else None,
                recipe=overridden(params, dataset, "cutout"),
                **extra,
            )  # fmt: skip
        if n_sheet > 0 and worst.sorted():
            save_png(_sheet(worst.sorted(), ["input", "mask", "result"]), tmp / "contact_sheet.png")
        if compared.sorted():
            save_png(_sheet(compared.sorted(), ["input", "ONNX mask", "GrabCut mask"]), tmp / "onnx_vs_grabcut.png")
    return report

