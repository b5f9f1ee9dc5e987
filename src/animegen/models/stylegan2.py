"""StyleGAN2 (Karras et al. 2020) in pure PyTorch, following NVlabs' ``stylegan2-ada-pytorch``.

What is implemented, top to bottom (names follow ``training/networks.py`` and ``training/loss.py``):

* **Resampling ops**: ``upfirdn2d`` (upsample by zero insertion, pad, FIR filter, downsample) with the
  separable low-pass filter ``[1, 3, 3, 1]`` as a depthwise ``conv2d``, and ``conv2d_resample``
  (strided conv after FIR for downsampling, transposed strided conv before FIR for upsampling), with
  NVlabs' padding arithmetic, so every layer sees exactly the official geometry.
* **Equalised learning rate everywhere**: weights initialised from N(0, 1) and scaled at runtime by
  ``1/sqrt(fan_in)``; fully-connected layers additionally carry a learning-rate multiplier
  (weights initialised as N(0, 1/lr_mult^2), runtime gain ``lr_mult/sqrt(fan_in)``, bias gain ``lr_mult``)
  which the mapping network uses (``mapping_lr_mult``, officially 0.01).  Bias + leaky ReLU(0.2) with
  gain sqrt(2) ("bias_act").
* **Mapping network**: z normalised by its second moment, ``mapping_layers`` FC + lrelu layers of
  width ``w_dim``, broadcast to ``num_ws`` styles; a ``w_avg`` buffer tracked during training
  (beta 0.995, on every training-mode pass, as officially) for the truncation trick.
* **Synthesis network** ("skip" architecture): learned 4x4 constant, per resolution a 2x-upsampling
  modulated 3x3 conv and a modulated 3x3 conv, per-pixel noise with a learned strength (initialised at
  0), bias + lrelu; toRGB (modulated 1x1 conv without demodulation) at every resolution, the RGB
  image upsampled with the FIR filter and summed.  ``modulated_conv2d`` implements modulation and
  weight demodulation both ways NVlabs does: fused (per-sample weights, one grouped convolution; used
  in eval mode, i.e. for sampling) and non-fused (scale the activations before and after a shared-
  weight convolution; used in training mode).  Both compute the same function.
* **Discriminator** ("resnet" architecture): fromRGB at the top resolution, per resolution two 3x3
  convs (the second one downsampling, FIR then stride 2) plus a 1x1 downsampling skip, the sum scaled
  by 1/sqrt(2); epilogue at 4x4 with the minibatch standard deviation layer (1 feature), a 3x3 conv,
  an FC layer and the output FC.  Channels at resolution r: ``min(channel_base // r, channel_max)``.
* **Loss** (``StyleGAN2Loss`` with lazy regularisation, phases in NVlabs' order, each phase its own
  optimiser step): Gmain (non-saturating logistic loss), Greg (path-length regularisation every
  ``pl_every`` steps, batch shrunk by 2, penalty scaled by ``pl_every``, running mean with ``pl_decay``),
  Dmain (logistic loss on fakes and reals, separate D passes so minibatch-std groups never mix them),
  Dreg (R1 on reals every ``r1_every`` steps, ``r1_gamma/2 * |grad|^2`` scaled by ``r1_every``).
  Style mixing with probability ``style_mixing`` in every generator pass of training.  Adam with the
  lazy-regularisation correction ``c = every/(every+1)``: lr*c, betas**c.
* **DiffAugment** (Zhao et al. 2020, port of mit-han-lab's ``DiffAugment_pytorch.py``): ``color``
  (brightness +-0.5, saturation x[0, 2], contrast x[0.5, 1.5]), ``translation`` (+-1/8 of the side,
  zero padding), ``cutout`` (a square of half the side, zeros), applied to every image the
  discriminator sees (reals and fakes, D and G phases, and the reals of R1, whose gradient is taken
  with respect to the un-augmented reals, as in data-efficient-gans).

Deviations from NVlabs' stylegan2-ada-pytorch (and why):

* No custom CUDA/C++ ops: ``upfirdn2d``, ``bias_act``, ``fma`` and ``conv2d_gradfix`` are their
  reference (pure torch) formulations, so the model runs on the CPU.  ``no_weight_gradients`` (a
  speed-up of the R1/PL double backward) is omitted; the maths is unchanged.
* Unconditional only (no class labels, ``c_dim = 0``), no ADA pipeline (DiffAugment instead), no
  per-block fp16 or ``conv_clamp``: mixed precision, when wanted, comes from the loop's autocast around
  the main (non-regularisation) forward passes; NVlabs' fp16 pre-normalisation of weights and styles
  in ``modulated_conv2d`` is kept for that case, and the mapping network, the minibatch-std statistics
  and the losses are computed in fp32.  R1 and path-length gradients are always computed in fp32.
* Minibatch std: NVlabs requires the batch to be divisible by the group size; here the group is the
  largest divisor of the batch not above ``mbstd_group`` (batch 3, group 4 -> groups of 3; batch 1 ->
  group 1, whose std is the constant sqrt(1e-8), which is what NVlabs gives for batch 1).
* Path-length batch: ``max(1, B // 2)`` so that batch 1 works (NVlabs: ``B // pl_batch_shrink``).
* Style mixing draws the second latent only when mixing happens (NVlabs always draws it and throws
  it away when not mixing): same distribution, different random stream.
* NVlabs replaces NaN/Inf gradients by finite values before each optimiser step; the loop's
  ``StepContext.backward_step`` does backward and step in one call, so that is not done here.
* ``pl_mean`` is a buffer of the generator (``G.pl_mean``) rather than an attribute of the loss object,
  so checkpoints carry it with the networks; the EMA copy of G carries it too, unused.
* The lazy-regularisation Adam correction uses ``pl_every`` for G and ``r1_every`` for D even when
  the regulariser is switched off (``pl_weight = 0`` / ``r1_gamma = 0``), as NVlabs' ``train.py`` keeps
  ``G_reg_interval = 4`` for its CIFAR config which disables path-length regularisation.

``train_step`` returns ``loss_g``, ``loss_d``, ``score_real`` and ``score_fake`` (mean D logits) on every
step; ``r1`` (mean R1 penalty ``|grad D(x)|^2``, before ``gamma/2``) only on steps that ran R1 (``step %
r1_every == 0`` and ``r1_gamma > 0``), and ``pl`` (mean path-length penalty) and ``pl_mean`` only on steps
that ran path-length regularisation (``step % pl_every == 0`` and ``pl_weight > 0``).  ``step`` is
counted from 0, as NVlabs' ``batch_idx``, so step 0 runs every enabled regulariser and the first log
row has every key.  All randomness comes from torch's global generator.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from animegen.models.base import GenerativeModel, StepContext

LRELU_SLOPE = 0.2
LRELU_GAIN = math.sqrt(2.0)  # NVlabs' def_gain for lrelu
RESAMPLE_FILTER = (1, 3, 3, 1)
W_AVG_BETA = 0.995
PL_BATCH_SHRINK = 2
MBSTD_CHANNELS = 1
MIN_SIZE, MAX_SIZE = 8, 1024


# =====================================================================================================
# Low-level ops (pure-torch versions of NVlabs' torch_utils.ops)
# =====================================================================================================


def setup_filter(taps=RESAMPLE_FILTER) -> torch.Tensor:
    """The separable 2-D FIR filter ``outer(taps, taps)`` normalised to sum 1 (``upfirdn2d.setup_filter``)."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def upfirdn2d(x: torch.Tensor, f: torch.Tensor, up: int = 1, down: int = 1, pad=(0, 0, 0, 0), gain: float = 1.0):
    """Upsample by zero insertion, pad ``(x0, x1, y0, y1)``, filter with ``f`` (depthwise), downsample.

    NVlabs' ``_upfirdn2d_ref`` for non-negative padding; ``f`` is symmetric so flipping does not matter.
    """
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, [0, up - 1, 0, 0, 0, up - 1])
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, list(pad))
    weight = (f * gain).to(x.dtype)[None, None].repeat(c, 1, 1, 1)
    return F.conv2d(x, weight, groups=c, stride=down)


