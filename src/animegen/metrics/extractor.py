"""The FID feature extractor as the stages configure it: weights resolved, network loaded, device chosen."""

from __future__ import annotations

from pathlib import Path

import torch

from animegen.device import setup
from animegen.metrics.inception import InceptionWeights, load_inception, resolve_weights


def load_extractor(settings: dict, root: Path) -> tuple[torch.nn.Module, InceptionWeights, torch.device]:
    """``settings`` is ``params.yaml``'s ``inception:`` section: ``weights`` (path relative to ``root``, or
    None), ``device`` and ``cpu_threads``.  Raises :class:`~animegen.metrics.inception.WeightsNotFoundError`
    (with how to provide weights), ``WeightsInvalidError`` or a ``DeviceError`` naming
    ``inception.device``; never falls back to other weights."""
    device = setup(settings, "inception")
    path = settings["weights"]
    weights = resolve_weights(root / path if path else None)
    return load_inception(weights, device), weights, device
