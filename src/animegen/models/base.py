"""The one small protocol every model family offers the training loop (:mod:`animegen.train`).

A family is one file in this package and one entry in :mod:`animegen.models.registry`.  It builds its
networks and optimisers from its params section, takes one optimisation step on a batch, and samples
(or, for image-to-image models, translates) a batch with a given generator.  Everything else lives in
the loop, once: seeding, device, TF32/mixed-precision switches, the EMA of the generator, checkpoint
and resume, the step limit and the wall-clock budget, logging and progress bars.

Batches are dicts of float tensors in ``[-1, 1]``, shape ``(B, 3, H, W)``, already on the device and
already augmented by the loop (random horizontal flip): ``{"image": x}`` for unconditional models;
``{"a": x_a, "b": x_b}`` for translation models (two datasets, unpaired or paired).  Random numbers
come from torch's global generator, which the loop seeds and saves in every checkpoint, so that a run
resumed from step k reproduces an uninterrupted run bit for bit on the CPU.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Callable, ContextManager

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class StepContext:
    """What the loop lends a model for one step: the device, autocast and a scaler-aware optimiser step."""

    device: torch.device
    autocast: Callable[[], ContextManager] = contextlib.nullcontext
    scaler: torch.amp.GradScaler = field(default_factory=lambda: torch.amp.GradScaler("cpu", enabled=False))

    def backward_step(
        self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, max_grad_norm: float | None = None
    ) -> None:
        """Zero the optimiser's gradients, backpropagate ``loss`` (scaled under fp16) and step."""
        optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(loss).backward()
        if max_grad_norm:
            self.scaler.unscale_(optimizer)
            params = [p for g in optimizer.param_groups for p in g["params"]]
            torch.nn.utils.clip_grad_norm_(params, max_grad_norm)
        self.scaler.step(optimizer)


def lsgan(pred: torch.Tensor, real: bool) -> torch.Tensor:
    """The least-squares GAN loss of discriminator outputs against the target 1 (real) or 0 (fake)."""
    return F.mse_loss(pred, torch.full_like(pred, 1.0 if real else 0.0))


class ResnetBlock(nn.Module):
    """The CycleGAN/pix2pixHD residual block: ``x + F(x)``, F = reflect-pad, conv 3x3, IN, ReLU, reflect-pad,
    conv 3x3, IN.  ``scale`` (B, 1, H, W), when given, multiplies the branch (CycleGAN + CAM's attention)."""

    def __init__(self, dim: int):
        super().__init__()
        self.branch = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3), nn.InstanceNorm2d(dim),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None) -> torch.Tensor:
        r = self.branch(x)
        return x + (r if scale is None else r * scale)


def lr_factor(step: int, constant_steps: int, decay_steps: int) -> float:
    """The CycleGAN/pix2pix reference's linear rule, in steps: 1 for ``constant_steps``, then linearly down
    to 0 over ``decay_steps`` (0: constant)."""
    if decay_steps <= 0:
        return 1.0
    return max(0.0, 1.0 - max(0, step - constant_steps) / float(decay_steps + 1))


class GenerativeModel:
    """Base class of every family.  Subclasses set ``networks`` and ``optimizers`` in ``__init__``.

    ``kind`` is ``"unconditional"`` (batch ``{"image"}``, :meth:`sample`) or ``"translation"`` (batch
    ``{"a", "b"}``, :meth:`translate`).
    """

    kind = "unconditional"

    @staticmethod
    def companions(net: dict) -> list[str]:
        """A translation model's per-image companions of its domains (``a_<what>``, ``b_<what>``; see
        :func:`animegen.train.image_banks`), made by the ``derive`` stage; none by default."""
        return []

    def __init__(self, net: dict, image_size: int, channels: int = 3):
        self.cfg = net
        self.image_size = image_size
        self.channels = channels
        self.networks: dict[str, nn.Module] = {}
        self.optimizers: dict[str, torch.optim.Optimizer] = {}

    # --- what the loop calls ------------------------------------------------------------------------
    def ema_network(self) -> nn.Module:
        """The module whose exponential moving average the loop keeps (the generator)."""
        raise NotImplementedError

    def train_step(self, batch: dict[str, torch.Tensor], step: int, ctx: StepContext) -> dict[str, float]:
        """One optimisation step; returns the losses to log (plain floats)."""
        raise NotImplementedError

    @torch.no_grad()
    def sample(self, net: nn.Module, n: int, device: torch.device, **sample_cfg) -> torch.Tensor:
        """``n`` images in ``[0, 1]``, shape ``(n, 3, H, W)``, drawn with ``net`` (the EMA or live generator)."""
        raise NotImplementedError

    @torch.no_grad()
    def translate(self, net: nn.Module, x: torch.Tensor, **sample_cfg) -> torch.Tensor:
        """Translation models: images of domain a in ``[-1, 1]`` to domain b, returned in ``[0, 1]``."""
        raise NotImplementedError

    # --- shared helpers -----------------------------------------------------------------------------
    def to(self, device: torch.device) -> "GenerativeModel":
        for m in self.networks.values():
            m.to(device)
        return self

    def train(self, mode: bool = True) -> None:
        for m in self.networks.values():
            m.train(mode)

    def set_lr(self, lr: float) -> float:
        """Every optimiser's learning rate (a family's schedule calls it each step); returns ``lr``."""
        for opt in self.optimizers.values():
            for group in opt.param_groups:
                group["lr"] = lr
        return lr

    def n_parameters(self) -> dict[str, int]:
        return {k: sum(p.numel() for p in m.parameters()) for k, m in self.networks.items()}

    def state_dict(self) -> dict:
        return {
            "networks": {k: m.state_dict() for k, m in self.networks.items()},
            "optimizers": {k: o.state_dict() for k, o in self.optimizers.items()},
            "extra": self.extra_state(),
        }

    def load_state_dict(self, state: dict) -> None:
        for k, m in self.networks.items():
            m.load_state_dict(state["networks"][k])
        for k, o in self.optimizers.items():
            o.load_state_dict(state["optimizers"][k])
        self.load_extra_state(state.get("extra", {}))

    def extra_state(self) -> dict:
        """Non-parameter training state that a resume needs (e.g. StyleGAN2's path-length mean)."""
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass
