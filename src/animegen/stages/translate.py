"""Stage ``translate``: translate the source domain's held-out images with one trained translator.

Reads:  ``data/models/<name>/model.pt``; ``data/processed/<source.dataset>/images/`` and
        ``data/splits/<source.dataset>.json`` (the dataset's own split: its ``test`` part, or every
        image with ``translate.images: all``); ``data/cam/classifiers/<classifier>/`` when the
        translator multiplies Grad-CAM maps in; for a paired translator ``data/processed/<target.dataset>/``
        and ``data/splits/<target.dataset>.json`` (each input's own target, shown in the grid; when one
        is missing the record says ``paired_targets: false`` and the grid shows none); ``params.yaml``
        sections ``translate`` and ``translators.<name>``.
Writes: ``data/translations/<name>/`` with ``images/<id>.png`` (each output under its input's id, at
        the training size), ``inputs/<id>.png`` (the inputs, so the folder holds every pair),
        ``members/<k>/<id>.png`` for a model of several members (Council GAN: every member's
        translations; ``images/`` holds those of ``net.member``, the one evaluated), ``grid.png`` (the
        first ``translate.grid`` inputs, their translations (each member's), for a model with a way back
        such as CycleGAN's G_B the reconstructions, and for a paired translator each input's own target
        image) and ``translate.json``.
Guarantees: the folder appears complete or not at all; the same model and device give the same images
(translation draws no random numbers; Council GAN's style codes come from each image's own pixels).
"""

from __future__ import annotations

from pathlib import Path

import torch

from animegen import paths
from animegen.artifacts import translations
from animegen.artifacts.classifier import attach_cam_maps
from animegen.artifacts.images import read_images
from animegen.artifacts.model import read_model, read_train_record
from animegen.artifacts.split import load_split_images, split_ids
from animegen.device import device_name, set_tf32
from animegen.device import setup as device_setup
from animegen.io import atomic_dir, save_png
from animegen.models.sampling import to_uint8, translate_images
from animegen.plots import columns_grid
from animegen.stages import StageError
from animegen.train import generator_for_sampling


def run(params: dict, name: str, root: Path) -> dict:
    t = params["translators"][name]
    s = params["translate"]
    device = device_setup(s, "translate")
    set_tf32(s["tf32"])
    source = t["source"]["dataset"]
    ids, images = load_split_images(root, source, s["images"])
    if not ids:
        raise StageError(f"translate {name}: {source} has no {s['images']!r} images to translate")
    model, blob = read_model(root / paths.MODEL.format(model=name), t["family"], t["net"])
    trained = read_train_record(root / paths.MODEL.format(model=name))
    if images.shape[1] != blob["image_size"]:
        raise StageError(f"translate {name}: {source} images are {images.shape[1]} px, the model was trained at "
                         f"{blob['image_size']} px; retrain")  # fmt: skip
    try:
        net = generator_for_sampling(model, blob, s["use_ema"]).to(device)
    except ValueError as e:
        raise StageError(f"translate.use_ema: {e}") from None
    model.to(device)
    model.train(False)
    net.eval()
    attach_cam_maps(model, root, t, device, blob["image_size"])
    out = translate_images(model, net, images, s["batch_size"], device)
    members = {}  # Council GAN: every member's translations (live weights), beside the evaluated one's
    if hasattr(model, "member_networks"):
        members = {m: translate_images(model, g.eval(), images, s["batch_size"], device) for m, g in model.member_networks().items()}
    targets = None  # a paired translator: each input's own target image (face -> its full body), for people
    if t["paired"]:
        target_ids = set(split_ids(root, t["target"]["dataset"], "all"))
        if all(i in target_ids for i in ids):
            targets = read_images(root / paths.PROCESSED.format(dataset=t["target"]["dataset"]), ids)
    k = min(s["grid"], len(ids))
    recs = None  # a model with a way back (CycleGAN's G_B) shows the cycle a -> b -> a in the grid
    if k and hasattr(model, "reconstruct"):
        recs = to_uint8(model.reconstruct(torch.from_numpy(out[:k]).to(device).permute(0, 3, 1, 2).float().div(255.0)))
    with atomic_dir(root / paths.TRANSLATIONS.format(model=name)) as tmp:
        translations.start(tmp)
        for image_id, source_img, img in zip(ids, images, out):
            translations.write_pair(tmp, image_id, source_img, img)
        for m, imgs in members.items():
            for image_id, img in zip(ids, imgs):
                translations.write_member(tmp, m, image_id, img)
        if k:
            columns, headers = [images[:k], out[:k]], [f"input ({source})", f"output ({name})"]
            if members:
                columns, headers = [images[:k]], [f"input ({source})"]
                for m, imgs in members.items():
                    columns.append(out[:k] if m == str(t["net"]["member"]) else imgs[:k])
                    headers.append(f"member {m}" + (" (evaluated)" if m == str(t["net"]["member"]) else ""))
            if recs is not None:
                columns.append(recs)
                headers.append("reconstruction")
            if targets is not None:
                columns.append(targets[:k])
                headers.append(f"target ({t['target']['dataset']})")
            save_png(columns_grid(columns, headers, [i[:12] for i in ids[:k]]), tmp / "grid.png")
        record = {
            "model": name, "family": t["family"], "source": source, "target": t["target"]["dataset"],
            "images": s["images"], "n": len(ids), "ids": ids, "use_ema": s["use_ema"], "trained_steps": blob["step"],
            "image_size": blob["image_size"], "device": device.type, "tf32": s["tf32"],
            # pretrained networks the training losses used (AnimeGAN), and how the photos' faces were found
            "backbones": trained.get("backbones"), "faces": trained.get("faces"),
            "paired": t["paired"], "paired_targets": targets is not None,
            **({"members": sorted(members, key=int), "member": str(t["net"]["member"])} if members else {}),
        }  # fmt: skip
        translations.write_translate_record(tmp, record)
    return {"model": name, "n": len(ids), "images": s["images"], "device_name": device_name(device)}
