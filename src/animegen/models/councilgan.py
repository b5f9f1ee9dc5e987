"""Council GAN (Nizan & Tal, CVPR 2020) as its reference implementation trains it, for study B (face to
full body), with the switches study B's two settings need and an optional paired term.

A council of ``n_councils`` members translates domain a (the source, study B: anime faces) to domain b
(full-body characters).  Member ``i`` has:

* a generator ``G_i`` (MUNIT-style): a content encoder (conv 7x7 -> ``dim``, ``n_downsample`` convs
  4x4 stride 2, ``n_res`` residual blocks, InstanceNorm, zero padding), an MLP (3 linear layers of
  ``mlp_dim``) of a random style code z ~ N(0, I) of ``style_dim`` values, and a decoder: ``n_res``
  residual blocks, ``n_downsample`` x (nearest upsampling, two convs 3x3), two 1x1 convs and a 1x1 conv
  to ``3 k + k`` channels with tanh.  The last ``k = n_masks`` channels are masks
  ``m = (tanh(10 x) + 1) / 2`` and the output is blended k times:
  ``out = (1 - m_j) * out + m_j * rgb_j`` starting from the input image (:func:`blend`): where a mask
  is 0 the input is kept exactly.  ``norm: adain``: the decoder's residual blocks and upsampling convs
  use AdaIN whose scales and shifts the MLP makes from z (the reference); ``norm: in``: the MLP's
  output is tiled and concatenated to the content code and those layers use InstanceNorm (the
  reference's ``do_my_style``; study B's proposal).  The reference's upsampling convs stay AdaIN in that
  mode, which cannot run (no AdaIN parameters are made), so here they use InstanceNorm too.
* ``D_i``, an LSGAN multi-scale discriminator (``dis_scales`` scales, average-pooled by 2 between them;
  conv 4x4 stride 2 from ``dis_dim`` channels, doubled ``dis_layers - 1`` times, LeakyReLU 0.2, no norm,
  a 1x1 conv to one channel);
* ``DC_i``, the council discriminator: the same stack on ``cat(output, input)`` (6 channels), its first
  conv 3x3 stride 1 and two 1x1 convs at its end.  It learns to tell ``G_i``'s output (label 0) from the
  other members' outputs for the same input made with the style code scaled by ``style_alpha`` (0.7;
  label 1), and ``G_i`` learns to make it answer 1: to agree with the council.

One iteration, as the reference's ``train.py`` (``dis_update``, ``dis_council_update``,
``gen_update``), each member with its own three Adam optimisers (lr 1e-4, betas (0.5, 0.999), weight
decay 1e-4, the lr halved every ``lr_step`` iterations):

1. ``D_i``: ``gan_w * sum_scales [mean(D_i(G_i(a, z))^2) + mean((D_i(b) - 1)^2)]``;
2. ``DC_i`` (from iteration ``council_start`` on): against ``min(council_dis_iters, n_councils)``
   other members drawn without repetition (again once all were drawn), ``council_w / council_dis_iters
   * sum [mean(DC_i(G_i(a, z), a)^2) + mean((DC_i(G_j(a, alpha z), a) - 1)^2)]``;
3. ``G_i``: ``gan_w * GAN_i + council_w * w_i * Council_i + Focus_i (+ paired_weight * L1(G_i(a), b))``
   with ``GAN_i = sum_scales mean((D_i(G_i(a, z)) - 1)^2)``, ``Council_i = sum_scales
   mean((DC_i(G_i(a, z), a) - 1)^2)`` (from ``council_start`` on) and ``w_i`` the ratio of the means of
   the last ``loss_matching_history`` GAN and council losses (histories start as ones; 0 = no matching),
   and, after ``focus_start``, ``Focus_i = mask_zero_one_w * mean(1 / (|m - 0.5| + focus_epsilon)) +
   mask_total_w * mean(m)^2 + mask_tv_w * TV(m)`` (the reference's focus loss without its own loss
   matching).  The reference's anime config has every focus weight 0.

Only the a -> b direction is trained (the reference's anime config trains one direction too); its style
encoder and reconstruction losses, all weighted 0 there, are left out.  The paired term (0 = off) is
not in the reference: study B asked for face/full-body pairs, and with ``paired_weight > 0`` the
translator must train on pairs (``translators.<m>.paired``), so row i of ``b`` is row i of ``a``'s body.

Every member is a translator: :meth:`Model.member_networks` gives them all (the translate stage writes
each member's outputs); ``member`` names the one the loop keeps an EMA and snapshots of, which the
evaluation scores.  Translation draws each image's style code from a generator seeded by the image's
own pixels, so an image translates the same in any batch, and every member gets the same code.
Weights start as in the reference: the generators He-normal (``init kaiming``), the discriminators
N(0, 0.02).  Random numbers (style codes, which members a council discriminator compares) come from
torch's global generator, which the loop seeds and checkpoints, with the loss histories in the extra
state: a resumed run is the same computation as an uninterrupted one.
"""

