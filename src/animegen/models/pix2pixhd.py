"""pix2pixHD (Wang et al. 2018) without its local enhancer: a paired conditional GAN, face -> full body.

Networks (NVIDIA/pix2pixHD's ``GlobalGenerator`` and ``MultiscaleDiscriminator`` as its default options
build them, ``--norm instance``: InstanceNorm without affine parameters):

* generator: reflect-pad 3, conv 7x7 3->ngf, IN, ReLU; ``n_downsample`` (4) convs 3x3 s2 p1, each
  doubling the channels (IN, ReLU); ``n_blocks`` (9) residual blocks at ``ngf * 2**n_downsample``
  (reflect-pad 1, conv 3x3, IN, ReLU, reflect-pad 1, conv 3x3, IN; ``x + branch``); ``n_downsample``
  transposed convs 3x3 s2 p1 (output padding 1), each halving the channels (IN, ReLU); reflect-pad 3,
  conv 7x7 ngf->3, tanh.  ``ngf = 64`` gives 182,443,267 parameters.
* discriminator: ``num_d`` (2) conditional PatchGANs (``NLayerDiscriminator``) on ``cat(a, b)`` (6
  channels): conv 4x4 s2 p2 6->ndf, LeakyReLU(0.2); ``n_layers_d - 1`` (2) convs 4x4 s2 p2 doubling
  the channels up to 512 (IN, LeakyReLU); conv 4x4 s1 p2 (doubling, up to 512; IN, LeakyReLU); conv 4x4
  s1 p2 ->1, no sigmoid (LSGAN).  Each returns the output of every one of its ``n_layers_d + 2`` layers
  (the reference's ``getIntermFeat``), for feature matching.  Scale ``i`` sees the input average-pooled
  ``i`` times (3x3, stride 2, padding 1, ``count_include_pad=False``); scale 0 is the full resolution.
  (The reference stores the full-resolution PatchGAN as its *last* ``scale`` module; here it is
  ``scales[0]``: the same networks, other parameter names.)

Training follows the reference's ``Pix2PixHDModel`` with its defaults (LSGAN, no image pool):

* D: ``0.5 * (LSGAN(D(a, G(a)), 0) + LSGAN(D(a, b), 1))``, each summed over the scales on each scale's
  last output;
* G: ``LSGAN(D(a, G(a)), 1)`` summed over the scales, plus feature matching: over scales ``i`` and all
  layers ``j`` but the last, ``lambda_feat / num_d * 4 / (n_layers_d + 1) * L1(D_ij(a, G(a)), D_ij(a, b))``
  with the real features detached (``lambda_feat`` 10); plus, optionally, pix2pix's
  ``l1_weight * L1(G(a), b)`` (pix2pix uses 100; pix2pixHD has no such term: 0 = off).
* The reference's VGG19 perceptual loss (``lambda_feat * sum_k w_k L1(VGG_k(G(a)), VGG_k(b))``) is not
  implemented: there are no ImageNet VGG19 weights offline.  The reference's instance-map and encoded
  feature inputs are not either: the input is the face image alone.
* One Adam for G and one for D (lr 2e-4, betas (0.5, 0.999)); the learning rate is constant for
  ``lr_constant_steps`` and then decays linearly to 0 over ``lr_decay_steps`` (the reference's
  ``niter`` + ``niter_decay`` epochs, counted in steps; :func:`animegen.models.base.lr_factor`).
* Initialisation: the reference's ``weights_init``: conv and transposed-conv weights N(0, 0.02) (their
  biases keep PyTorch's default), norm weights N(1, 0.02) and biases 0 (InstanceNorm here has none).

One step: the discriminator's outputs on the real pair are computed once and serve both losses, as in
the reference (detached in feature matching); (1) the generator steps with D frozen, (2) D steps on the
real pair and the detached fake.  Batches must be paired (the registry's ``needs_pairs``; ``translators.<m>.paired``): row i of ``b`` is the
full body of the face in row i of ``a``, flipped alike.  Domain ``a`` is the input, ``b`` the target.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from animegen.models.base import GenerativeModel, ResnetBlock, StepContext, lr_factor, lsgan

Features = list[list[torch.Tensor]]  # per scale, every layer's output of the PatchGAN (the last is the verdict)


class GlobalGenerator(nn.Module):
    """pix2pixHD's global generator: ``n_downsample`` halvings, ``n_blocks`` residual blocks, as many doublings."""

    def __init__(self, ngf: int = 64, n_downsample: int = 4, n_blocks: int = 9, channels: int = 3):
        super().__init__()
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(channels, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True)]
        for i in range(n_downsample):
            c = ngf * 2**i
            layers += [nn.Conv2d(c, c * 2, 3, stride=2, padding=1), nn.InstanceNorm2d(c * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 2**n_downsample) for _ in range(n_blocks)]
        for i in range(n_downsample):
            c = ngf * 2 ** (n_downsample - i)
            layers += [nn.ConvTranspose2d(c, c // 2, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(c // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


class NLayerDiscriminator(nn.Module):
    """One scale: a PatchGAN returning every layer's output (``n_layers + 2`` of them; the last is the verdict)."""

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3):
        super().__init__()
        kw, padw = 4, 2  # the reference's padw = ceil((kw - 1) / 2)
        seq: list[list[nn.Module]] = [[nn.Conv2d(in_channels, ndf, kw, stride=2, padding=padw), nn.LeakyReLU(0.2, True)]]
        nf = ndf
        for _ in range(1, n_layers):
            nf_prev, nf = nf, min(nf * 2, 512)
            seq.append([nn.Conv2d(nf_prev, nf, kw, stride=2, padding=padw), nn.InstanceNorm2d(nf), nn.LeakyReLU(0.2, True)])
        nf_prev, nf = nf, min(nf * 2, 512)
        seq.append([nn.Conv2d(nf_prev, nf, kw, stride=1, padding=padw), nn.InstanceNorm2d(nf), nn.LeakyReLU(0.2, True)])
        seq.append([nn.Conv2d(nf, 1, kw, stride=1, padding=padw)])  # no sigmoid: LSGAN
        self.layers = nn.ModuleList(nn.Sequential(*s) for s in seq)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        out = []
        for layer in self.layers:
            x = layer(x)
            out.append(x)
        return out


class MultiscaleDiscriminator(nn.Module):
    """``num_d`` PatchGANs; ``scales[i]`` judges the input average-pooled ``i`` times (0: full resolution)."""

    def __init__(self, in_channels: int = 6, ndf: int = 64, n_layers: int = 3, num_d: int = 2):
        super().__init__()
        self.n_layers = n_layers
        self.scales = nn.ModuleList(NLayerDiscriminator(in_channels, ndf, n_layers) for _ in range(num_d))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)

    def forward(self, x: torch.Tensor) -> Features:
        result = []
        for i, d in enumerate(self.scales):
            if i:
                x = self.downsample(x)
            result.append(d(x))
        return result


