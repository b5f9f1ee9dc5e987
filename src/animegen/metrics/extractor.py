"""The FID feature extractor as the stages configure it: weights resolved, network loaded and prepared for
inference, device, batch size and precision chosen, all recorded next to every value computed with it.

pytorch-fid's network (:func:`animegen.metrics.inception.load_inception`) is prepared once per stage
(:class:`InferenceInception`):

* every BatchNorm folded into the convolution before it (``torch.fx``'s ``fuse``; eval mode only): 94 fewer
  passes over the activations;
* weights and activations in the channels-last memory layout, which oneDNN (CPU) and cuDNN (tensor cores)
  run faster than NCHW;
* optionally ``torch.compile`` (``inception.compile``), which pays only for large sets: on the 2-core dev
  box it compiled for 31 s and then ran 1.1x faster, so it breaks even after about 10,000 images;
* the precision ``inception.precision``: ``fp32`` (the default; on a GPU, TF32 is switched off so that the
  features do not depend on the card), or, as an explicit choice, ``tf32`` or ``bf16`` (autocast).

The fp32 path differs from pytorch-fid's plain forward only by float rounding (features to ~1e-5, FID to
~1e-6; ``tests/test_metrics.py`` compares them); ``tf32``/``bf16`` change FID by more, which is why
:meth:`Extractor.record` writes the precision into every record that holds a value computed with it
(``benchmarks/fid.py`` measures the difference).  ``inception.batch_size: auto`` is 8 on the CPU (small
batches keep the 299 px activations in cache: 8 images per batch were 1.3x faster than pytorch-fid's 50 on
the 2-core dev box, BENCHMARKS.md) and 200 on a GPU.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from animegen.device import setup
from animegen.metrics.features import ImagesLike, fp32_precision, image_features
from animegen.metrics.inception import FIDInception, InceptionWeights, load_inception, resolve_weights

PRECISIONS = ("fp32", "tf32", "bf16")
AUTO_BATCH = {"cpu": 8, "cuda": 200}


class InferenceInception(nn.Module):
    """pytorch-fid's FID network (a :class:`FIDInception`) prepared for inference: BatchNorm folded into the
    convolutions, channels-last layout, optional ``torch.compile``, and its own precision, which it applies
    itself (:func:`image_features` leaves the precision to a module with ``handles_precision``).
    Input and output as :class:`FIDInception`: float (N, 3, H, W) in [0, 1] -> float32 (N, 2048)."""

    handles_precision = True

    def __init__(self, model: FIDInception, precision: str = "fp32", fuse_bn: bool = True,
                 channels_last: bool = True, compile: bool = False):  # fmt: skip
        super().__init__()
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        net = model.inception.eval()
        if fuse_bn:
            from torch.fx.experimental.optimization import fuse

            net = fuse(net)  # a copy: conv + eval-mode BatchNorm -> one conv with folded weights and bias
        else:
            net = copy.deepcopy(net)  # the caller's network stays as it was (Module.to works in place)
        if channels_last:
            net = net.to(memory_format=torch.channels_last)
        self.inception = net
        self.forward_fn = torch.compile(net) if compile else net
        self.weights = model.weights
        self.precision, self.fuse_bn, self.channels_last, self.compiled = precision, fuse_bn, channels_last, compile

    def _precision(self, device: torch.device):
        if self.precision == "bf16":
            return torch.autocast(device.type, dtype=torch.bfloat16)
        return fp32_precision("tf32" if self.precision == "tf32" else "ieee")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        with self._precision(x.device):
            return self.forward_fn(x)[0].flatten(1).float()

    def describe(self) -> dict:
        return {"precision": self.precision, "bn_folded": self.fuse_bn, "channels_last": self.channels_last,
                "compiled": self.compiled}  # fmt: skip


def auto_batch_size(setting: int | str, device: torch.device) -> int:
    """``inception.batch_size``: a number, or ``auto`` (by device type, :data:`AUTO_BATCH`)."""
    if setting == "auto":
        return AUTO_BATCH.get(device.type, AUTO_BATCH["cpu"])
    return int(setting)


@dataclass
class Extractor:
    """The configured feature extractor of one stage."""

    net: nn.Module
    weights: InceptionWeights
    device: torch.device
    batch_size: int

    def features(self, images: ImagesLike, progress: bool = False) -> np.ndarray:
        return image_features(self.net, images, batch_size=self.batch_size, device=self.device, progress=progress)

    def record(self) -> dict:
        """How the network ran (precision, folding, layout, compilation, batch size, device): what a record
        holds as ``inception`` beside a value computed with it (the weights go in ``inception_weights``)."""
        describe = self.net.describe() if isinstance(self.net, InferenceInception) else {"precision": "fp32"}
        return {**describe, "batch_size": self.batch_size, "device": self.device.type}


def load_extractor(settings: dict, root: Path) -> Extractor:
    """``settings`` is ``params.yaml``'s ``inception:`` section: ``weights`` (path relative to ``root``, or
    None), ``batch_size`` (a number or ``auto``), ``precision``, ``compile``, ``device`` and
    ``cpu_threads``.  Raises :class:`~animegen.metrics.inception.WeightsNotFoundError` (with how to provide
    weights), ``WeightsInvalidError`` or a ``DeviceError`` naming ``inception.device``; never falls back to
    other weights."""
    device = setup(settings, "inception")
    path = settings["weights"]
    weights = resolve_weights(root / path if path else None)
    net = InferenceInception(load_inception(weights, device), settings["precision"], compile=settings["compile"])
    return Extractor(net, weights, device, auto_batch_size(settings["batch_size"], device))
