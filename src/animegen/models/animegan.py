"""AnimeGAN (Chen et al. 2020) as its reference implementation trains it, and study D's face-aware variant.

Networks (``ch = 64`` gives the reference's widths):

* generator ``v1`` (TachibanaYoshino/AnimeGAN, as ported to PyTorch by ptran1203/pytorch-animeGAN): conv
  blocks (3x3 conv, InstanceNorm, LeakyReLU 0.2) 3->ch->2ch, a down block (strided separable conv plus
  a separable conv of the bilinearly halved input), 2ch, separable 2ch->4ch, a down block, 4ch,
  ``n_res`` (8) inverted residual blocks (expansion 2), then 4ch->2ch, an up block (bilinear x2 and a
  separable conv), separable 2ch, 2ch, an up block, 2ch->ch, ch, conv 1x1 ch->3, tanh;
* generator ``v2`` (AnimeGANv2, bryandlee/animegan2-pytorch): the same plan with GroupNorm(1) (a
  LayerNorm, which the v2 project page says removes high-frequency artefacts), 4 inverted residual
  blocks and bilinear upsampling; ``ch = 64`` gives its 32 ... 256 channels;
* discriminator: conv 3x3 3->ch/2, LeakyReLU; ``n_dis - 1`` times (conv 3x3 s2 ->c*2, LeakyReLU, conv
  3x3 ->c*4, InstanceNorm, LeakyReLU); conv 3x3, InstanceNorm, LeakyReLU; conv 3x3 ->1; spectral norm on
  every conv (``spectral_norm``), as the reference (``sn True``, ``n_dis 3``).

Losses (``tools/ops.py`` of the reference, in PyTorch):

* adversarial, LSGAN: ``adv_weight`` x mean((D(G(p)) - 1)^2) for G; for D, ``d_adv_weight`` x
  (w_real mean((D(a) - 1)^2) + w_fake mean(D(G(p))^2) + w_gray mean(D(gray(a))^2) + w_smooth
  mean(D(gray(smooth(a)))^2)), with ``d_weights`` = (w_real, w_fake, w_gray, w_smooth) = (1, 1, 1, 0.1):
  grayscale anime and edge-smoothed anime are "fake" so that G learns colour and sharp edges;
* content: distance between backbone features of the photo and of G(photo) (VGG19 conv4_4 in the
  reference; MobileNetV2 in study D);
* style: distance between Gram matrices (X^T X / (H W C)) of the backbone features of the **grayscale**
  anime image and of G(photo);
* colour: distance between the photo and G(photo) in YUV (``tf.image.rgb_to_yuv`` of images in [0, 1]):
  L1 on Y and Huber on U and V in the reference;
* (v2 only, ``tv_weight``) total variation of G(photo).

Study D adds, on each photo's face region (a mask per photo, made once by the ``derive`` stage):

* skin colour: Huber between the YUV values of the photo and of G(photo) inside the face mask (the same
  region for both: G keeps the layout), the mean over the mask's pixels;
* face feature: Huber between backbone features (ResNet101 in the study) of the photo's face and of
  G(photo)'s face, each image multiplied by its mask before the backbone;

and replaces L1 by Huber (``huber_delta``, 1.0 the study's example) in the losses listed in ``huber``:
``[]`` is the reference's choice, ``[content, gram, color, skin, face]`` study D's.  A loss of weight 0
is not computed at all.

Weights start as ``init`` says (``he`` or ``normal``, see :func:`init_weights`).  Training: ``init_steps`` steps of G alone on ``content_weight`` x content with its own Adam
(``init_lr``, betas), then one D step and one G step per batch with Adam(``lr_g``) and Adam(``lr_d``).
Domain ``a`` is the photo (with its ``a_faces`` mask), ``b`` the anime image (with its ``b_smooth``
edge-smoothed copy); the batches come from :func:`animegen.train.image_banks`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from animegen.models.base import GenerativeModel, StepContext, lsgan

LOSSES = ("content", "gram", "color", "skin", "face")  # the losses whose distance ``huber`` switches

# tf.image.rgb_to_yuv's kernel: yuv = rgb @ _YUV (rows R, G, B; columns Y, U, V)
_YUV = torch.tensor([[0.299, -0.14714119, 0.61497538],
                     [0.587, -0.28886916, -0.51496512],
                     [0.114, 0.43601035, -0.10001026]])  # fmt: skip
_GRAY = (0.299, 0.587, 0.114)  # cv2.COLOR_BGR2GRAY's weights, as the reference's data loader


# ------------------------------------------------------------------------------------------ networks


def _conv_norm_lrelu(c_in: int, c_out: int, k: int = 3, stride: int = 1, groups: int = 1, norm: str = "instance") -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, k, stride, k // 2, groups=groups, bias=False)]
    layers.append(nn.InstanceNorm2d(c_out, affine=True) if norm == "instance" else nn.GroupNorm(1, c_out, affine=True))
    layers.append(nn.LeakyReLU(0.2, True))
    return nn.Sequential(*layers)


class SeparableConv(nn.Sequential):
    """Depthwise 3x3 (optionally strided) and pointwise 1x1 convolutions, each normalised and activated."""

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__(_conv_norm_lrelu(c_in, c_in, 3, stride, groups=c_in), _conv_norm_lrelu(c_in, c_out, 1))


class DownBlock(nn.Module):
    """A strided separable conv plus a separable conv of the bilinearly halved input (v1's ``DownConv``)."""

    def __init__(self, c: int):
        super().__init__()
        self.strided = SeparableConv(c, c, stride=2)
        self.halved = SeparableConv(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.strided(x) + self.halved(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False))


class UpBlock(nn.Module):
    """Bilinear x2 and a separable conv (v1's ``UpConv``)."""

    def __init__(self, c: int):
        super().__init__()
        self.conv = SeparableConv(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="bilinear", align_corners=True))