def init_weights(m: nn.Module) -> None:
    """The reference's ``weights_init``: conv weights N(0, 0.02) (biases left as PyTorch sets them);
    norm layers with weights N(1, 0.02), biases 0 (InstanceNorm with ``affine=False`` has none)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d)) and m.weight is not None:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def gan_loss(pred: Features, real: bool) -> torch.Tensor:
    """The reference's multi-scale ``GANLoss`` (LSGAN): each scale's last output against 1 or 0, summed."""
    return sum((lsgan(scale[-1], real) for scale in pred), torch.zeros((), device=pred[0][-1].device))


def feature_matching(pred_fake: Features, pred_real: Features, lambda_feat: float) -> torch.Tensor:
    """The reference's discriminator feature-matching loss: over scales i and layers j but the last,
    ``lambda_feat * (1 / num_d) * (4 / (n_layers + 1)) * L1(fake_ij, real_ij.detach())``
    (``n_layers + 1`` = the number of intermediate outputs of a scale)."""
    loss = torch.zeros((), device=pred_fake[0][-1].device)
    d_weight = 1.0 / len(pred_fake)
    for fake, real in zip(pred_fake, pred_real):
        feat_weight = 4.0 / (len(fake) - 1)
        for f, r in zip(fake[:-1], real[:-1]):
            loss = loss + d_weight * feat_weight * F.l1_loss(f, r.detach()) * lambda_feat
    return loss


def check_size(net: dict, image_size: int) -> None:
    """Refuse sizes the networks cannot take (ValueError)."""
    n_down, n_layers, num_d = net["n_downsample"], net["n_layers_d"], net["num_d"]
    if image_size % 2**n_down:
        raise ValueError(f"pix2pixHD's generator halves the image n_downsample = {n_down} times: "
                         f"the size must be divisible by {2**n_down}, got {image_size}")  # fmt: skip
    if image_size < 2 ** (n_down + 1):  # reflect-padding by 1 needs 2 px; InstanceNorm of 1 px is undefined
        raise ValueError(f"pix2pixHD's residual blocks work at 1/{2**n_down} of the size and need at least 2 px there "
                         f"(reflect padding, InstanceNorm): the size must be at least {2 ** (n_down + 1)}, got {image_size}")  # fmt: skip
    coarsest = image_size
    for _ in range(num_d - 1):
        coarsest = (coarsest + 1) // 2  # the 3x3 stride-2 average pool with padding 1: ceil(s / 2)
    if coarsest < 2**n_layers:
        raise ValueError(f"the discriminator's coarsest scale (num_d = {num_d}) sees {coarsest} px, fewer than "
                         f"2**n_layers_d = {2**n_layers} px: its {n_layers} stride-2 convs would be left with less "
                         f"than one pixel of image per output and judge padding; use a larger size, a smaller "
                         f"num_d or n_layers_d (the size must be at least {2 ** (n_layers + num_d - 1)})")  # fmt: skip


class Model(GenerativeModel):
    kind = "translation"

    def __init__(self, net: dict, image_size: int, channels: int = 3):
        super().__init__(net, image_size, channels)
        check_size(net, image_size)
        self.networks = {
            "G": GlobalGenerator(net["ngf"], net["n_downsample"], net["n_blocks"], channels),
            "D": MultiscaleDiscriminator(2 * channels, net["ndf"], net["n_layers_d"], net["num_d"]),
        }
        for m in self.networks.values():
            m.apply(init_weights)
        betas = tuple(net["betas"])
        self.optimizers = {k: torch.optim.Adam(m.parameters(), lr=net["lr"], betas=betas) for k, m in self.networks.items()}

    # --- the loop's protocol ------------------------------------------------------------------------
    def ema_network(self) -> nn.Module:
        return self.networks["G"]

    def _set_lr(self, step: int) -> float:
        return self.set_lr(self.cfg["lr"] * lr_factor(step, self.cfg["lr_constant_steps"], self.cfg["lr_decay_steps"]))

    def generator_losses(self, real_a: torch.Tensor, real_b: torch.Tensor, fake_b: torch.Tensor, pred_real: Features) -> dict[str, torch.Tensor]:
        """G's loss terms, weighted: ``g_gan``, ``g_feat`` (0 when ``lambda_feat`` is 0), ``g_l1`` (0 when ``l1_weight`` is)."""
        pred_fake = self.networks["D"](torch.cat((real_a, fake_b), 1))
        zero = torch.zeros((), device=fake_b.device)
        lam_feat, l1_weight = self.cfg["lambda_feat"], self.cfg["l1_weight"]
        return {
            "g_gan": gan_loss(pred_fake, True),
            "g_feat": feature_matching(pred_fake, pred_real, lam_feat) if lam_feat > 0 else zero,
            "g_l1": l1_weight * F.l1_loss(fake_b, real_b) if l1_weight > 0 else zero,
        }

    def train_step(self, batch, step: int, ctx: StepContext) -> dict[str, float]:
        G, D = self.networks["G"], self.networks["D"]
        real_a, real_b = batch["a"], batch["b"]
        self._set_lr(step)
        with ctx.autocast():  # D on the real pair, once: feature matching's target (detached) and D's real loss
            pred_real = D(torch.cat((real_a, real_b), 1))
        # (1) the generator, discriminator frozen
        D.requires_grad_(False)
        with ctx.autocast():
            fake_b = G(real_a)
            g = self.generator_losses(real_a, real_b, fake_b, pred_real)
            loss_g = g["g_gan"] + g["g_feat"] + g["g_l1"]
        ctx.backward_step(loss_g, self.optimizers["G"])
        D.requires_grad_(True)
        # (2) the discriminator, on the real pair and the detached fake (no image pool)
        with ctx.autocast():
            d_fake = gan_loss(D(torch.cat((real_a, fake_b.detach()), 1)), False)
            d_real = gan_loss(pred_real, True)
            loss_d = 0.5 * (d_fake + d_real)
        ctx.backward_step(loss_d, self.optimizers["D"])
        return {**{k: float(v.detach()) for k, v in g.items()}, "d_real": float(d_real.detach()), "d_fake": float(d_fake.detach())}

    @torch.no_grad()
    def translate(self, net: nn.Module, x: torch.Tensor, **sample_cfg) -> torch.Tensor:
        """Domain a (faces) in [-1, 1] to domain b (full bodies) in [0, 1] with ``net`` (G or its EMA)."""
        return net(x).add(1.0).div(2.0).clamp(0.0, 1.0)