def upsample2d(x: torch.Tensor, f: torch.Tensor, up: int = 2) -> torch.Tensor:
    """2x FIR upsampling of an image (``upfirdn2d.upsample2d``): gain ``up**2`` keeps a constant constant."""
    fw = f.shape[-1]
    p0, p1 = (fw + up - 1) // 2, (fw - up) // 2
    return upfirdn2d(x, f, up=up, pad=(p0, p1, p0, p1), gain=up**2)


def downsample2d(x: torch.Tensor, f: torch.Tensor, down: int = 2) -> torch.Tensor:
    """2x FIR downsampling (``upfirdn2d.downsample2d``)."""
    fw = f.shape[-1]
    p0, p1 = (fw - down + 1) // 2, (fw - down) // 2
    return upfirdn2d(x, f, down=down, pad=(p0, p1, p0, p1))


def conv2d_resample(x, w, f=None, up: int = 1, down: int = 1, padding: int = 0, groups: int = 1):
    """Convolution with optional 2x up- or downsampling, NVlabs' ``conv2d_resample`` (fast paths).

    Down: FIR-filter (padded) then strided conv (1x1 kernels: FIR-downsample then conv).  Up: transposed
    strided conv then FIR filter with gain ``up**2``.  ``w`` is ``[out, in/groups, k, k]`` (correlation).
    """
    out_ch, in_per_group, kh, kw = w.shape
    if up == 1 and down == 1:
        return F.conv2d(x, w, padding=padding, groups=groups)
    fw = f.shape[-1]
    if up == 1:  # downsampling
        p0, p1 = padding + (fw - down + 1) // 2, padding + (fw - down) // 2
        if kw == 1 and kh == 1:
            return F.conv2d(upfirdn2d(x, f, down=down, pad=(p0, p1, p0, p1)), w, groups=groups)
        return F.conv2d(upfirdn2d(x, f, pad=(p0, p1, p0, p1)), w, stride=down, groups=groups)
    if down != 1:
        raise NotImplementedError("up- and downsampling in one convolution is not needed by StyleGAN2")
    p0 = padding + (fw + up - 1) // 2 - (kw - 1)
    p1 = padding + (fw - up) // 2 - (kw - up)
    pt = max(min(-p0, -p1), 0)
    assert p0 + pt >= 0 and p1 + pt >= 0, "unsupported kernel/padding combination"
    if groups == 1:
        w = w.transpose(0, 1)
    else:
        w = w.reshape(groups, out_ch // groups, in_per_group, kh, kw).transpose(1, 2)
        w = w.reshape(groups * in_per_group, out_ch // groups, kh, kw)
    x = F.conv_transpose2d(x, w, stride=up, padding=pt, groups=groups)
    return upfirdn2d(x, f, pad=(p0 + pt, p1 + pt, p0 + pt, p1 + pt), gain=up**2)


def bias_act(x: torch.Tensor, b: torch.Tensor | None, lrelu: bool, gain: float = 1.0) -> torch.Tensor:
    """Add a per-channel bias, apply leaky ReLU (0.2, gain sqrt(2)) or nothing, times ``gain``."""
    if b is not None:
        x = x + b.to(x.dtype).reshape(1, -1, *([1] * (x.ndim - 2)))
    if lrelu:
        x = F.leaky_relu(x, LRELU_SLOPE)
        gain = gain * LRELU_GAIN
    return x * gain if gain != 1 else x


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def _runs_in_fp16(x: torch.Tensor) -> bool:
    """Whether a convolution of ``x`` runs in fp16 (``x`` is fp16, or fp16 autocast is on for its device)."""
    if x.dtype == torch.float16:
        return True
    dev = x.device.type
    return torch.is_autocast_enabled(dev) and torch.get_autocast_dtype(dev) == torch.float16


def modulated_conv2d(
    x: torch.Tensor,  # [N, I, H, W]
    weight: torch.Tensor,  # [O, I, k, k]
    styles: torch.Tensor,  # [N, I]
    noise: torch.Tensor | None = None,  # added after (de)modulation
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    fused: bool = True,
) -> torch.Tensor:
    """StyleGAN2's modulated convolution with weight demodulation (NVlabs' ``modulated_conv2d``).

    ``w'_{n,o,i,k} = weight_{o,i,k} * s_{n,i}``, demodulated by ``1/sqrt(sum_{i,k} w'^2 + 1e-8)``.  ``fused``
    runs one grouped convolution with per-sample weights; otherwise the activations are scaled before
    and after one shared-weight convolution.  Both give the same result.
    """
    n = x.shape[0]
    out_ch, in_ch, kh, kw = weight.shape
    if demodulate and _runs_in_fp16(x):  # pre-normalise to avoid fp16 overflow (cancelled by demodulation)
        weight = weight * (1 / math.sqrt(in_ch * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)
    w = dcoefs = None
    if demodulate or fused:
        w = weight.unsqueeze(0) * styles.reshape(n, 1, -1, 1, 1)  # [N, O, I, k, k]
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # [N, O]

    if not fused:
        x = x * styles.to(x.dtype).reshape(n, -1, 1, 1)
        x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, padding=padding)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(n, -1, 1, 1)
        return x + noise.to(x.dtype) if noise is not None else x

    if demodulate:
        w = w * dcoefs.reshape(n, -1, 1, 1, 1)
    x = x.reshape(1, -1, *x.shape[2:])
    w = w.reshape(-1, in_ch, kh, kw)
    x = conv2d_resample(x, w.to(x.dtype), resample_filter, up=up, padding=padding, groups=n)
    x = x.reshape(n, -1, *x.shape[2:])
    return x + noise.to(x.dtype) if noise is not None else x


# =====================================================================================================
# Equalised-learning-rate layers
# =====================================================================================================


class FullyConnectedLayer(nn.Module):
    """FC layer with equalised lr and a learning-rate multiplier folded into the runtime gains."""

    def __init__(self, in_features, out_features, bias=True, lrelu=False, lr_multiplier=1.0, bias_init=0.0):
        super().__init__()
        self.lrelu = lrelu
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x):
        w = self.weight * self.weight_gain
        b = self.bias * self.bias_gain if self.bias is not None else None
        if not self.lrelu:
            return F.linear(x, w, b)
        return bias_act(F.linear(x, w), b, lrelu=True)


class Conv2dLayer(nn.Module):
    """Conv layer with equalised lr, optional FIR up/downsampling, bias and lrelu (discriminator)."""

    def __init__(self, in_channels, out_channels, kernel_size, bias=True, lrelu=False, up=1, down=1):
        super().__init__()
        self.lrelu, self.up, self.down = lrelu, up, down
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.register_buffer("resample_filter", setup_filter(), persistent=False)

    def forward(self, x, gain: float = 1.0):
        w = self.weight * self.weight_gain
        x = conv2d_resample(x, w, self.resample_filter, up=self.up, down=self.down, padding=self.padding)
        return bias_act(x, self.bias, lrelu=self.lrelu, gain=gain)


# =====================================================================================================
# Generator
# =====================================================================================================


class MappingNetwork(nn.Module):
    """z -> w: 2nd-moment normalisation, ``num_layers`` FC+lrelu layers (lr multiplier), broadcast, truncation."""

    def __init__(self, z_dim, w_dim, num_ws, num_layers=8, lr_multiplier=0.01, w_avg_beta=W_AVG_BETA):
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.w_avg_beta = z_dim, w_dim, num_ws, w_avg_beta
        features = [z_dim] + [w_dim] * num_layers
        self.layers = nn.ModuleList(
            FullyConnectedLayer(features[i], features[i + 1], lrelu=True, lr_multiplier=lr_multiplier)
            for i in range(num_layers)
        )
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z, truncation_psi: float = 1.0, update_w_avg: bool = True):
        x = normalize_2nd_moment(z.float())
        for layer in self.layers:
            x = layer(x)
        x = x.float()
        if self.training and update_w_avg:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        x = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # [N, num_ws, w_dim]
        if truncation_psi != 1:
            x = self.w_avg.lerp(x, truncation_psi)
        return x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally 2x upsampling) + per-pixel noise + bias + lrelu."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, up=1, kernel_size=3):
        super().__init__()
        self.resolution, self.up, self.padding = resolution, up, kernel_size // 2
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.register_buffer("noise_const", torch.randn(resolution, resolution))
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("resample_filter", setup_filter(), persistent=False)

    def forward(self, x, w, noise_mode: str = "random", fused: bool = True):
        styles = self.affine(w)
        noise = None
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device) * self.noise_strength
        elif noise_mode == "const":
            noise = self.noise_const * self.noise_strength
        elif noise_mode != "none":
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', not {noise_mode!r}")
        x = modulated_conv2d(
            x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
            resample_filter=self.resample_filter, fused=fused,
        )
        return bias_act(x, self.bias, lrelu=True)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 conv without demodulation, + bias (linear)."""

    def __init__(self, in_channels, out_channels, w_dim):
        super().__init__()
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, 1, 1))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x, w, fused: bool = True):
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=fused)
        return bias_act(x, self.bias, lrelu=False)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: (const | upsampling conv0), conv1, toRGB added to the image."""

    def __init__(self, in_channels, out_channels, w_dim, resolution, img_channels):
        super().__init__()
        self.in_channels, self.resolution = in_channels, resolution
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim)
        self.num_conv = 1 if in_channels == 0 else 2
        self.num_torgb = 1
        self.register_buffer("resample_filter", setup_filter(), persistent=False)

    def forward(self, x, img, ws, noise_mode="random", fused=None):
        if fused is None:  # NVlabs: fused (grouped) modconv for inference, activation scaling for training
            fused = not self.training
        w_iter = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)
        else:
            x = self.conv0(x, next(w_iter), noise_mode=noise_mode, fused=fused)
        x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused=fused)
        y = self.torgb(x, next(w_iter), fused=fused).float()
        img = y if img is None else upsample2d(img, self.resample_filter) + y
        return x, img


