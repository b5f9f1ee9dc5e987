"""Stage ``derive``: what AnimeGAN needs made once per dataset, cached like any artifact.

Reads:  ``data/processed/<name>/`` (its images and manifest); ``params.yaml`` section ``derive``
        (which datasets get edge-smoothed copies and which get face regions, and how).
Writes: ``data/derived/<name>/`` (see :mod:`animegen.artifacts.derived`): ``smooth/<id>.png`` when
        ``derive.edge_smooth`` names the dataset (an AnimeGAN style set), ``faces/<id>.png`` and
        ``faces.csv`` when ``derive.faces`` does (an AnimeGAN content set whose translator has skin or
        face losses), and ``derive.json`` always (the face method and how many faces were found are
        recorded there and in the translator's train.json).
Guarantees: the folder appears complete or not at all; the same images and settings give the same files.
"""

from __future__ import annotations

from pathlib import Path

from animegen import paths
from animegen.artifacts import derived
from animegen.artifacts.images import read_images, read_manifest
from animegen.data.derive import Face, MtcnnDetector, edge_smooth, face_mask, manifest_face
from animegen.io import atomic_dir
from animegen.stages import StageError


def run(params: dict, dataset: str, root: Path) -> dict:
    d = params["derive"]
    smooth, method = dataset in d["edge_smooth"], d["faces"].get(dataset, "none")
    folder = root / paths.PROCESSED.format(dataset=dataset)
    rows = read_manifest(folder)
    ids = [r["id"] for r in rows]
    detector = MtcnnDetector(d["mtcnn_min_confidence"]) if method == "mtcnn" else None
    found = 0
    with atomic_dir(root / paths.DERIVED.format(dataset=dataset)) as tmp:
        derived.start(tmp, smooth, method != "none")
        faces = derived.face_rows(tmp) if method != "none" else None
        try:
            for start in range(0, len(ids), 256):  # a few hundred images in memory at a time
                chunk = rows[start : start + 256]
                imgs = read_images(folder, [r["id"] for r in chunk])
                for row, img in zip(chunk, imgs):
                    if smooth:
                        derived.write_smooth(tmp, row["id"], edge_smooth(img, d["smooth_kernel"], tuple(d["canny"])))
                    if faces is None:
                        continue
                    face = _face(row, img, method, detector, dataset)
                    found += face.box is not None
                    derived.write_face(tmp, row["id"], face_mask(face.box, *img.shape[:2], d["face_shape"]))
                    box = face.box or (None,) * 4
                    faces.write({"id": row["id"], "found": int(face.box is not None), **dict(zip(("x0", "y0", "x1", "y1"), box)),
                                 "confidence": face.confidence, "method": method})  # fmt: skip
        finally:
            if faces is not None:
                faces.close()
        record = {"dataset": dataset, "ids": ids, "edge_smooth": smooth, "faces": method != "none", "face_method": method,
                  "faces_found": found if method != "none" else None, "face_shape": d["face_shape"] if method != "none" else None,
                  "smooth_kernel": d["smooth_kernel"] if smooth else None, "canny": d["canny"] if smooth else None}  # fmt: skip
        derived.write_derived_record(tmp, record)
    return {"dataset": dataset, "n": len(ids), "edge_smooth": smooth, "face_method": method,
            "faces_found": found if method != "none" else None}  # fmt: skip


def _face(row: dict, img, method: str, detector, dataset: str) -> Face:
    if method == "mtcnn":
        return detector(img)
    try:
        return manifest_face(row.get("extra") or {})
    except ValueError as e:
        raise StageError(f"derive {dataset}: image {row['id']}: {e}") from None
