"""DCGAN (Radford et al. 2016) as in the PyTorch examples (``dcgan/main.py``), generalised to any
power-of-two size from 16 px: one transposed-convolution block per doubling in the generator and one
strided-convolution block per halving in the discriminator, so 64 px is exactly the examples' network
and 128 px adds one block to each side.

Kept from the examples: nz 100, ngf = ndf = 64 (our params' defaults), N(0, 0.02) initialisation (BN
weights N(1, 0.02)), BatchNorm everywhere except the generator's output and the discriminator's input
layer, ReLU / LeakyReLU(0.2), Adam(2e-4, betas (0.5, 0.999)), one discriminator step on a real and a
fake batch, then one generator step with the non-saturating loss.  One deviation: the discriminator
ends in a logit and the loss is ``BCEWithLogits`` instead of ``Sigmoid`` + ``BCELoss``, the same
function computed stably (and required under autocast).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from animegen.models.base import GenerativeModel, StepContext


def _doublings(image_size: int) -> int:
    n = int(math.log2(image_size)) if image_size > 0 else 0
    if image_size < 16 or 2**n != image_size:
        raise ValueError(f"DCGAN needs a power-of-two image size of at least 16 px, got {image_size}")
    return n - 2  # 4x4 -> image_size


class Generator(nn.Module):
    def __init__(self, image_size: int, nz: int, ngf: int, channels: int = 3):
        super().__init__()
        n = _doublings(image_size)
        ch = ngf * 2 ** (n - 1)
        layers = [nn.ConvTranspose2d(nz, ch, 4, 1, 0, bias=False), nn.BatchNorm2d(ch), nn.ReLU(True)]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch // 2), nn.ReLU(True)]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.main = nn.Sequential(*layers)
        self.nz = nz

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.main(z)


class Discriminator(nn.Module):
    def __init__(self, image_size: int, ndf: int, channels: int = 3):
        super().__init__()
        n = _doublings(image_size)
        ch = ndf
        layers = [nn.Conv2d(channels, ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(n - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, inplace=True)]
            ch *= 2
        layers += [nn.Conv2d(ch, 1, 4, 1, 0, bias=False)]
        self.main = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.main(x).view(-1)


def weights_init(m: nn.Module) -> None:
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class Model(GenerativeModel):
    def __init__(self, net: dict, image_size: int, channels: int = 3):
        super().__init__(net, image_size, channels)
        G = Generator(image_size, net["nz"], net["ngf"], channels)
        D = Discriminator(image_size, net["ndf"], channels)
        G.apply(weights_init)
        D.apply(weights_init)
        betas = tuple(net["betas"])
        self.networks = {"G": G, "D": D}
        self.optimizers = {
            "G": torch.optim.Adam(G.parameters(), lr=net["lr"], betas=betas),
            "D": torch.optim.Adam(D.parameters(), lr=net["lr"], betas=betas),
        }

    def ema_network(self) -> nn.Module:
        return self.networks["G"]

    def _z(self, n: int, device) -> torch.Tensor:
        return torch.randn(n, self.cfg["nz"], 1, 1, device=device)

    def train_step(self, batch, step: int, ctx: StepContext) -> dict[str, float]:
        G, D = self.networks["G"], self.networks["D"]
        real = batch["image"]
        b = real.shape[0]
        z = self._z(b, real.device)
        ones, zeros = torch.ones(b, device=real.device), torch.zeros(b, device=real.device)
        # (1) discriminator: maximise log D(x) + log(1 - D(G(z)))
        with ctx.autocast():
            fake = G(z)
            loss_d = F.binary_cross_entropy_with_logits(D(real), ones) + F.binary_cross_entropy_with_logits(
                D(fake.detach()), zeros
            )
        ctx.backward_step(loss_d, self.optimizers["D"])
        # (2) generator: maximise log D(G(z)) (non-saturating)
        with ctx.autocast():
            loss_g = F.binary_cross_entropy_with_logits(D(fake), ones)
        ctx.backward_step(loss_g, self.optimizers["G"])
        return {"loss_d": loss_d.item(), "loss_g": loss_g.item()}

    @torch.no_grad()
    def sample(self, net: nn.Module, n: int, device, **sample_cfg) -> torch.Tensor:
        was_training = net.training
        net.eval()  # BatchNorm with running statistics, as the examples' saved generator is used
        try:
            return net(self._z(n, device)).float().add(1).div(2).clamp(0, 1)
        finally:
            net.train(was_training)
