"""CycleGAN (Zhu et al. 2017) with study C's networks, and study C's CycleGAN + CAM.

Networks (study C; ``ngf = ndf = 64`` gives exactly its layer list):

* generator: reflect-pad 3, conv 7x7 3->ngf, IN, ReLU; conv 3x3 s2 ngf->2ngf and 2ngf->4ngf (IN,
  ReLU); ``n_blocks`` (4) residual blocks at 4ngf (reflect-pad, conv 3x3, IN, ReLU, reflect-pad, conv
  3x3, IN); transposed conv 3x3 s2 4ngf->2ngf->ngf (IN, ReLU); reflect-pad 3, conv 7x7 ngf->3, tanh.
  This is the reference implementation's ``ResnetGenerator`` with 4 blocks instead of 9.
* discriminator (70x70 PatchGAN): conv 4x4 s2 3->ndf (no norm), ndf->2ndf, 2ndf->4ndf (IN), conv 4x4
  s1 4ndf->8ndf (IN), each followed by LeakyReLU(0.2), then conv 3x3 8ndf->1 (study C; the reference
  implementation ends in a 4x4).

Training follows the reference implementation (junyanz/pytorch-CycleGAN-and-pix2pix) where the study
is silent: LSGAN losses both ways, ``lambda_cyc`` x L1 cycle consistency, an optional identity loss
(``lambda_identity`` x ``lambda_cyc`` x L1, 0 = off, study C's setting), N(0, 0.02) initialisation, one
Adam for both generators and one for both discriminators (lr 2e-4, betas (0.5, 0.999)), the
discriminator loss halved and fed from an image pool of 50 earlier fakes, and a learning rate that is
constant for ``lr_constant_steps`` and then decays linearly to zero over ``lr_decay_steps`` (the
reference's per-epoch rule, counted in steps).  Domain ``a`` is the source (study C: human face
photos), ``b`` the target (anime faces); ``G_A`` translates a to b and ``G_B`` b to a.  As in the
reference code, ``D_A`` judges ``G_A``'s domain (b) and ``D_B`` ``G_B``'s domain (a).

CycleGAN + CAM (``cam_generator``, ``cam_discriminator``): a frozen classifier's normalised Grad-CAM map
of an image (in [0, 1], computed by the stage's CAM function, see :meth:`Model.set_cam`) is resized to
each feature map and multiplied in.  In the generator it scales each residual block's residual branch
(``h + m * F(h)``): where the classifier does not look, the blocks pass features through unchanged, and
a map of ones is exactly plain CycleGAN with the same weights.  In the discriminator it multiplies the
features just before the last layer.  The map of a generator's input is the map of that input's own
domain class; the map of an image a discriminator judges, real or generated, is the map of the class of
the domain it judges.  Maps of generated images are computed from their detached values: no gradient
flows through a map into a generator or into the classifier.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn

from animegen.models.base import GenerativeModel, ResnetBlock, StepContext, lr_factor, lsgan

CamFn = Callable[[torch.Tensor, str], torch.Tensor]  # (images in [-1, 1], domain "a"|"b") -> (B, 1, H, W) in [0, 1]


def _resize_map(m: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    if m.shape[-2:] == like.shape[-2:]:
        return m
    return F.interpolate(m, size=like.shape[-2:], mode="bilinear", align_corners=False)


class Generator(nn.Module):
    def __init__(self, ngf: int = 64, n_blocks: int = 4, channels: int = 3):
        super().__init__()
        self.down = nn.Sequential(
            nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True),
            nn.Conv2d(ngf, ngf * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(ngf * 2), nn.ReLU(True),
            nn.Conv2d(ngf * 2, ngf * 4, 3, stride=2, padding=1), nn.InstanceNorm2d(ngf * 4), nn.ReLU(True),
        )  # fmt: skip
        self.blocks = nn.ModuleList(ResnetBlock(ngf * 4) for _ in range(n_blocks))
        self.up = nn.Sequential(
            nn.ConvTranspose2d(ngf * 4, ngf * 2, 3, stride=2, padding=1, output_padding=1),
            nn.InstanceNorm2d(ngf * 2), nn.ReLU(True),
            nn.ConvTranspose2d(ngf * 2, ngf, 3, stride=2, padding=1, output_padding=1),
            nn.InstanceNorm2d(ngf), nn.ReLU(True),
            nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor, cam: torch.Tensor | None = None) -> torch.Tensor:
        h = self.down(x)
        m = None if cam is None else _resize_map(cam, h)  # the blocks keep h's size
        for block in self.blocks:
            h = block(h, m)
        return self.up(h)


class Discriminator(nn.Module):
    def __init__(self, ndf: int = 64, channels: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 4, stride=2, padding=1), nn.InstanceNorm2d(ndf * 2), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, ndf * 4, 4, stride=2, padding=1), nn.InstanceNorm2d(ndf * 4), nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 4, ndf * 8, 4, stride=1, padding=1), nn.InstanceNorm2d(ndf * 8), nn.LeakyReLU(0.2, True),
        )  # fmt: skip
        self.last = nn.Conv2d(ndf * 8, 1, 3, stride=1, padding=1)

    def forward(self, x: torch.Tensor, cam: torch.Tensor | None = None) -> torch.Tensor:
        h = self.features(x)
        if cam is not None:
            h = h * _resize_map(cam, h)
        return self.last(h)


def init_weights(m: nn.Module) -> None:
    """The reference implementation's ``init_type normal``, gain 0.02 (InstanceNorm has no weights)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


