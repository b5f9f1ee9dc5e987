"""CAM classifiers ``data/cam/classifiers/<classifier>/`` (stage ``cam_classifier``), read by ``cam_select``.

``classifier.pt`` (tagged ``animegen.classifier/1``): architecture, width, depth, input size, the two
classes (``"0"`` negative, ``"1"`` positive dataset names), the default Grad-CAM layer and the weights;
``train.json`` (tagged ``animegen.classifier_train/1``): per-epoch loss and accuracy and the held-out
metrics.  ``torch.load`` is always called with ``weights_only=True``.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from animegen import paths
from animegen.artifacts import ArtifactError, format_tag, load_tagged_torch
from animegen.artifacts.records import write_record
from animegen.cam import classifier as clf
from animegen.cam.attention import GradCamMaps
from animegen.io import save_torch_atomic, sha256_file

KIND, VERSION = "classifier", 1
TRAIN_KIND, TRAIN_VERSION = "classifier_train", 1


def write_classifier(folder: Path, net: nn.Module, meta: dict, history: list[dict], metrics: dict) -> None:
    """``meta``: arch, width, depth, image_size, classes, default_target_layer."""
    save_torch_atomic(folder / "classifier.pt", {
        "format": format_tag(KIND, VERSION), **meta,
        "state_dict": {k: v.detach().cpu() for k, v in net.state_dict().items()},
    })  # fmt: skip
    write_record(folder / "train.json", TRAIN_KIND, TRAIN_VERSION, {"history": history, **metrics})


def read_classifier(folder: Path, device: torch.device) -> tuple[nn.Module, dict]:
    """The classifier, frozen on ``device``, and its metadata (everything but the weights)."""
    blob = load_tagged_torch(folder / "classifier.pt", KIND, VERSION, "cam_classifier")
    net = clf.build(blob["arch"], blob["width"], blob["depth"])
    net.load_state_dict(blob["state_dict"])
    net.to(device).eval()
    for p in net.parameters():
        p.requires_grad_(False)  # the maps need gradients w.r.t. activations only
    return net, {k: v for k, v in blob.items() if k not in ("state_dict", "format")}


def read_cam_maps(folder: Path, device: torch.device, image_size: int, target_class: str) -> tuple[GradCamMaps, dict]:
    """The frozen classifier's torch-native Grad-CAM at its default layer, for a translator that multiplies
    the maps in (CycleGAN + CAM): domain ``b`` is the class ``target_class`` (``positive`` or
    ``negative``), domain ``a`` the other; the metadata has the weights file's ``sha256``.  Refuses a
    classifier trained at another image size."""
    net, meta = read_classifier(folder, device)
    if meta["image_size"] != image_size:
        raise ArtifactError(f"{folder}: the classifier takes {meta['image_size']} px images, the model {image_size} px")
    b = 1 if target_class == "positive" else 0
    meta = {**meta, "sha256": sha256_file(folder / "classifier.pt")}  # which weights made the maps
    return GradCamMaps(net, clf.target_layer(net, meta["default_target_layer"]), meta["arch"], {"a": 1 - b, "b": b}), meta


def attach_cam_maps(model, root: Path, translator: dict, device: torch.device, image_size: int) -> dict | None:
    """Give a translator with attention (``model.uses_cam``) the Grad-CAM maps of its classifier
    (``translator["classifier"]``, domain ``b`` = ``translator["target_class"]``) and return the
    classifier's metadata (``sha256`` included); None, and nothing read, for a model without attention."""
    if not getattr(model, "uses_cam", False):
        return None
    folder = root / paths.CAM_CLASSIFIER.format(classifier=translator["classifier"])
    maps, meta = read_cam_maps(folder, device, image_size, translator["target_class"])
    model.set_cam(maps)
    return meta