class InvertedResBlock(nn.Module):
    """MobileNetV2's block: 1x1 expand (x2), depthwise 3x3, 1x1 project, a skip when the widths agree."""

    def __init__(self, c_in: int, c_out: int, expansion: int = 2, norm: str = "instance"):
        super().__init__()
        mid = c_in * expansion
        norm_layer = nn.InstanceNorm2d(c_out, affine=True) if norm == "instance" else nn.GroupNorm(1, c_out, affine=True)
        self.layers = nn.Sequential(
            _conv_norm_lrelu(c_in, mid, 1, norm=norm), _conv_norm_lrelu(mid, mid, 3, groups=mid, norm=norm),
            nn.Conv2d(mid, c_out, 1, bias=False), norm_layer,
        )  # fmt: skip
        self.skip = c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layers(x)
        return x + out if self.skip else out


class GeneratorV1(nn.Module):
    def __init__(self, ch: int = 64, n_res: int = 8):
        super().__init__()
        c1, c2, c4 = ch, 2 * ch, 4 * ch
        self.encode = nn.Sequential(
            _conv_norm_lrelu(3, c1), _conv_norm_lrelu(c1, c2), DownBlock(c2), _conv_norm_lrelu(c2, c2),
            SeparableConv(c2, c4), DownBlock(c4), _conv_norm_lrelu(c4, c4),
        )  # fmt: skip
        self.res = nn.Sequential(*(InvertedResBlock(c4, c4) for _ in range(n_res)))
        self.decode = nn.Sequential(
            _conv_norm_lrelu(c4, c2), UpBlock(c2), SeparableConv(c2, c2), _conv_norm_lrelu(c2, c2), UpBlock(c2),
            _conv_norm_lrelu(c2, c1), _conv_norm_lrelu(c1, c1), nn.Conv2d(c1, 3, 1, bias=False), nn.Tanh(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decode(self.res(self.encode(x)))


class GeneratorV2(nn.Module):
    def __init__(self, ch: int = 64, n_res: int = 4):
        super().__init__()
        h, c1, c2, c4 = ch // 2, ch, 2 * ch, 4 * ch
        n = "layer"
        self.block_a = nn.Sequential(_conv_norm_lrelu(3, h, 7, norm=n), _conv_norm_lrelu(h, c1, 3, 2, norm=n), _conv_norm_lrelu(c1, c1, norm=n))
        self.block_b = nn.Sequential(_conv_norm_lrelu(c1, c2, 3, 2, norm=n), _conv_norm_lrelu(c2, c2, norm=n))
        res = [InvertedResBlock(c2, c4, norm=n)] + [InvertedResBlock(c4, c4, norm=n) for _ in range(n_res - 1)]
        self.block_c = nn.Sequential(_conv_norm_lrelu(c2, c2, norm=n), *res, _conv_norm_lrelu(c4, c2, norm=n))
        self.block_d = nn.Sequential(_conv_norm_lrelu(c2, c2, norm=n), _conv_norm_lrelu(c2, c2, norm=n))
        self.block_e = nn.Sequential(_conv_norm_lrelu(c2, c1, norm=n), _conv_norm_lrelu(c1, c1, norm=n), _conv_norm_lrelu(c1, h, 7, norm=n))
        self.out = nn.Sequential(nn.Conv2d(h, 3, 1, bias=False), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        half = self.block_a(x)
        out = self.block_c(self.block_b(half))
        out = self.block_d(F.interpolate(out, size=half.shape[-2:], mode="bilinear", align_corners=True))
        out = self.block_e(F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=True))
        return self.out(out)


class Discriminator(nn.Module):
    def __init__(self, ch: int = 64, n_dis: int = 3, sn: bool = True):
        super().__init__()
        wrap = spectral_norm if sn else (lambda m: m)
        c = ch // 2
        layers: list[nn.Module] = [wrap(nn.Conv2d(3, c, 3, 1, 1, bias=False)), nn.LeakyReLU(0.2, True)]
        c_in = c
        for _ in range(1, n_dis):
            layers += [wrap(nn.Conv2d(c_in, c * 2, 3, 2, 1, bias=False)), nn.LeakyReLU(0.2, True),
                       wrap(nn.Conv2d(c * 2, c * 4, 3, 1, 1, bias=False)), nn.InstanceNorm2d(c * 4, affine=True), nn.LeakyReLU(0.2, True)]  # fmt: skip
            c_in, c = c * 4, c * 2
        layers += [wrap(nn.Conv2d(c_in, c * 2, 3, 1, 1, bias=False)), nn.InstanceNorm2d(c * 2, affine=True), nn.LeakyReLU(0.2, True),
                   wrap(nn.Conv2d(c * 2, 1, 3, 1, 1, bias=False))]  # fmt: skip
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def init_weights(m: nn.Module, scheme: str = "he") -> None:
    """Every convolution: ``he`` (N(0, 2 / fan_in), TensorFlow's ``variance_scaling_initializer()`` that
    AnimeGANv2's generator uses) or ``normal`` (N(0, 0.02), the PyTorch port's).  With N(0, 0.02) the
    last 1x1 convolution starts near zero and a small generator spends hundreds of steps leaving grey."""
    if isinstance(m, nn.Conv2d):
        w = m.parametrizations.weight.original if hasattr(m, "parametrizations") else m.weight
        if scheme == "he":
            nn.init.kaiming_normal_(w, mode="fan_in", nonlinearity="relu")
        else:
            nn.init.normal_(w, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


# ------------------------------------------------------------------------------------------- losses


def rgb_to_yuv(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1], (B, 3, H, W), to YUV of their [0, 1] values (``tf.image.rgb_to_yuv``)."""
    rgb = (x + 1.0) / 2.0
    return torch.einsum("bchw,cd->bdhw", rgb, _YUV.to(rgb.device, rgb.dtype))


def grayscale(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] to their grayscale, repeated over 3 channels (the reference's ``anime_gray``)."""
    w = torch.tensor(_GRAY, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True).expand(-1, 3, -1, -1)


def gram(f: torch.Tensor) -> torch.Tensor:
    """Gram matrix per image, X^T X / (H W C), as the reference's ``gram``."""
    b, c, h, w = f.shape
    x = f.reshape(b, c, h * w)
    return x @ x.transpose(1, 2) / (c * h * w)


def distance(x: torch.Tensor, y: torch.Tensor, huber: bool, delta: float, weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean L1 or Huber (``delta``) distance; with ``weight`` (broadcastable 0/1 mask), the mean over its support."""
    d = F.huber_loss(x, y, reduction="none", delta=delta) if huber else (x - y).abs()
    if weight is None:
        return d.mean()
    w = weight.expand_as(d)
    return (d * w).sum() / w.sum().clamp_min(1.0)


def color_loss(photo: torch.Tensor, fake: torch.Tensor, huber_y: bool, delta: float) -> torch.Tensor:
    """The reference's colour loss: Y by L1 (Huber when switched), U and V by Huber, in YUV."""
    p, f = rgb_to_yuv(photo), rgb_to_yuv(fake)
    return (distance(p[:, :1], f[:, :1], huber_y, delta) + distance(p[:, 1:2], f[:, 1:2], True, delta)
            + distance(p[:, 2:], f[:, 2:], True, delta))  # fmt: skip


def skin_loss(photo: torch.Tensor, fake: torch.Tensor, mask: torch.Tensor, huber: bool, delta: float) -> torch.Tensor:
    """Study D's Skin Colour Loss: the distance of Y, U and V inside the face mask (B, 1, H, W), over its pixels."""
    p, f = rgb_to_yuv(photo), rgb_to_yuv(fake)
    return sum(distance(p[:, i : i + 1], f[:, i : i + 1], huber, delta, mask) for i in range(3))


def total_variation(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


# -------------------------------------------------------------------------------------------- model


class Model(GenerativeModel):
    kind = "translation"

    @staticmethod
    def companions(net: dict) -> list[str]:
        """What train_translator loads beside the two domains: the style images' edge-smoothed copies,
        and the photos' face masks when a face loss is on (``derive`` made both)."""
        return ["b_smooth"] + (["a_faces"] if net["skin_weight"] > 0 or net["face_weight"] > 0 else [])

    def __init__(self, net: dict, image_size: int, channels: int = 3):
        super().__init__(net, image_size, channels)
        if image_size % 4 or image_size < 16:
            raise ValueError(f"AnimeGAN's generator halves the image twice: the size must be >= 16 and divisible by 4, got {image_size}")
        unknown = sorted(set(net["huber"]) - set(LOSSES))
        if unknown:
            raise ValueError(f"huber: unknown loss {unknown[0]!r} (losses: {', '.join(LOSSES)})")
        G = GeneratorV1(net["ch"], net["n_res"]) if net["generator"] == "v1" else GeneratorV2(net["ch"], net["n_res"])
        self.networks = {"G": G, "D": Discriminator(net["ch"], net["n_dis"], net["spectral_norm"])}
        for m in self.networks.values():
            m.apply(lambda layer: init_weights(layer, net["init"]))
        betas = tuple(net["betas"])
        self.optimizers = {
            "G": torch.optim.Adam(G.parameters(), lr=net["lr_g"], betas=betas),
            "D": torch.optim.Adam(self.networks["D"].parameters(), lr=net["lr_d"], betas=betas),
            "G_init": torch.optim.Adam(G.parameters(), lr=net["init_lr"], betas=betas),
        }
        self.backbones: dict[str, nn.Module] = {}

    # --- backbones: attached by the stage (they load files; translate never needs them) ----------------
    def needed_backbones(self) -> list[str]:
        """The backbones the configured losses use: ``content`` (content and Gram losses), ``face``."""
        w = self.cfg
        return [k for k, on in (("content", w["content_weight"] > 0 or w["gram_weight"] > 0), ("face", w["face_weight"] > 0)) if on]

    def set_backbones(self, backbones: dict[str, nn.Module]) -> None:
        """``{"content": ..., "face": ...}`` frozen feature networks (:mod:`animegen.models.backbones`)."""
        self.backbones = backbones

    def _backbone(self, which: str) -> nn.Module:
        if which not in self.backbones:
            raise RuntimeError(f"the {which} loss is on but no {which} backbone was set (Model.set_backbones)")
        return self.backbones[which]

    def to(self, device: torch.device) -> "Model":
        super().to(device)
        for b in self.backbones.values():
            b.to(device)
        return self

    # --- the loop's protocol -------------------------------------------------------------------------
    def ema_network(self) -> nn.Module:
        return self.networks["G"]

    def _huber(self, loss: str) -> bool:
        return loss in self.cfg["huber"]

    def _content(self, photo: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        feats = self._backbone("content")
        with torch.no_grad():
            target = feats(photo)
        return distance(feats(fake), target, self._huber("content"), self.cfg["huber_delta"])

    def generator_losses(self, batch: dict[str, torch.Tensor], fake: torch.Tensor) -> dict[str, torch.Tensor]:
        """Each weighted term of G's loss after the initialisation phase (zero-weight terms are left out)."""
        c, delta = self.cfg, self.cfg["huber_delta"]
        photo, anime = batch["a"], batch["b"]
        out = {"adv": c["adv_weight"] * lsgan(self.networks["D"](fake), True)}
        need_feats = c["content_weight"] > 0 or c["gram_weight"] > 0
        if need_feats:
            feats = self._backbone("content")
            fake_f = feats(fake)
            with torch.no_grad():
                photo_f = feats(photo) if c["content_weight"] > 0 else None
                gray_f = feats(grayscale(anime)) if c["gram_weight"] > 0 else None
            if photo_f is not None:
                out["content"] = c["content_weight"] * distance(fake_f, photo_f, self._huber("content"), delta)
            if gray_f is not None:
                out["gram"] = c["gram_weight"] * distance(gram(fake_f), gram(gray_f), self._huber("gram"), delta)
        if c["color_weight"] > 0:
            out["color"] = c["color_weight"] * color_loss(photo, fake, self._huber("color"), delta)
        if c["tv_weight"] > 0:
            out["tv"] = c["tv_weight"] * total_variation(fake)
        if c["skin_weight"] > 0 or c["face_weight"] > 0:
            mask = batch["a_faces"][:, :1]  # the photo's face region; G keeps the layout, so it is G(photo)'s too
            if c["skin_weight"] > 0:
                out["skin"] = c["skin_weight"] * skin_loss(photo, fake, mask, self._huber("skin"), delta)
            if c["face_weight"] > 0:
                face = self._backbone("face")
                with torch.no_grad():
                    real_face = face(photo * mask + (mask - 1.0))  # outside the mask: black (-1), as the cutouts
                out["face"] = c["face_weight"] * distance(face(fake * mask + (mask - 1.0)), real_face, self._huber("face"), delta)
        return out

    def discriminator_loss(self, batch: dict[str, torch.Tensor], fake: torch.Tensor) -> torch.Tensor:
        D = self.networks["D"]
        w_real, w_fake, w_gray, w_smooth = self.cfg["d_weights"]
        loss = (w_real * lsgan(D(batch["b"]), True) + w_fake * lsgan(D(fake.detach()), False)
                + w_gray * lsgan(D(grayscale(batch["b"])), False) + w_smooth * lsgan(D(grayscale(batch["b_smooth"])), False))  # fmt: skip
        return self.cfg["d_adv_weight"] * loss

    def train_step(self, batch, step: int, ctx: StepContext) -> dict[str, float]:
        G, D = self.networks["G"], self.networks["D"]
        batch = {k: (v[:, :1] + 1.0) / 2.0 if k == "a_faces" else v for k, v in batch.items()}  # a mask in {0, 1}
        if step < self.cfg["init_steps"]:  # the initialisation phase: G learns to reconstruct content alone
            with ctx.autocast():
                fake = G(batch["a"])
                loss = self.cfg["content_weight"] * self._content(batch["a"], fake)
            ctx.backward_step(loss, self.optimizers["G_init"])
            return {"init_content": float(loss.detach())}
        # (1) discriminator
        with ctx.autocast():
            fake = G(batch["a"])
            loss_d = self.discriminator_loss(batch, fake)
        ctx.backward_step(loss_d, self.optimizers["D"])
        # (2) generator, the discriminator frozen
        D.requires_grad_(False)
        with ctx.autocast():
            terms = self.generator_losses(batch, fake)
            loss_g = sum(terms.values())
        ctx.backward_step(loss_g, self.optimizers["G"])
        D.requires_grad_(True)
        return {"d": float(loss_d.detach()), "g": float(loss_g.detach()), **{f"g_{k}": float(v.detach()) for k, v in terms.items()}}

    @torch.no_grad()
    def translate(self, net: nn.Module, x: torch.Tensor, **sample_cfg) -> torch.Tensor:
        """Photos in [-1, 1] to anime images in [0, 1] with ``net`` (G or its EMA)."""
        return net(x).add(1.0).div(2.0).clamp(0.0, 1.0)