class ImagePool:
    """The reference ``ImagePool``: up to ``size`` earlier fakes; once full, each new fake is, with
    probability 1/2, swapped for a stored one (which it replaces).  Draws from torch's global generator,
    which the loop seeds and checkpoints, so a resumed run draws the same as an uninterrupted one."""

    def __init__(self, size: int):
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for img in images.detach():
            img = img.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(img.clone())
                out.append(img)
            elif float(torch.rand(1)) > 0.5:
                k = int(torch.randint(0, self.size, (1,)))
                out.append(self.images[k].clone())
                self.images[k] = img.clone()
            else:
                out.append(img)
        return torch.cat(out, 0)

    def state(self) -> list[torch.Tensor]:
        return [t.cpu() for t in self.images]

    def load(self, images: list[torch.Tensor], device: torch.device) -> None:
        self.images = [t.to(device) for t in images]


class Model(GenerativeModel):
    kind = "translation"

    def __init__(self, net: dict, image_size: int, channels: int = 3):
        super().__init__(net, image_size, channels)
        if image_size % 4:
            raise ValueError(f"CycleGAN's generator halves the image twice: the size must be divisible by 4, got {image_size}")
        if image_size < 32:  # 3 halvings and a 4x4 conv: 16 px would leave InstanceNorm one pixel
            raise ValueError(f"the PatchGAN discriminator needs at least 32 px, got {image_size}")
        self.networks = {
            "G_A": Generator(net["ngf"], net["n_blocks"], channels), "G_B": Generator(net["ngf"], net["n_blocks"], channels),
            "D_A": Discriminator(net["ndf"], channels), "D_B": Discriminator(net["ndf"], channels),
        }  # fmt: skip
        for m in self.networks.values():
            m.apply(init_weights)
        betas = tuple(net["betas"])
        G_params = list(self.networks["G_A"].parameters()) + list(self.networks["G_B"].parameters())
        D_params = list(self.networks["D_A"].parameters()) + list(self.networks["D_B"].parameters())
        self.optimizers = {
            "G": torch.optim.Adam(G_params, lr=net["lr"], betas=betas),
            "D": torch.optim.Adam(D_params, lr=net["lr"], betas=betas),
        }
        self.pools = {"fake_a": ImagePool(net["pool_size"]), "fake_b": ImagePool(net["pool_size"])}
        self.cam_fn: CamFn | None = None

    # --- CAM ----------------------------------------------------------------------------------------
    @property
    def uses_cam(self) -> bool:
        return bool(self.cfg["cam_generator"] or self.cfg["cam_discriminator"])

    def set_cam(self, fn: CamFn | None) -> None:
        """The function giving the normalised Grad-CAM map of a batch for a domain's class (the stage
        builds it from the frozen classifier).  Required when ``cam_generator`` or ``cam_discriminator``."""
        self.cam_fn = fn

    def _cam(self, x: torch.Tensor, domain: str, side: str) -> torch.Tensor | None:
        if not self.cfg[f"cam_{side}"]:
            return None
        if self.cam_fn is None:
            raise RuntimeError(f"net.cam_{side} is on but no CAM function was set (Model.set_cam)")
        with torch.no_grad():
            return self.cam_fn(x.detach(), domain).detach()

    # --- the loop's protocol ------------------------------------------------------------------------
    def ema_network(self) -> nn.Module:
        return self.networks["G_A"]

    def _set_lr(self, step: int) -> float:
        return self.set_lr(self.cfg["lr"] * lr_factor(step, self.cfg["lr_constant_steps"], self.cfg["lr_decay_steps"]))

    def train_step(self, batch, step: int, ctx: StepContext) -> dict[str, float]:
        G_A, G_B, D_A, D_B = (self.networks[k] for k in ("G_A", "G_B", "D_A", "D_B"))
        real_a, real_b = batch["a"], batch["b"]
        self._set_lr(step)
        lam_cyc, lam_idt = self.cfg["lambda_cyc"], self.cfg["lambda_identity"]
        cam_ga, cam_gb = self._cam(real_a, "a", "generator"), self._cam(real_b, "b", "generator")
        # (1) generators, discriminators frozen
        for d in (D_A, D_B):
            d.requires_grad_(False)
        with ctx.autocast():
            fake_b = G_A(real_a, cam_ga)
            fake_a = G_B(real_b, cam_gb)
            rec_a = G_B(fake_b, self._cam(fake_b, "b", "generator"))
            rec_b = G_A(fake_a, self._cam(fake_a, "a", "generator"))
            loss_g_a = lsgan(D_A(fake_b, self._cam(fake_b, "b", "discriminator")), True)
            loss_g_b = lsgan(D_B(fake_a, self._cam(fake_a, "a", "discriminator")), True)
            loss_cyc = lam_cyc * (F.l1_loss(rec_a, real_a) + F.l1_loss(rec_b, real_b))
            loss_g = loss_g_a + loss_g_b + loss_cyc
            loss_idt = torch.zeros((), device=real_a.device)
            if lam_idt > 0:  # G_A should leave a domain-b image as it is, and G_B a domain-a one
                loss_idt = lam_cyc * lam_idt * (F.l1_loss(G_A(real_b, cam_gb), real_b) + F.l1_loss(G_B(real_a, cam_ga), real_a))
                loss_g = loss_g + loss_idt
        ctx.backward_step(loss_g, self.optimizers["G"])
        for d in (D_A, D_B):
            d.requires_grad_(True)
        # (2) discriminators, on real images and pooled earlier fakes
        pooled_b = self.pools["fake_b"].query(fake_b)
        pooled_a = self.pools["fake_a"].query(fake_a)
        with ctx.autocast():
            loss_d_a = 0.5 * (lsgan(D_A(real_b, self._cam(real_b, "b", "discriminator")), True)
                              + lsgan(D_A(pooled_b, self._cam(pooled_b, "b", "discriminator")), False))  # fmt: skip
            loss_d_b = 0.5 * (lsgan(D_B(real_a, self._cam(real_a, "a", "discriminator")), True)
                              + lsgan(D_B(pooled_a, self._cam(pooled_a, "a", "discriminator")), False))  # fmt: skip
        ctx.backward_step(loss_d_a + loss_d_b, self.optimizers["D"])
        return {
            "g_adv_a": float(loss_g_a.detach()), "g_adv_b": float(loss_g_b.detach()), "cycle": float(loss_cyc.detach()),
            "identity": float(loss_idt.detach()), "d_a": float(loss_d_a.detach()), "d_b": float(loss_d_b.detach()),
        }  # fmt: skip

    @torch.no_grad()
    def translate(self, net: nn.Module, x: torch.Tensor, **sample_cfg) -> torch.Tensor:
        """Domain a in [-1, 1] to domain b in [0, 1] with ``net`` (G_A or its EMA)."""
        out = net(x, self._cam(x, "a", "generator"))
        return out.add(1.0).div(2.0).clamp(0.0, 1.0)

    @torch.no_grad()
    def reconstruct(self, translated: torch.Tensor) -> torch.Tensor:
        """G_B of translated images (in [0, 1]) back to domain a, in [0, 1]: the cycle a -> b -> a."""
        y = translated.mul(2.0).sub(1.0)
        out = self.networks["G_B"](y, self._cam(y, "b", "generator"))
        return out.add(1.0).div(2.0).clamp(0.0, 1.0)

    def extra_state(self) -> dict:
        return {"pools": {k: p.state() for k, p in self.pools.items()}}

    def load_extra_state(self, state: dict) -> None:
        device = next(self.networks["G_A"].parameters()).device
        for k, images in state.get("pools", {}).items():
            self.pools[k].load(images, device)
