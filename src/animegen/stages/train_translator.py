"""Stage ``train_translator``: train one image-to-image model of ``params.yaml``'s ``translators:``.

Reads:  the train splits of its two domains, ``data/processed/<source.dataset>/images/`` with
        ``data/splits/<source.split>.json`` (domain a, what is translated; the split may be a CAM
        selection, study C) and ``data/processed/<target.dataset>/images/`` with
        ``data/splits/<target.split>.json`` (domain b); when the family's ``net.cam_generator`` or
        ``net.cam_discriminator`` is on, ``data/cam/classifiers/<classifier>/`` (the frozen classifier
        whose Grad-CAM maps are multiplied into the networks; ``target_class`` names its class of
        domain b, the other class is domain a); ``params.yaml`` sections ``train`` (the loop) and
        ``translators.<name>``.
        ``data/derived/<source.dataset>/`` and ``data/derived/<target.dataset>/`` (AnimeGAN: the style
        images' edge-smoothed copies and the photos' face masks, in the domains' order; the
        pretrained backbones its losses name, whose origin and SHA-256 go into ``train.json``).
Writes: ``data/models/<name>/`` (``model.pt``, ``train.json``, ``curves.png``, as ``train``) and
        ``metrics/train/<name>/`` (the dvclive curves).  Batches are unpaired (each domain in its own
        seeded order) unless ``translators.<name>.paired``: then every source train image is drawn with
        the target image of the same id (same order, same flips); a source image without its partner in
        the target's train split, or a source test image whose partner the target trains on, stops the
        stage naming the id.
Keeps:  ``data/checkpoints/<name>/``, the resumable state (an interrupted run continues from it).
Guarantees: outputs appear complete or not at all; on the CPU a resumed run ends with the same weights
as an uninterrupted one.
"""

from __future__ import annotations

from pathlib import Path

from animegen import paths
from animegen.artifacts.classifier import attach_cam_maps
from animegen.artifacts.derived import read_companions, read_derived_record
from animegen.artifacts.images import read_images
from animegen.artifacts.split import load_split_images, split_ids
from animegen.fitting import FitError, fit
from animegen.models import backbones, registry
from animegen.stages import StageError

ROLES = {"a": "source", "b": "target"}


def pair_ids(root: Path, name: str, t: dict, source_ids: list[str]) -> list[str]:
    """The target ids of a paired translator's source train ids (the same ids, in their order), checked:
    every one has its partner in the target's train split, and no source test image (what translate
    translates) has its partner there, where the model would have seen the answer."""
    a, b = t["source"], t["target"]
    target_train = set(split_ids(root, b["split"], "train"))
    missing = [i for i in source_ids if i not in target_train]
    if missing:
        raise StageError(f"train_translator {name}: paired, but {len(missing)} of {len(source_ids)} {a['split']} train images "
                         f"have no partner in {b['split']}'s train split, first {missing[0]} (rejected there? see rejects.csv in "
                         f"data/interim/cutout/{b['dataset']}/ and data/processed/{b['dataset']}/)")  # fmt: skip
    leaked = [i for i in split_ids(root, a["dataset"], "test") if i in target_train]
    if leaked:
        raise StageError(f"train_translator {name}: paired, but {len(leaked)} {a['dataset']} test image(s) have their "
                         f"partner in {b['split']}'s train split, first {leaked[0]}: the pair must share its split")  # fmt: skip
    return list(source_ids)


def run(params: dict, name: str, root: Path) -> dict:
    t = params["translators"][name]
    images, record, domain_ids = {}, {}, {}
    for domain, role in ROLES.items():
        d = t[role]
        ids, imgs = load_split_images(root, d["dataset"], split=d["split"])
        if len(ids) < 2:
            raise StageError(f"train_translator {name}: the {role} split {d['split']} of {d['dataset']} has "
                             f"{len(ids)} image(s); need at least 2")  # fmt: skip
        images[domain], domain_ids[domain] = imgs, ids
        record[role] = {"dataset": d["dataset"], "split": d["split"], "n_train_images": len(ids)}
    if t["paired"]:
        domain_ids["b"] = pair_ids(root, name, t, domain_ids["a"])
        images["b"] = read_images(root / paths.PROCESSED.format(dataset=t["target"]["dataset"]), domain_ids["b"])
        record["target"]["n_train_images"] = len(domain_ids["b"])
        record["paired"] = True
    for key in registry.model_class(t["family"]).companions(t["net"]):  # AnimeGAN: smoothed anime, face masks
        domain, what = key.split("_", 1)
        folder = root / paths.DERIVED.format(dataset=t[ROLES[domain]]["dataset"])
        images[key] = read_companions(folder, what, domain_ids[domain])
        if what == "faces":
            derived = read_derived_record(folder)
            record["faces"] = {"method": derived["face_method"], "found_in_dataset": derived["faces_found"],
                               "images_in_dataset": len(derived["ids"])}  # fmt: skip
            if not images[key].any():
                raise StageError(f"train_translator {name}: no face was found in the {len(domain_ids[domain])} training "
                                 f"photos of {t['source']['dataset']} (derive.faces: {derived['face_method']}); the skin "
                                 "and face losses would be zero")  # fmt: skip
    if images["a"].shape[1:] != images["b"].shape[1:]:
        raise StageError(f"train_translator {name}: source images are {images['a'].shape[1:3]} but target images "
                         f"{images['b'].shape[1:3]}; both domains need one size")  # fmt: skip
    size = images["a"].shape[1]

    def attach_cam(model, device) -> dict | None:
        extra = {}
        meta = attach_cam_maps(model, root, t, device, size)
        if meta is not None:
            record["cam"] = {"classifier": t["classifier"], "layer": meta["default_target_layer"], "target_class": t["target_class"],
                             "classifier_sha256": meta["sha256"]}  # fmt: skip
            extra["cam"] = record["cam"]  # another classifier's maps: another run (its checkpoints are refused)
        if hasattr(model, "needed_backbones"):
            nets = {}
            for which in model.needed_backbones():
                key = f"{which}_backbone"
                try:
                    nets[which] = backbones.load(t["net"][key], root)
                except backbones.BackboneError as e:
                    raise StageError(f"train_translator {name}: translators.{name}.net.{key}: {e}") from None
            model.set_backbones(nets)
            record["backbones"] = {k: b.source.record() for k, b in nets.items()}
            extra["backbones"] = record["backbones"]  # other weights under the same path: another run
        return extra or None

    a, b = t["source"], t["target"]
    try:
        return fit(params, "translators", name, images, size, root, record, title=f"{a['split']} -> {b['split']}",
                   data=f"{a['split']} ({len(images['a'])}) -> {b['split']} ({len(images['b'])})", prepare=attach_cam)  # fmt: skip
    except FitError as e:
        raise StageError(str(e)) from None
