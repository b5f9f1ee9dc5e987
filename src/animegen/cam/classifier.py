"""The class classifier whose Grad-CAM drives the selection: a small CNN or a torchvision ResNet.

Label 1 is the ``positive`` dataset, label 0 the ``negative`` one.  ``small_cnn`` is ``depth`` blocks of
two 3x3 conv + BatchNorm + ReLU (block i has ``width * 2**i`` channels; blocks after the first start
with a 2x2 max-pool), then global average pooling and a linear layer; its default Grad-CAM layer is the
last block, whose maps have 1/2**(depth-1) of the input resolution.  ``resnet18/34/50`` are
torchvision's, randomly initialised or loaded from a local state dict (e.g. the ImageNet weights,
which cannot be downloaded here), with a new 2-class head; their default layer is ``layer4``.  Note
that a ResNet reduces its input 32 times: at 32-64 px its CAM is 1-2 pixels wide, so use it from
128 px up.

Training follows the training loop's rules: everything is seeded (initialisation from the seed, batch
order and flips from a generator seeded by it), so on the CPU a rerun gives the same bits.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

ARCHS = ("small_cnn", "resnet18", "resnet34", "resnet50")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


class SmallCNN(nn.Module):
    def __init__(self, width: int, depth: int, num_classes: int = 2):
        super().__init__()
        blocks, c_in = [], 3
        for i in range(depth):
            c = width * 2**i
            layers: list[nn.Module] = [nn.MaxPool2d(2)] if i else []
            layers += [nn.Conv2d(c_in, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU(),
                       nn.Conv2d(c, c, 3, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]  # fmt: skip
            blocks.append(nn.Sequential(*layers))
            c_in = c
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(c_in, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.blocks(x).mean(dim=(2, 3)))


def build(arch: str, width: int = 16, depth: int = 3, weights: str | Path | None = None) -> nn.Module:
    """A 2-class classifier; ``weights`` (torchvision archs only) is a local state dict of the backbone."""
    if arch == "small_cnn":
        if weights:
            raise ValueError("small_cnn has no pretrained weights")
        return SmallCNN(width, depth)
    if arch not in ARCHS:
        raise ValueError(f"unknown arch {arch!r}; expected one of {', '.join(ARCHS)}")
    import torchvision  # noqa: PLC0415

    net = getattr(torchvision.models, arch)(weights=None)
    if weights:
        state = torch.load(weights, map_location="cpu", weights_only=True)
        if not isinstance(state, dict):
            raise ValueError(f"{weights} is not a state dict")
        state = {k: v for k, v in state.items() if not k.startswith("fc.")}  # the head is replaced below
        try:
            missing, unexpected = net.load_state_dict(state, strict=False)
        except RuntimeError as e:
            raise ValueError(f"{weights} is not a {arch} state dict ({' '.join(str(e).split())[:200]})") from None
        problems = [k for k in missing if not k.startswith("fc.")] + list(unexpected)
        if problems:
            raise ValueError(f"{weights} is not a {arch} state dict (mismatched keys: {problems[:5]})")
    net.fc = nn.Linear(net.fc.in_features, 2)
    return net


def target_layer(net: nn.Module, name: str) -> nn.Module:
    """The classifier's layer ``name`` (Grad-CAM's target); ``ValueError`` listing some layers otherwise."""
    try:
        return net.get_submodule(name)
    except AttributeError:
        names = [n for n, m in net.named_modules() if n and isinstance(m, (nn.Sequential, nn.Conv2d))]
        raise ValueError(f"no layer {name!r} in the classifier (some layers: {', '.join(names[:12])})") from None


def default_target_layer(arch: str, depth: int) -> str:
    return f"blocks.{depth - 1}" if arch == "small_cnn" else "layer4"


def prepare(images: torch.Tensor, arch: str) -> torch.Tensor:
    """uint8 (N, 3, H, W) -> the float input the arch expects: [-1, 1] for small_cnn, ImageNet-normalised else."""
    return prepare_float(images.float().div(255.0), arch)


def prepare_float(x: torch.Tensor, arch: str) -> torch.Tensor:
    """Float images in [0, 1] (N, 3, H, W) -> the input the arch expects (as :func:`prepare`)."""
    if arch == "small_cnn":
        return x.mul(2.0).sub(1.0)
    mean = torch.tensor(IMAGENET_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def to_tensor(images: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 (N, H, W, 3) numpy -> uint8 (N, 3, H, W) on the device."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).contiguous().to(device)


@dataclass
class FitConfig:
    arch: str
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    hflip: bool
    seed: int


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)  # one row per epoch: loss, train accuracy


def fit(net: nn.Module, images: np.ndarray, labels: np.ndarray, cfg: FitConfig, device: torch.device,
        log=lambda msg: None) -> FitResult:  # fmt: skip
    """Train ``net`` in place with class-balanced cross-entropy (Adam); batches and flips are seeded."""
    x_all = to_tensor(images, device)
    y_all = torch.as_tensor(labels, dtype=torch.long, device=device)
    n = len(y_all)
    counts = torch.bincount(y_all, minlength=2).float()
    loss_fn = nn.CrossEntropyLoss(weight=(n / (2.0 * counts.clamp(min=1))).to(device))
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)
    net.to(device).train()
    result = FitResult()
    for epoch in range(cfg.epochs):
        perm = torch.randperm(n, generator=g)
        flips = torch.rand(n, generator=g) < 0.5
        total, correct, seen = 0.0, 0, 0
        for start in range(0, n, cfg.batch_size):
            idx = perm[start : start + cfg.batch_size]
            if len(idx) < 2:  # BatchNorm cannot train on one image
                continue
            x = prepare(x_all[idx.to(device)], cfg.arch)
            if cfg.hflip:
                x = torch.where(flips[idx].to(device)[:, None, None, None], x.flip(-1), x)
            y = y_all[idx.to(device)]
            logits = net(x)
            loss = loss_fn(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
            correct += int((logits.argmax(1) == y).sum())
            seen += len(idx)
        if not np.isfinite(total):
            raise FloatingPointError(f"the classifier's loss is not finite at epoch {epoch + 1}")
        row = {"epoch": epoch + 1, "loss": total / max(seen, 1), "train_accuracy": correct / max(seen, 1)}
        result.history.append(row)
        log(f"epoch {row['epoch']}/{cfg.epochs}: loss {row['loss']:.4f}, train accuracy {row['train_accuracy']:.3f}")
    net.eval()
    return result


@torch.no_grad()
def predict(net: nn.Module, images: np.ndarray, arch: str, device: torch.device, batch_size: int = 256) -> np.ndarray:
    """Softmax probabilities (N, 2) in eval mode."""
    net.eval()
    out = []
    for start in range(0, len(images), batch_size):
        x = prepare(to_tensor(images[start : start + batch_size], device), arch)
        out.append(torch.softmax(net(x).float(), dim=1).cpu().numpy())
    return np.concatenate(out) if out else np.zeros((0, 2), dtype=np.float32)
