"""DDPM with lucidrains' ``Unet`` and ``GaussianDiffusion`` (``denoising-diffusion-pytorch``, pinned),
used as plain modules inside our loop instead of the library's ``Trainer``.

Study A's DDPM is ``Unet(dim=64, dim_mults=(1, 2, 4, 8))``; its "hourglass" DDPM is the same family
with ``dim_mults=(1, 4, 16)``.  Every setting whose library default changed across versions is set
explicitly from params: ``objective`` (``pred_noise`` before 1.6.3, ``pred_v`` since), ``beta_schedule``
(``cosine`` before 1.0.1, ``sigmoid`` since), ``timesteps``, and the ``loss``: early releases trained
with L1 (``(noise - x_recon).abs().mean()``), the pinned one with L2 only (``F.mse_loss``), so ``l2``
calls the library's own ``forward`` and ``l1`` is :func:`diffusion_loss` (the library's ``p_losses``
with the L1 distance, built from its own ``q_sample``, ``predict_v`` and ``loss_weight``).  Sampling
settings live in the model's ``sample:`` section so that changing them reruns sampling only: ``sampling_timesteps`` below
``timesteps`` switches the library to DDIM (``ddim_eta`` 0 is deterministic given the initial noise).

What the library's Trainer does and this loop does too: Adam with the given betas, gradient clipping at
``max_grad_norm``, an EMA of the whole diffusion module, horizontal flips.  What it does that we leave
out: its in-training FID (off here; evaluation is its own stage), gradient accumulation, Accelerate.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from denoising_diffusion_pytorch import GaussianDiffusion, Unet
from torch import nn

from animegen.models.base import GenerativeModel, StepContext

LOSSES = {"l1": F.l1_loss, "l2": F.mse_loss}


def diffusion_loss(diffusion: GaussianDiffusion, images01: torch.Tensor, distance) -> torch.Tensor:
    """The library's training loss (``GaussianDiffusion.forward`` -> ``p_losses``: a uniform timestep per
    image, Gaussian noise, its objective's target, per-image mean weighted by ``loss_weight[t]``) with
    ``distance`` (``F.l1_loss`` or ``F.mse_loss``) instead of its fixed MSE.  With ``F.mse_loss`` it
    equals the library's own loss for the same random draws (tested).  No self-conditioning, no
    offset noise: the options this project leaves at the library's defaults (off)."""
    if diffusion.self_condition or diffusion.offset_noise_strength:
        raise ValueError("diffusion_loss supports neither self-conditioning nor offset noise")
    x_start = diffusion.normalize(images01)
    t = diffusion.random_times(x_start.shape[0])
    noise = torch.randn_like(x_start)
    x = diffusion.q_sample(x_start=x_start, t=t, noise=noise)
    out = diffusion.model(x, t, None)
    target = {"pred_noise": noise, "pred_x0": x_start}.get(diffusion.objective)
    if target is None:  # pred_v
        target = diffusion.predict_v(x_start, t, noise)
    loss = distance(out, target, reduction="none").flatten(1).mean(1)
    return (loss * diffusion.loss_weight[t]).mean()


def check_size(net: dict, image_size: int) -> None:
    factor = 2 ** (len(net["dim_mults"]) - 1)
    if image_size % factor:
        raise ValueError(
            f"the Unet with dim_mults {net['dim_mults']} needs an image size divisible by {factor}, got {image_size}"
        )


class Model(GenerativeModel):
    def __init__(self, net: dict, image_size: int, channels: int = 3):
        super().__init__(net, image_size, channels)
        check_size(net, image_size)
        unet = Unet(dim=net["dim"], dim_mults=tuple(net["dim_mults"]), channels=channels, dropout=net["dropout"])
        diffusion = GaussianDiffusion(
            unet,
            image_size=image_size,
            timesteps=net["timesteps"],
            sampling_timesteps=net["timesteps"],  # training ignores it; set per sampling run
            objective=net["objective"],
            beta_schedule=net["beta_schedule"],
            auto_normalize=True,  # takes and returns images in [0, 1]
        )
        self.networks = {"diffusion": diffusion}
        self.optimizers = {"diffusion": torch.optim.Adam(diffusion.parameters(), lr=net["lr"], betas=tuple(net["betas"]))}

    def ema_network(self) -> nn.Module:
        return self.networks["diffusion"]

    def train_step(self, batch, step: int, ctx: StepContext) -> dict[str, float]:
        diffusion = self.networks["diffusion"]
        with ctx.autocast():
            images01 = batch["image"].add(1).div(2)  # the loop's [-1, 1] -> the library's [0, 1]
            if self.cfg["loss"] == "l2":
                loss = diffusion(images01)
            else:
                loss = diffusion_loss(diffusion, images01, LOSSES[self.cfg["loss"]])
        ctx.backward_step(loss, self.optimizers["diffusion"], max_grad_norm=self.cfg["max_grad_norm"] or None)
        return {"loss": loss.item()}

    @torch.no_grad()
    def sample(self, net: nn.Module, n: int, device, sampling_timesteps: int = 0, ddim_eta: float = 0.0) -> torch.Tensor:
        steps = sampling_timesteps or net.num_timesteps
        if steps > net.num_timesteps:
            raise ValueError(f"sampling_timesteps {steps} exceeds the model's timesteps {net.num_timesteps}")
        # GaussianDiffusion reads these attributes at sampling time (set in its constructor otherwise).
        net.sampling_timesteps = steps
        net.is_ddim_sampling = steps < net.num_timesteps
        net.ddim_sampling_eta = ddim_eta
        was_training = net.training
        net.eval()
        try:
            return net.sample(batch_size=n).float().clamp(0, 1)
        finally:
            net.train(was_training)