class SynthesisNetwork(nn.Module):
    """Blocks at 4, 8, ..., img_resolution; block b uses ws[i : i + num_conv + 1] (toRGB shares the next w)."""

    def __init__(self, w_dim, img_resolution, img_channels, channel_base, channel_max):
        super().__init__()
        self.w_dim, self.img_resolution = w_dim, img_resolution
        self.block_resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        ch = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        self.blocks = nn.ModuleList()
        self.num_ws = 0
        for r in self.block_resolutions:
            block = SynthesisBlock(ch[r // 2] if r > 4 else 0, ch[r], w_dim, r, img_channels)
            self.blocks.append(block)
            self.num_ws += block.num_conv
        self.num_ws += 1  # the last block's toRGB

    def forward(self, ws, noise_mode="random", fused=None):
        x = img = None
        w_idx = 0
        for block in self.blocks:
            cur = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)
            x, img = block(x, img, cur, noise_mode=noise_mode, fused=fused)
            w_idx += block.num_conv
        return img


class Generator(nn.Module):
    """Mapping + synthesis.  ``pl_mean`` (path-length running mean) lives here as a buffer."""

    def __init__(
        self, z_dim, w_dim, img_resolution, img_channels, mapping_layers, mapping_lr_mult, channel_base, channel_max
    ):
        super().__init__()
        self.z_dim, self.w_dim, self.img_resolution, self.img_channels = z_dim, w_dim, img_resolution, img_channels
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base, channel_max)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, self.num_ws, mapping_layers, mapping_lr_mult)
        self.register_buffer("pl_mean", torch.zeros([]))

    def forward(self, z, truncation_psi: float = 1.0, noise_mode: str = "random", fused=None):
        ws = self.mapping(z, truncation_psi=truncation_psi)
        return self.synthesis(ws, noise_mode=noise_mode, fused=fused)