from __future__ import annotations

import hashlib
from collections import deque

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from animegen.models.base import GenerativeModel, StepContext, lsgan


def blend(image: torch.Tensor, rgb: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
    """The reference decoder's output: starting from ``image``, ``(1 - m_j) * out + m_j * rgb_j`` for each
    of the ``k`` masks (``masks`` (B, k, H, W) in [0, 1], ``rgb`` (B, 3 k, H, W)); a zero mask keeps the
    input exactly."""
    out = image
    for j in range(masks.shape[1]):
        m = masks[:, j : j + 1]
        out = (1 - m) * out + m * rgb[:, 3 * j : 3 * j + 3]
    return out


def masks_from(logits: torch.Tensor) -> torch.Tensor:
    """The reference's mask of a decoder channel: ``(tanh(10 x) + 1) / 2``."""
    return (torch.tanh(10 * logits) + 1) / 2


class AdaIN(nn.Module):
    """Instance normalisation whose per-sample scale and shift are set by the generator before each
    decode (MUNIT's ``AdaptiveInstanceNorm2d``)."""

    def __init__(self, channels: int):
        super().__init__()
        self.channels = channels
        self.weight: torch.Tensor | None = None
        self.bias: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.weight is None or self.bias is None:
            raise RuntimeError("AdaIN parameters were not assigned before decoding")
        return F.instance_norm(x) * self.weight[:, :, None, None] + self.bias[:, :, None, None]


def _norm(kind: str, channels: int) -> nn.Module:
    return {"in": lambda: nn.InstanceNorm2d(channels), "adain": lambda: AdaIN(channels), "none": nn.Identity}[kind]()


class ConvBlock(nn.Sequential):
    """MUNIT's Conv2dBlock: pad, conv, norm, activation."""

    def __init__(self, cin: int, cout: int, k: int, stride: int, pad: int, norm: str = "none", act: str = "relu",
                 pad_type: str = "zero"):  # fmt: skip
        padding = nn.ReflectionPad2d(pad) if pad_type == "reflect" else nn.ZeroPad2d(pad)
        acts = {"relu": nn.ReLU(), "lrelu": nn.LeakyReLU(0.2), "tanh": nn.Tanh(), "none": nn.Identity()}
        super().__init__(padding, nn.Conv2d(cin, cout, k, stride), _norm(norm, cout), acts[act])


class ResBlock(nn.Module):
    def __init__(self, dim: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(ConvBlock(dim, dim, 3, 1, 1, norm), ConvBlock(dim, dim, 3, 1, 1, norm, act="none"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class Generator(nn.Module):
    """Content encoder, style MLP and masked decoder of one council member (see the module docstring)."""

    def __init__(self, dim: int, n_downsample: int, n_res: int, style_dim: int, mlp_dim: int, n_masks: int,
                 norm: str, channels: int = 3):  # fmt: skip
        super().__init__()
        self.style_dim, self.norm, self.n_masks, self.channels = style_dim, norm, n_masks, channels
        enc = [ConvBlock(channels, dim, 7, 1, 3, "in")]
        for _ in range(n_downsample):
            enc.append(ConvBlock(dim, 2 * dim, 4, 2, 1, "in"))
            dim *= 2
        self.encoder = nn.Sequential(*enc, *[ResBlock(dim, "in") for _ in range(n_res)])
        dec_norm = "adain" if norm == "adain" else "in"
        if norm == "in":
            dim += style_dim  # the style code is concatenated as channels
        dec: list[nn.Module] = [ResBlock(dim, dec_norm) for _ in range(n_res)]
        for _ in range(n_downsample):
            dec += [nn.Upsample(scale_factor=2), ConvBlock(dim, dim // 2, 3, 1, 1, dec_norm), ConvBlock(dim // 2, dim // 2, 3, 1, 1, dec_norm)]
            dim //= 2
        dec += [ConvBlock(dim, dim, 1, 1, 0), ConvBlock(dim, dim, 1, 1, 0),
                ConvBlock(dim, channels * n_masks + n_masks, 1, 1, 0, act="tanh")]  # fmt: skip
        self.decoder = nn.Sequential(*dec)
        self.adain = [m for m in self.decoder.modules() if isinstance(m, AdaIN)]
        out = 2 * sum(m.channels for m in self.adain) if norm == "adain" else style_dim
        self.mlp = nn.Sequential(nn.Linear(style_dim, mlp_dim), nn.ReLU(), nn.Linear(mlp_dim, mlp_dim), nn.ReLU(),
                                 nn.Linear(mlp_dim, out))  # fmt: skip

    def forward(self, x: torch.Tensor, z: torch.Tensor, return_masks: bool = False):
        """``x`` in [-1, 1] (B, 3, H, W) and style codes ``z`` (B, style_dim) -> the blended output (and masks)."""
        content = self.encoder(x)
        style = self.mlp(z)
        if self.norm == "adain":  # MUNIT's assign_adain_params: means first, then standard deviations
            for m in self.adain:
                m.bias, m.weight = style[:, : m.channels], style[:, m.channels : 2 * m.channels]
                style = style[:, 2 * m.channels :]
        else:
            content = torch.cat([content, style[:, :, None, None].expand(-1, -1, *content.shape[-2:])], 1)
        y = self.decoder(content)
        masks = masks_from(y[:, -self.n_masks :])
        out = blend(x, y[:, : self.channels * self.n_masks], masks)
        return (out, masks) if return_masks else out


class MsDiscriminator(nn.Module):
    """MUNIT's multi-scale discriminator (``MsImageDis``); ``council=True`` is Council GAN's
    ``MsImageDisCouncil`` (input ``cat(image, source)``, first conv 3x3 stride 1, two 1x1 convs at the end)."""

    def __init__(self, dim: int, n_layers: int, n_scales: int, council: bool = False, channels: int = 3):
        super().__init__()
        self.council = council
        self.downsample = nn.AvgPool2d(3, stride=2, padding=[1, 1], count_include_pad=False)
        self.nets = nn.ModuleList(self._net(dim, n_layers, council, channels) for _ in range(n_scales))

    @staticmethod
    def _net(dim: int, n_layers: int, council: bool, channels: int) -> nn.Sequential:
        if council:
            layers = [ConvBlock(2 * channels, dim, 3, 1, 1, act="lrelu", pad_type="reflect")]
        else:
            layers = [ConvBlock(channels, dim, 4, 2, 1, act="lrelu", pad_type="reflect")]
        for _ in range(n_layers - 1):
            layers.append(ConvBlock(dim, 2 * dim, 4, 2, 1, act="lrelu", pad_type="reflect"))
            dim *= 2
        if council:
            layers.append(nn.Conv2d(dim, dim, 1))
        layers.append(nn.Conv2d(dim, 1, 1))
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> list[torch.Tensor]:
        outs = []
        for net in self.nets:
            outs.append(net(torch.cat([x, source], 1) if self.council else x))
            x = self.downsample(x)
            if self.council:
                source = self.downsample(source)
        return outs


def multiscale_lsgan(outputs: list[torch.Tensor], real: bool) -> torch.Tensor:
    """The reference's LSGAN over scales: the sum of each scale's mean squared distance to 1 (real) or 0."""
    return sum(lsgan(o, real) for o in outputs)


def focus_terms(masks: torch.Tensor, epsilon: float) -> dict[str, torch.Tensor]:
    """The reference's focus-loss terms of masks in [0, 1]: ``zero_one`` pushes each value away from 0.5,
    ``total`` (the square of the mean) keeps the changed area small, ``tv`` keeps it in one piece."""
    tv = ((masks[:, :, 1:] - masks[:, :, :-1]).abs().sum() + (masks[..., 1:] - masks[..., :-1]).abs().sum()) / masks.numel()
    return {"zero_one": (1.0 / ((masks - 0.5).abs() + epsilon)).mean(), "total": masks.mean() ** 2, "tv": tv}


def init_generator(m: nn.Module) -> None:
    """The reference's ``init: kaiming`` (He normal, fan_in; zero biases)."""
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def init_discriminator(m: nn.Module) -> None:
    """The reference's ``gaussian`` init of the discriminators: N(0, 0.02), zero biases."""
    if isinstance(m, (nn.Conv2d, nn.Linear)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)


def min_image_size(net: dict) -> int:
    """The smallest image side both networks take: the generator halves ``n_downsample`` times; the
    discriminator's last scale must still be 2 px wide before its last stride-2 conv (reflect padding)."""
    return max(2 ** net["n_downsample"], 2 ** (net["dis_layers"] + net["dis_scales"] - 1))


def style_codes(x: torch.Tensor, style_dim: int) -> torch.Tensor:
    """One style code per image, from a generator seeded by the image's pixels (as uint8): the same image
    gets the same code in any batch, order or run."""
    pixels = x.detach().add(1).mul(127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
    codes = []
    for img in pixels:
        seed = int.from_bytes(hashlib.sha256(np.ascontiguousarray(img).tobytes()).digest()[:8], "little") & (2**63 - 1)
        codes.append(torch.randn(style_dim, generator=torch.Generator().manual_seed(seed)))
    return torch.stack(codes).to(x.device)


class Model(GenerativeModel):
    kind = "translation"

    def __init__(self, net: dict, image_size: int, channels: int = 3):
        super().__init__(net, image_size, channels)
        n = net["n_councils"]
        if n < 2:
            raise ValueError(f"the council loss compares members: n_councils must be at least 2, got {n}")
        if not 0 <= net["member"] < n:
            raise ValueError(f"member {net['member']} is not one of the {n} council members (0..{n - 1})")
        need = min_image_size(net)
        if image_size % 2 ** net["n_downsample"] or image_size < need:
            raise ValueError(f"Council GAN with n_downsample {net['n_downsample']}, dis_layers {net['dis_layers']} and "
                             f"dis_scales {net['dis_scales']} needs an image size of at least {need} px divisible by "
                             f"{2 ** net['n_downsample']}, got {image_size}")  # fmt: skip
        self.n = n
        betas, wd = tuple(net["betas"]), net["weight_decay"]
        for i in range(n):
            g = Generator(net["dim"], net["n_downsample"], net["n_res"], net["style_dim"], net["mlp_dim"], net["n_masks"], net["norm"], channels)
            d = MsDiscriminator(net["dis_dim"], net["dis_layers"], net["dis_scales"], channels=channels)
            dc = MsDiscriminator(net["dis_dim"], net["dis_layers"], net["dis_scales"], council=True, channels=channels)
            g.apply(init_generator)
            d.apply(init_discriminator)
            dc.apply(init_discriminator)
            self.networks.update({f"G{i}": g, f"D{i}": d, f"DC{i}": dc})
            for k in ("G", "D", "DC"):
                self.optimizers[f"{k}{i}"] = torch.optim.Adam(self.networks[f"{k}{i}"].parameters(), lr=net["lr"], betas=betas, weight_decay=wd)
        size = net["loss_matching_history"]
        self.hist_gan = [deque(np.ones(size).tolist(), maxlen=size) for _ in range(n)]
        self.hist_council = [deque(np.ones(size).tolist(), maxlen=size) for _ in range(n)]

    # --- the loop's protocol ------------------------------------------------------------------------
    def ema_network(self) -> nn.Module:
        return self.networks[f"G{self.cfg['member']}"]

    def member_networks(self) -> dict[str, nn.Module]:
        """Every member's generator, by member index (as a string)."""
        return {str(i): self.networks[f"G{i}"] for i in range(self.n)}

    def _set_lr(self, step: int) -> float:
        """The reference's ``lr_policy: step``: the lr times ``lr_gamma`` every ``lr_step`` iterations."""
        return self.set_lr(self.cfg["lr"] * self.cfg["lr_gamma"] ** (step // self.cfg["lr_step"]))

    def _z(self, batch: int, device: torch.device) -> torch.Tensor:
        return torch.randn(batch, self.cfg["style_dim"], device=device)

    def _others(self, i: int) -> list[int]:
        """``min(council_dis_iters, n)`` other members, without repetition until all were drawn (the reference)."""
        picks, pool = [], []
        for _ in range(min(self.cfg["council_dis_iters"], self.n)):
            if not pool:
                pool = [j for j in range(self.n) if j != i]
            picks.append(pool.pop(int(torch.randint(len(pool), (1,)))))
        return picks

    def train_step(self, batch, step: int, ctx: StepContext) -> dict[str, float]:
        c = self.cfg
        a, b = batch["a"], batch["b"]
        G = [self.networks[f"G{i}"] for i in range(self.n)]
        D = [self.networks[f"D{i}"] for i in range(self.n)]
        DC = [self.networks[f"DC{i}"] for i in range(self.n)]
        self._set_lr(step)
        council_on = c["council_w"] > 0 and step >= c["council_start"]
        logs: dict[str, list[float]] = {"d_gan": [], "d_council": [], "g_gan": [], "council": [], "w_match": [], "focus": [], "paired": []}
        # (1) the discriminators D_i on b and on G_i's outputs
        z = self._z(a.shape[0], a.device)
        for i in range(self.n):
            with torch.no_grad(), ctx.autocast():
                fake = G[i](a, z)
            with ctx.autocast():
                loss = c["gan_w"] * (multiscale_lsgan(D[i](fake), False) + multiscale_lsgan(D[i](b), True))
            ctx.backward_step(loss, self.optimizers[f"D{i}"])
            logs["d_gan"].append(float(loss.detach()))
        # (2) the council discriminators: own output (0) vs the others' with the style scaled by alpha (1)
        if council_on:
            z = self._z(a.shape[0], a.device)
            with torch.no_grad(), ctx.autocast():
                own = [G[i](a, z) for i in range(self.n)]
                less = [G[i](a, z * c["style_alpha"]) for i in range(self.n)]
            for i in range(self.n):
                with ctx.autocast():
                    total = sum(multiscale_lsgan(DC[i](own[i], a), False) + multiscale_lsgan(DC[i](less[j], a), True) for j in self._others(i))
                    loss = c["council_w"] * total / c["council_dis_iters"]
                ctx.backward_step(loss, self.optimizers[f"DC{i}"])
                logs["d_council"].append(float(loss.detach()))
        # (3) the generators, each with its own optimiser, the discriminators frozen
        z = self._z(a.shape[0], a.device)
        for net in D + DC:
            net.requires_grad_(False)
        focus_on = step > c["focus_start"] and (c["mask_zero_one_w"] > 0 or c["mask_total_w"] > 0 or c["mask_tv_w"] > 0)
        for i in range(self.n):
            with ctx.autocast():
                fake, masks = G[i](a, z, return_masks=True)
                gan = multiscale_lsgan(D[i](fake), True)
                loss = c["gan_w"] * gan
                self.hist_gan[i].append(float(gan.detach()))
                if council_on:
                    council = multiscale_lsgan(DC[i](fake, a), True)
                    self.hist_council[i].append(float(council.detach()))
                    w = float(np.mean(self.hist_gan[i]) / np.mean(self.hist_council[i])) if c["loss_matching_history"] else 1.0
                    loss = loss + c["council_w"] * w * council
                    logs["council"].append(float(council.detach()))
                    logs["w_match"].append(w)
                if focus_on:
                    f = focus_terms(masks, c["focus_epsilon"])
                    focus = c["mask_zero_one_w"] * f["zero_one"] + c["mask_total_w"] * f["total"] + c["mask_tv_w"] * f["tv"]
                    loss = loss + focus
                    logs["focus"].append(float(focus.detach()))
                if c["paired_weight"] > 0:
                    paired = F.l1_loss(fake, b)
                    loss = loss + c["paired_weight"] * paired
                    logs["paired"].append(float(paired.detach()))
            ctx.backward_step(loss, self.optimizers[f"G{i}"])
            logs["g_gan"].append(float(gan.detach()))
        for net in D + DC:
            net.requires_grad_(True)
        return {k: float(np.mean(v)) for k, v in logs.items() if v}

    @torch.no_grad()
    def translate(self, net: nn.Module, x: torch.Tensor, **sample_cfg) -> torch.Tensor:
        """Domain a in [-1, 1] to domain b in [0, 1] with one member's generator (each image's own style code)."""
        return net(x, style_codes(x, self.cfg["style_dim"])).add(1.0).div(2.0).clamp(0.0, 1.0)

    def extra_state(self) -> dict:
        return {"hist_gan": [list(h) for h in self.hist_gan], "hist_council": [list(h) for h in self.hist_council]}

    def load_extra_state(self, state: dict) -> None:
        size = self.cfg["loss_matching_history"]
        for name in ("hist_gan", "hist_council"):
            if name in state:
                setattr(self, name, [deque(h, maxlen=size) for h in state[name]])
