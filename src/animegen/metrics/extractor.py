"""The FID feature extractor as the stages configure it: weights resolved, network loaded, device chosen."""

from __future__ import annotations

from pathlib import Path

import torch

from animegen.device import select_device, set_cpu_threads
from animegen.metrics.inception import InceptionWeights, load_inception, resolve_weights


def load_extractor(settings: dict, root: Path) -> tuple[torch.nn.Module, InceptionWeights, torch.device]:
    """``settings`` is a mapping with ``weights`` (path relative to ``root``, or None), ``device`` and
    ``cpu_threads``.  Raises :class:`~animegen.metrics.inception.WeightsNotFoundError` (with how to
    provide weights) or ``WeightsInvalidError``; never falls back to other weights."""
    set_cpu_threads(settings["cpu_threads"])
    device = select_device(settings["device"])
    path = settings["weights"]
    weights = resolve_weights(root / path if path else None)
    return load_inception(weights, device), weights, device