# =====================================================================================================
# Discriminator
# =====================================================================================================


class DiscriminatorBlock(nn.Module):
    """Residual block: (fromRGB at the top), conv0 3x3, conv1 3x3 down 2x, 1x1 down skip; sum * 1/sqrt(2)."""

    def __init__(self, in_channels, tmp_channels, out_channels, img_channels):
        super().__init__()
        self.in_channels = in_channels
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, lrelu=True)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, lrelu=True)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, lrelu=True, down=2)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x, img):
        if self.in_channels == 0:
            x = self.fromrgb(img)
        y = self.skip(x, gain=math.sqrt(0.5))
        x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
        return y + x


def largest_divisor_at_most(n: int, k: int) -> int:
    """The largest divisor of ``n`` that is ``<= k`` (at least 1)."""
    for g in range(min(n, k), 0, -1):
        if n % g == 0:
            return g
    return 1


class MinibatchStdLayer(nn.Module):
    """Appends the std over groups of samples (averaged over channels and pixels) as extra channels.

    Sample i belongs to group ``i mod (N // G)`` as in NVlabs' reshape; ``G`` is the largest divisor of
    the batch not above ``group_size``, so any batch size works.  Statistics are computed in fp32.
    """

    def __init__(self, group_size, num_channels=MBSTD_CHANNELS):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x):
        n, c, h, w = x.shape
        g = largest_divisor_at_most(n, self.group_size)
        f = self.num_channels
        y = x.float().reshape(g, -1, f, c // f, h, w)  # [G, n, F, c, H, W]
        y = y - y.mean(dim=0)
        y = (y.square().mean(dim=0) + 1e-8).sqrt()  # [n, F, c, H, W]
        y = y.mean(dim=[2, 3, 4]).reshape(-1, f, 1, 1)  # [n, F, 1, 1]
        y = y.repeat(g, 1, h, w)  # [N, F, H, W]
        return torch.cat([x, y.to(x.dtype)], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """4x4: minibatch std, conv 3x3, FC (flattened) + lrelu, FC to one logit."""

    def __init__(self, in_channels, mbstd_group, resolution=4):
        super().__init__()
        self.mbstd = MinibatchStdLayer(mbstd_group)
        self.conv = Conv2dLayer(in_channels + MBSTD_CHANNELS, in_channels, 3, lrelu=True)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, lrelu=True)
        self.out = FullyConnectedLayer(in_channels, 1)

    def forward(self, x):
        x = self.conv(self.mbstd(x))
        return self.out(self.fc(x.flatten(1)))


class Discriminator(nn.Module):
    """Residual discriminator: blocks at img_resolution, ..., 8, then the 4x4 epilogue.  Returns [N, 1] logits."""

    def __init__(self, img_resolution, img_channels, channel_base, channel_max, mbstd_group):
        super().__init__()
        resolutions = [2**i for i in range(int(math.log2(img_resolution)), 2, -1)]
        ch = {r: min(channel_base // r, channel_max) for r in resolutions + [4]}
        self.blocks = nn.ModuleList(
            DiscriminatorBlock(ch[r] if r < img_resolution else 0, ch[r], ch[r // 2], img_channels) for r in resolutions
        )
        self.epilogue = DiscriminatorEpilogue(ch[4], mbstd_group)

    def forward(self, img):
        x = None
        for block in self.blocks:
            x = block(x, img)
        return self.epilogue(x).float()


# =====================================================================================================
# DiffAugment (port of mit-han-lab/data-efficient-gans DiffAugment_pytorch.py)
# =====================================================================================================


def rand_brightness(x):
    return x + (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) - 0.5)


def rand_saturation(x):
    x_mean = x.mean(dim=1, keepdim=True)
    return (x - x_mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) * 2) + x_mean


def rand_contrast(x):
    x_mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - x_mean) * (torch.rand(x.size(0), 1, 1, 1, dtype=x.dtype, device=x.device) + 0.5) + x_mean


def rand_translation(x, ratio=0.125):
    n, _, h, w = x.shape
    shift_x, shift_y = int(h * ratio + 0.5), int(w * ratio + 0.5)
    translation_x = torch.randint(-shift_x, shift_x + 1, size=[n, 1, 1], device=x.device)
    translation_y = torch.randint(-shift_y, shift_y + 1, size=[n, 1, 1], device=x.device)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(n, device=x.device), torch.arange(h, device=x.device), torch.arange(w, device=x.device),
        indexing="ij",
    )
    grid_x = torch.clamp(grid_x + translation_x + 1, 0, h + 1)
    grid_y = torch.clamp(grid_y + translation_y + 1, 0, w + 1)
    x_pad = F.pad(x, [1, 1, 1, 1, 0, 0, 0, 0])
    return x_pad[grid_batch, :, grid_x, grid_y].permute(0, 3, 1, 2)


def rand_cutout(x, ratio=0.5):
    n, _, h, w = x.shape
    cut_h, cut_w = int(h * ratio + 0.5), int(w * ratio + 0.5)
    offset_x = torch.randint(0, h + (1 - cut_h % 2), size=[n, 1, 1], device=x.device)
    offset_y = torch.randint(0, w + (1 - cut_w % 2), size=[n, 1, 1], device=x.device)
    grid_batch, grid_x, grid_y = torch.meshgrid(
        torch.arange(n, device=x.device), torch.arange(cut_h, device=x.device), torch.arange(cut_w, device=x.device),
        indexing="ij",
    )
    grid_x = torch.clamp(grid_x + offset_x - cut_h // 2, min=0, max=h - 1)
    grid_y = torch.clamp(grid_y + offset_y - cut_w // 2, min=0, max=w - 1)
    mask = torch.ones(n, h, w, dtype=x.dtype, device=x.device)
    mask[grid_batch, grid_x, grid_y] = 0
    return x * mask.unsqueeze(1)


AUGMENT_FNS = {
    "color": [rand_brightness, rand_saturation, rand_contrast],
    "translation": [rand_translation],
    "cutout": [rand_cutout],
}


def parse_policy(policy: str) -> list[str]:
    names = [p.strip() for p in policy.split(",") if p.strip()]
    unknown = [p for p in names if p not in AUGMENT_FNS]
    if unknown:
        raise ValueError(f"unknown DiffAugment policy {unknown} (known: {', '.join(AUGMENT_FNS)})")
    return names


def diff_augment(x: torch.Tensor, policy: str) -> torch.Tensor:
    """Differentiable augmentation of a batch ``[N, C, H, W]``; ``policy`` "" returns ``x`` itself."""
    for name in parse_policy(policy):
        for fn in AUGMENT_FNS[name]:
            x = fn(x)
    return x


# =====================================================================================================
# The family: networks, optimisers, one training step, sampling
# =====================================================================================================


def check_image_size(image_size: int) -> None:
    ok = isinstance(image_size, int) and MIN_SIZE <= image_size <= MAX_SIZE and image_size & (image_size - 1) == 0
    if not ok:
        raise ValueError(f"stylegan2: image_size must be a power of two in [{MIN_SIZE}, {MAX_SIZE}], got {image_size!r}")


def lazy_adam(params, lr: float, betas, reg_interval: int) -> torch.optim.Adam:
    """Adam with NVlabs' lazy-regularisation correction ``c = k/(k+1)``: lr*c, betas**c."""
    c = reg_interval / (reg_interval + 1)
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c), eps=1e-8)


class Model(GenerativeModel):
    """StyleGAN2 family: ``networks = {"G": Generator, "D": Discriminator}``, Adam for each."""

    def __init__(self, net: dict, image_size: int, channels: int = 3):
        super().__init__(net, image_size, channels)
        check_image_size(image_size)
        cfg = net
        self.z_dim, self.w_dim = int(cfg["z_dim"]), int(cfg["w_dim"])
        self.r1_gamma, self.r1_every = float(cfg["r1_gamma"]), int(cfg["r1_every"])
        self.pl_weight, self.pl_every = float(cfg["pl_weight"]), int(cfg["pl_every"])
        self.pl_decay = float(cfg["pl_decay"])
        self.style_mixing = float(cfg["style_mixing"])
        self.policy = ",".join(parse_policy(cfg["diffaugment"]))
        base, cmax = int(cfg["channel_base"]), int(cfg["channel_max"])
        if base < image_size:
            raise ValueError(f"stylegan2: channel_base {base} gives 0 channels at {image_size} px (need >= {image_size})")
        G = Generator(
            self.z_dim, self.w_dim, image_size, channels,
            int(cfg["mapping_layers"]), float(cfg["mapping_lr_mult"]), base, cmax,
        )
        D = Discriminator(image_size, channels, base, cmax, int(cfg["mbstd_group"]))
        self.networks = {"G": G, "D": D}
        lr, betas = float(cfg["lr"]), tuple(cfg["betas"])
        self.optimizers = {
            "G": lazy_adam(G.parameters(), lr, betas, self.pl_every),
            "D": lazy_adam(D.parameters(), lr, betas, self.r1_every),
        }

    def ema_network(self) -> nn.Module:
        return self.networks["G"]

    # --- generator and discriminator passes (NVlabs' run_G / run_D) ---------------------------------
    def run_G(self, z: torch.Tensor):
        """Images and the styles they used; style mixing with probability ``style_mixing``."""
        G = self.networks["G"]
        ws = G.mapping(z)
        if self.style_mixing > 0:
            cutoff = int(torch.randint(1, ws.shape[1], ()).item())
            if torch.rand(()).item() < self.style_mixing:
                ws2 = G.mapping(torch.randn_like(z), update_w_avg=False)
                ws = torch.cat([ws[:, :cutoff], ws2[:, cutoff:]], dim=1)
        return G.synthesis(ws), ws

    def run_D(self, img: torch.Tensor) -> torch.Tensor:
        if self.policy:
            img = diff_augment(img, self.policy)
        return self.networks["D"](img)

    # --- one training step ------------------------------------------------------------------------
    def train_step(self, batch: dict[str, torch.Tensor], step: int, ctx: StepContext) -> dict[str, float]:
        real = batch["image"]
        n, device = real.shape[0], real.device
        G, D = self.networks["G"], self.networks["D"]
        opt_G, opt_D = self.optimizers["G"], self.optimizers["D"]
        logs: dict[str, float] = {}
        try:
            # Gmain: maximise D's logits for generated images.
            G.requires_grad_(True)
            D.requires_grad_(False)
            with ctx.autocast():
                fake, _ = self.run_G(torch.randn(n, self.z_dim, device=device))
                fake_logits = self.run_D(fake)
            loss_g = F.softplus(-fake_logits.float()).mean()
            ctx.backward_step(loss_g, opt_G)
            logs["loss_g"] = loss_g.item()

            # Greg: path-length regularisation (fp32), lazily every pl_every steps.
            if self.pl_weight > 0 and step % self.pl_every == 0:
                pl_penalty = self._path_length_penalty(max(1, n // PL_BATCH_SHRINK), device)
                ctx.backward_step(pl_penalty.mean() * self.pl_weight * self.pl_every, opt_G)
                logs["pl"] = pl_penalty.mean().item()
                logs["pl_mean"] = G.pl_mean.item()

            # Dmain: minimise logits for generated images, maximise them for reals.
            G.requires_grad_(False)
            D.requires_grad_(True)
            with ctx.autocast():
                with torch.no_grad():
                    fake, _ = self.run_G(torch.randn(n, self.z_dim, device=device))
                fake_logits = self.run_D(fake)
                real_logits = self.run_D(real.detach())
            loss_d = F.softplus(fake_logits.float()).mean() + F.softplus(-real_logits.float()).mean()
            ctx.backward_step(loss_d, opt_D)
            logs["loss_d"] = loss_d.item()
            logs["score_real"] = real_logits.float().mean().item()
            logs["score_fake"] = fake_logits.float().mean().item()

            # Dreg: R1 on reals (fp32), lazily every r1_every steps.
            if self.r1_gamma > 0 and step % self.r1_every == 0:
                r1_penalty = self._r1_penalty(real)
                ctx.backward_step(r1_penalty.mean() * (self.r1_gamma / 2) * self.r1_every, opt_D)
                logs["r1"] = r1_penalty.mean().item()
        finally:
            G.requires_grad_(True)
            D.requires_grad_(True)
        return logs

    def _path_length_penalty(self, n: int, device) -> torch.Tensor:
        """Per-sample ``(|J_w^T y| - a)^2`` with y ~ N(0, I)/sqrt(HW); updates ``G.pl_mean`` (NVlabs' Gpl)."""
        G = self.networks["G"]
        img, ws = self.run_G(torch.randn(n, self.z_dim, device=device))
        img = img.float()
        pl_noise = torch.randn_like(img) / math.sqrt(img.shape[2] * img.shape[3])
        (grads,) = torch.autograd.grad(outputs=[(img * pl_noise).sum()], inputs=[ws], create_graph=True)
        pl_lengths = grads.square().sum(2).mean(1).sqrt()
        pl_mean = G.pl_mean.lerp(pl_lengths.mean(), self.pl_decay)
        G.pl_mean.copy_(pl_mean.detach())
        return (pl_lengths - pl_mean).square()

    def _r1_penalty(self, real: torch.Tensor) -> torch.Tensor:
        """Per-sample ``|grad_x D(augment(x))|^2`` on reals (NVlabs' Dr1)."""
        real_tmp = real.detach().float().requires_grad_(True)
        logits = self.run_D(real_tmp)
        (grads,) = torch.autograd.grad(outputs=[logits.sum()], inputs=[real_tmp], create_graph=True)
        return grads.square().sum(dim=[1, 2, 3])

    # --- sampling -----------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, net: nn.Module, n: int, device: torch.device, truncation_psi: float = 1.0) -> torch.Tensor:
        """``n`` images in [0, 1] from ``net`` (eval mode, random noise), truncated towards ``w_avg``."""
        was_training = net.training
        net.eval()
        try:
            z = torch.randn(n, net.z_dim, device=device)
            img = net(z, truncation_psi=truncation_psi, noise_mode="random")
        finally:
            net.train(was_training)
        return (img.float().clamp(-1, 1) + 1) / 2
