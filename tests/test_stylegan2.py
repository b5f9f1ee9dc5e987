"""StyleGAN2 family (animegen.models.stylegan2): architecture properties, training step, sampling, state."""

from __future__ import annotations

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from animegen.models.base import StepContext
from animegen.models.stylegan2 import (
    FullyConnectedLayer,
    MinibatchStdLayer,
    Model,
    SynthesisLayer,
    _runs_in_fp16,
    conv2d_resample,
    diff_augment,
    downsample2d,
    modulated_conv2d,
    rand_brightness,
    rand_contrast,
    rand_cutout,
    rand_saturation,
    setup_filter,
    upsample2d,
)

torch.set_num_threads(1)

CPU = torch.device("cpu")


def cfg(**over) -> dict:
    c = dict(
        z_dim=32, w_dim=32, mapping_layers=2, channel_base=256, channel_max=32, mbstd_group=4,
        lr=0.002, mapping_lr_mult=0.01, betas=[0.0, 0.99],
        r1_gamma=1.0, r1_every=4, pl_weight=2.0, pl_every=4, pl_decay=0.01,
        style_mixing=0.9, diffaugment="color,translation,cutout",
    )
    c.update(over)
    return c


def make(size=16, seed=0, **over) -> Model:
    torch.manual_seed(seed)
    m = Model(cfg(**over), size)
    m.train()
    return m


def batch(n=4, size=16, seed=123) -> dict:
    g = torch.Generator().manual_seed(seed)  # seeded: test data only, never model randomness
    return {"image": torch.rand(n, 3, size, size, generator=g) * 2 - 1}


def ctx() -> StepContext:
    return StepContext(device=CPU)


def params(module) -> dict:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# --- construction -----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [24, 4, 2, 12, 2048, 0])
def test_bad_image_size_raises(size):
    with pytest.raises(ValueError, match="power of two"):
        Model(cfg(), size)


def test_channels_follow_channel_base_and_max():
    m = make(32, channel_base=256, channel_max=16)
    G, D = m.networks["G"], m.networks["D"]
    # min(256 // r, 16): 16 at 4, 8, 16 px; 8 at 32 px
    assert [b.conv1.weight.shape[0] for b in G.synthesis.blocks] == [16, 16, 16, 8]
    assert D.blocks[0].fromrgb.weight.shape[0] == 8
    assert D.epilogue.conv.weight.shape[1] == 16 + 1  # + minibatch-std channel
    assert G.num_ws == 1 + 2 + 2 + 2 + 1


def test_lazy_adam_correction_and_mapping_lr_multiplier():
    m = make(16, lr=0.002, betas=[0.5, 0.99], r1_every=16, pl_every=4)
    for name, k in [("G", 4), ("D", 16)]:
        group = m.optimizers[name].param_groups[0]
        c = k / (k + 1)
        assert group["lr"] == pytest.approx(0.002 * c)
        assert group["betas"] == pytest.approx((0.5**c, 0.99**c))
    fc = m.networks["G"].mapping.layers[0]
    assert fc.weight_gain == pytest.approx(0.01 / math.sqrt(32))
    assert fc.weight.std().item() == pytest.approx(100, rel=0.2)  # N(0, 1/lr_mult^2) init
    # every optimiser owns exactly its network's parameters
    for name in ("G", "D"):
        owned = {id(p) for g in m.optimizers[name].param_groups for p in g["params"]}
        assert owned == {id(p) for p in m.networks[name].parameters()}


# --- low-level ops ----------------------------------------------------------------------------------


@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv_demodulation_makes_output_std_independent_of_style_scale(fused):
    torch.manual_seed(0)
    x = torch.randn(4, 16, 24, 24)
    weight = torch.randn(8, 16, 3, 3)
    base_styles = torch.rand(4, 16) + 0.5
    for scale in (0.01, 1.0, 100.0):
        y = modulated_conv2d(x, weight, base_styles * scale, padding=1, fused=fused)[:, :, 1:-1, 1:-1]
        std = y.transpose(0, 1).reshape(8, -1).std(dim=1)
        assert torch.allclose(std, torch.ones(8), atol=0.1), (scale, std)
    # without demodulation the same property fails (the output scales with the styles)
    y_small = modulated_conv2d(x, weight, base_styles * 0.01, padding=1, demodulate=False, fused=fused)
    y_big = modulated_conv2d(x, weight, base_styles * 100, padding=1, demodulate=False, fused=fused)
    assert y_big.std() / y_small.std() == pytest.approx(1e4, rel=1e-3)


@pytest.mark.parametrize("up", [1, 2])
def test_fused_and_unfused_modulated_conv_agree(up):
    torch.manual_seed(0)
    x, weight, styles = torch.randn(3, 6, 8, 8), torch.randn(5, 6, 3, 3), torch.randn(3, 6)
    noise = torch.randn(3, 1, 8 * up, 8 * up)
    f = setup_filter()
    a = modulated_conv2d(x, weight, styles, noise=noise, up=up, padding=1, resample_filter=f, fused=True)
    b = modulated_conv2d(x, weight, styles, noise=noise, up=up, padding=1, resample_filter=f, fused=False)
    assert a.shape == (3, 5, 8 * up, 8 * up)
    assert torch.allclose(a, b, atol=1e-4)
    # per-sample styles really are per sample: changing sample 0's style leaves sample 1 alone
    styles2 = styles.clone()
    styles2[0] *= -3
    c = modulated_conv2d(x, weight, styles2, up=up, padding=1, resample_filter=f, fused=True)
    d = modulated_conv2d(x, weight, styles, up=up, padding=1, resample_filter=f, fused=True)
    assert torch.allclose(c[1], d[1], atol=1e-5) and not torch.allclose(c[0], d[0], atol=1e-3)


@pytest.mark.parametrize("fused", [True, False])
def test_modulated_conv_fp16_pre_normalisation_avoids_overflow(fused):
    torch.manual_seed(0)
    x, weight = torch.randn(2, 8, 8, 8), torch.randn(4, 8, 3, 3)
    styles = (torch.rand(2, 8) + 0.5) * 1e5  # x * styles would overflow fp16 (max 65504)
    ref = modulated_conv2d(x, weight, styles, padding=1, fused=fused)
    half = modulated_conv2d(x.half(), weight, styles, padding=1, fused=fused)
    assert half.dtype == torch.float16 and torch.isfinite(half).all()
    assert torch.allclose(half.float(), ref, atol=2e-2)


def test_the_fp16_pre_normalisation_follows_only_fp16_never_bf16_autocast():
    x = torch.randn(1, 2)
    assert not _runs_in_fp16(x) and _runs_in_fp16(x.half())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not _runs_in_fp16(x)  # bf16 has fp32's range: nothing to pre-normalise
    with torch.autocast("cpu", dtype=torch.float16):
        assert _runs_in_fp16(x)


@pytest.mark.parametrize("fused", [True, False])
def test_the_fp16_pre_normalisation_is_nvlabs_inf_norm_where_the_demodulation_epsilon_shows(fused):
    """NVlabs' fp16 path divides the weight by sqrt(I k k) and its per-output-channel max, the styles by their
    per-sample max, then demodulates by 1/sqrt(sum w'^2 + 1e-8): that scale is cancelled except through the
    1e-8, so the case here makes sum w'^2 ~1e-8 (the big weight meets a tiny style, the big styles tiny weights)."""
    d = 1e-4
    x = torch.ones(1, 5, 3, 3)
    weight = torch.tensor([1.0, d, d, d, d]).reshape(1, 5, 1, 1)
    styles = torch.tensor([[d, 1.0, 1.0, 1.0, 1.0]])
    w = weight / math.sqrt(5) * styles.reshape(1, 5, 1, 1)  # max |weight| = 1, max |style| = 1
    w = w / (w.square().sum() + 1e-8).sqrt()
    want = F.conv2d(x, w)
    got = modulated_conv2d(x.half(), weight, styles, fused=fused)
    assert got.dtype == torch.float16
    torch.testing.assert_close(got.float(), want, rtol=2e-3, atol=0)
    assert not torch.allclose(want, modulated_conv2d(x, weight, styles, fused=fused), rtol=0.1)  # the epsilon shows


@pytest.mark.parametrize("k, padding", [(3, 1), (5, 0)])
def test_upsampling_conv_is_a_full_transposed_conv_cropped_and_fir_filtered(k, padding):
    """NVlabs' geometry: the whole stride-2 transposed convolution, padded by p0 = padding + 2 - (k - 1) and
    p1 = padding + 1 - (k - 2) on each side (negative: cropped), then the [1, 3, 3, 1] filter with gain 4.
    (3, 1) is the synthesis layers' (pad 1); (5, 0) crops 2 (the transposed conv's own padding then)."""
    torch.manual_seed(0)
    x, w, f = torch.randn(2, 3, 5, 5), torch.randn(4, 3, k, k), setup_filter()
    full = F.conv_transpose2d(x, w.transpose(0, 1), stride=2)  # (5 - 1) * 2 + k
    p = {(3, 1): 1, (5, 0): -2}[(k, padding)]
    y = F.pad(full, [p] * 4)
    want = F.conv2d(y, (f * 4)[None, None].repeat(4, 1, 1, 1), groups=4)
    got = conv2d_resample(x, w, f, up=2, padding=padding)
    assert got.shape == want.shape == (2, 4, 10 + 2 * padding - k + 1, 10 + 2 * padding - k + 1)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_fir_resampling_keeps_constants_and_halves_or_doubles_size():
    f = setup_filter()
    assert f.sum().item() == pytest.approx(1.0) and f.shape == (4, 4)
    c = torch.full((2, 3, 8, 8), 3.0)
    up, down = upsample2d(c, f), downsample2d(c, f)
    assert up.shape == (2, 3, 16, 16) and down.shape == (2, 3, 4, 4)
    assert torch.allclose(up[..., 2:-2, 2:-2], torch.tensor(3.0))  # gain up**2 with zero insertion
    assert torch.allclose(down[..., 1:-1, 1:-1], torch.tensor(3.0))


def test_fully_connected_layer_gains_with_and_without_bias():
    torch.manual_seed(0)
    x = torch.randn(5, 8)
    fc = FullyConnectedLayer(8, 4, lrelu=True, lr_multiplier=0.01, bias_init=0.5)
    assert torch.equal(fc.bias, torch.full((4,), 0.5))
    # runtime weight W * lr_mult / sqrt(fan_in), runtime bias b * lr_mult, then lrelu(0.2) * sqrt(2)
    pre = x @ (fc.weight * 0.01 / math.sqrt(8)).T + 0.5 * 0.01
    assert torch.allclose(fc(x), F.leaky_relu(pre, 0.2) * math.sqrt(2), atol=1e-6)
    # bias=False (NVlabs' option) is a layer without a bias parameter, linear or with lrelu
    for lrelu in (False, True):
        fc = FullyConnectedLayer(8, 4, bias=False, lrelu=lrelu)
        assert fc.bias is None and [k for k, _ in fc.named_parameters()] == ["weight"]
        pre = x @ (fc.weight / math.sqrt(8)).T
        expected = F.leaky_relu(pre, 0.2) * math.sqrt(2) if lrelu else pre
        assert torch.allclose(fc(x), expected, atol=1e-6)


@pytest.mark.parametrize("fused", [True, False])
def test_synthesis_layer_is_modulated_conv_plus_noise_bias_and_scaled_lrelu(fused):
    torch.manual_seed(0)
    layer = SynthesisLayer(4, 3, w_dim=8, resolution=8)
    assert torch.equal(layer.affine.bias, torch.ones(4))  # styles start around 1
    with torch.no_grad():
        layer.bias.copy_(torch.tensor([-1.0, 0.0, 1.0]))
        layer.noise_strength.fill_(0.3)
    x, w = torch.randn(2, 4, 8, 8), torch.randn(2, 8)
    # by hand: per-sample weights W * s, demodulated per output channel, 3x3 conv, + noise, + bias, lrelu * sqrt(2)
    styles = w @ (layer.affine.weight / math.sqrt(8)).T + 1.0
    convs = []
    for i in range(2):
        wi = layer.weight * styles[i].reshape(1, -1, 1, 1)
        wi = wi / (wi.square().sum(dim=[1, 2, 3], keepdim=True) + 1e-8).sqrt()
        convs.append(F.conv2d(x[i : i + 1], wi, padding=1)[0])
    pre = torch.stack(convs) + 0.3 * layer.noise_const + layer.bias.reshape(1, 3, 1, 1)
    assert (pre < 0).any() and (pre > 0).any()
    y = layer(x, w, noise_mode="const", fused=fused)
    assert torch.allclose(y, F.leaky_relu(pre, 0.2) * math.sqrt(2), atol=1e-5)


def test_random_noise_is_drawn_on_the_activations_device_not_the_default_one():
    torch.manual_seed(0)
    layer = SynthesisLayer(4, 3, w_dim=8, resolution=8)
    x, w = torch.randn(2, 4, 8, 8), torch.randn(2, 8)
    with torch.device("meta"):  # another default device than the activations' (as a CUDA default with CPU data)
        y = layer(x, w, noise_mode="random")
    assert y.device == CPU and torch.isfinite(y).all()


@pytest.mark.parametrize("n, group, expect_group", [(3, 4, 3), (1, 4, 1), (6, 4, 3), (8, 4, 4), (5, 2, 1)])
def test_minibatch_std_any_batch_size(n, group, expect_group):
    torch.manual_seed(0)
    x = torch.randn(n, 6, 4, 4)
    y = MinibatchStdLayer(group)(x)
    assert y.shape == (n, 7, 4, 4)
    assert torch.equal(y[:, :6], x)
    # manual: sample i is in group i mod (n / G); std over the group, averaged over channels and pixels
    n_groups = n // expect_group
    for i in range(n):
        members = x[i % n_groups :: n_groups]
        assert members.shape[0] == expect_group
        expected = (members.var(dim=0, unbiased=False) + 1e-8).sqrt().mean()
        assert torch.allclose(y[i, 6], expected.expand(4, 4), atol=1e-6)


def test_discriminator_runs_with_batch_sizes_1_to_64():
    m = make(16)
    D = m.networks["D"]
    for n in (1, 3, 5, 64):
        out = D(torch.randn(n, 3, 16, 16))
        assert out.shape == (n, 1) and torch.isfinite(out).all()
    # the minibatch-std feature makes a sample's logit depend on the other members of its group
    x = torch.randn(2, 3, 16, 16)
    y = x.clone()
    y[1] *= 3
    assert not torch.allclose(D(x)[0], D(y)[0])


# --- DiffAugment ------------------------------------------------------------------------------------


def test_diffaugment_keeps_shape_identity_when_empty_and_each_policy_changes_images():
    torch.manual_seed(0)
    x = torch.randn(4, 3, 16, 16)
    assert diff_augment(x, "") is x
    for policy in ("color", "translation", "cutout", "color,translation,cutout"):
        x_in = x.clone().requires_grad_(True)
        y = diff_augment(x_in, policy)
        assert y.shape == x.shape, policy
        assert not torch.allclose(y, x), policy
        y.sum().backward()  # differentiable, as D's input for G's loss and for R1
        assert x_in.grad is not None and torch.isfinite(x_in.grad).all(), policy
    # translation moves pixels (zero padding brings in zeros), cutout zeroes a half-size square
    y = diff_augment(torch.ones(4, 3, 16, 16), "cutout")
    assert ((y == 0).flatten(1).sum(1) <= 3 * 8 * 8).all() and ((y == 0).flatten(1).sum(1) > 0).all()
    with pytest.raises(ValueError, match=r"^unknown DiffAugment policy \['colour'\] \(known: color, translation, cutout\)$"):
        diff_augment(x, "colour")


def test_color_augments_shift_or_scale_per_image_and_keep_their_means():
    torch.manual_seed(0)
    x = torch.rand(6, 3, 8, 8, dtype=torch.float64)

    def per_image(t):  # t is one value per image, broadcast over channels and pixels
        return torch.allclose(t, t[:, :1, :1, :1].expand_as(t)) and t[:, 0, 0, 0].unique().numel() == t.shape[0]

    d = rand_brightness(x) - x  # brightness: + U[-0.5, 0.5) per image
    assert per_image(d) and (d.abs() <= 0.5).all()
    mu = x.mean(dim=1, keepdim=True)  # saturation: each pixel keeps its channel mean, spread x U[0, 2)
    y = rand_saturation(x)
    assert torch.allclose(y.mean(dim=1, keepdim=True), mu)
    k = (y - mu) / (x - mu)
    assert per_image(k) and ((k >= 0) & (k < 2)).all()
    mu = x.mean(dim=[1, 2, 3], keepdim=True)  # contrast: each image keeps its mean, spread x U[0.5, 1.5)
    y = rand_contrast(x)
    assert torch.allclose(y.mean(dim=[1, 2, 3], keepdim=True), mu)
    k = (y - mu) / (x - mu)
    assert per_image(k) and ((k >= 0.5) & (k < 1.5)).all()
    # every augment computes in the input's dtype
    for dtype in (torch.float64, torch.bfloat16):
        for policy in ("color", "translation", "cutout"):
            assert diff_augment(x.to(dtype), policy).dtype == dtype, (dtype, policy)


def test_cutout_zeroes_a_half_size_square_centred_on_the_drawn_offset():
    # DiffAugment: per image a centre (ox, oy) uniform in {0..16}, rows [ox - 4, ox + 4) x cols [oy - 4, oy + 4) zeroed,
    # clipped to the image
    n, size = 32, 16
    torch.manual_seed(3)
    y = rand_cutout(torch.ones(n, 3, size, size))
    torch.manual_seed(3)  # replay the two draws
    ox, oy = torch.randint(0, size + 1, (n, 1)), torch.randint(0, size + 1, (n, 1))
    r = torch.arange(size)
    rows, cols = (r >= ox - 4) & (r < ox + 4), (r >= oy - 4) & (r < oy + 4)
    cut = rows[:, :, None] & cols[:, None, :]
    assert torch.equal(y == 0, cut[:, None].expand_as(y))
    area = cut.flatten(1).sum(1)
    assert (area == 64).any() and (area < 64).any()  # whole squares and squares hanging over a border


def test_discriminator_sees_augmented_images_only_when_a_policy_is_set():
    x = torch.randn(4, 3, 16, 16)
    m = make(16, diffaugment="translation,cutout")
    assert not torch.equal(m.run_D(x), m.run_D(x))  # fresh random augmentation per pass
    m = make(16, diffaugment="")
    assert torch.equal(m.run_D(x), m.run_D(x))


# --- training ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("reg", [False, True])
def test_train_steps_give_finite_losses_and_change_G_D_and_w_avg(reg):
    # without regularisers the main G and D steps alone must move every parameter (noise strengths included)
    m = make(16) if reg else make(16, r1_gamma=0.0, pl_weight=0.0)
    G0, D0 = params(m.networks["G"]), params(m.networks["D"])
    for step in range(3):
        logs = m.train_step(batch(), step, ctx())
        assert {"loss_g", "loss_d", "score_real", "score_fake"} <= set(logs)
        assert all(isinstance(v, float) and math.isfinite(v) for v in logs.values()), logs
    G1, D1 = params(m.networks["G"]), params(m.networks["D"])
    for name, before, after in [("G", G0, G1), ("D", D0, D1)]:
        trained = [k for k, _ in m.networks[name].named_parameters()]  # weights, biases, noise strengths, const
        changed = [k for k in trained if not torch.equal(before[k], after[k])]
        assert changed == trained, (name, set(trained) - set(changed))
    assert not torch.equal(G0["mapping.w_avg"], G1["mapping.w_avg"])
    assert all(p.requires_grad for net in m.networks.values() for p in net.parameters())


def test_the_logged_losses_are_the_non_saturating_logistic_losses_of_the_logits():
    """Gmain: softplus(-D(G(z))); Dmain: softplus(D(G(z))) + softplus(-D(x)), each a batch mean, from the logits
    of the passes the step makes (D's first pass judges G's images in the G phase, then fakes and reals)."""
    m = make(16, r1_gamma=0.0, pl_weight=0.0, diffaugment="")
    logits, run_D = [], m.run_D
    m.run_D = lambda img: logits.append(run_D(img)) or logits[-1]
    logs = m.train_step(batch(), 0, ctx())
    assert len(logits) == 3 and sorted(logs) == ["loss_d", "loss_g", "score_fake", "score_real"]
    g_fake, fake, real = (t.detach() for t in logits)
    assert logs["loss_g"] == pytest.approx(math.fsum(math.log1p(math.exp(-v)) for v in g_fake.flatten().tolist()) / 4, rel=1e-5)
    want_d = sum(math.log1p(math.exp(s * v)) for s, t in ((1, fake), (-1, real)) for v in t.flatten().tolist()) / 4
    assert logs["loss_d"] == pytest.approx(want_d, rel=1e-5)
    assert (logs["score_real"], logs["score_fake"]) == pytest.approx((real.mean().item(), fake.mean().item()), rel=1e-5)


def test_r1_only_on_steps_divisible_by_r1_every_and_positive():
    m = make(16, r1_every=2, pl_weight=0.0)
    for step in range(5):
        logs = m.train_step(batch(), step, ctx())
        assert ("r1" in logs) == (step % 2 == 0), (step, logs)
        if "r1" in logs:
            assert logs["r1"] > 0
    m = make(16, r1_gamma=0.0, pl_weight=0.0)
    assert all("r1" not in m.train_step(batch(), s, ctx()) for s in range(2))


def test_r1_step_changes_discriminator_beyond_the_main_step():
    # same seed, same data: the only difference is r1_gamma, so D differs after a step-0 R1 phase
    a, b = make(16, r1_gamma=10.0, pl_weight=0.0), make(16, r1_gamma=0.0, pl_weight=0.0)
    torch.manual_seed(5)
    a.train_step(batch(), 0, ctx())
    torch.manual_seed(5)
    b.train_step(batch(), 0, ctx())
    assert not torch.equal(a.networks["D"].epilogue.out.weight, b.networks["D"].epilogue.out.weight)


def test_path_length_regularisation_runs_when_enabled_and_is_skipped_when_disabled():
    m = make(16, pl_weight=2.0, pl_every=2, r1_gamma=0.0)
    for step in range(4):
        logs = m.train_step(batch(), step, ctx())
        assert ("pl" in logs) == (step % 2 == 0) and ("pl_mean" in logs) == (step % 2 == 0)
        if "pl" in logs:
            assert math.isfinite(logs["pl"]) and logs["pl"] >= 0
    assert m.networks["G"].pl_mean.item() > 0
    m = make(16, pl_weight=0.0)
    for step in range(2):
        assert "pl" not in m.train_step(batch(), step, ctx())
    assert m.networks["G"].pl_mean.item() == 0


def test_path_length_penalty_is_squared_deviation_of_jacobian_norm_from_running_mean():
    # NVlabs' Gpl: y ~ N(0, I)/sqrt(HW), L = |J_w^T y| (squared norm over w_dim, mean over the num_ws styles, sqrt),
    # a <- lerp(a, mean L, pl_decay), penalty (L - a)^2 with the updated a
    m = make(8, style_mixing=0.0, pl_decay=0.5)
    G = m.networks["G"]
    a = 0.0
    for seed in (4, 5):
        torch.manual_seed(seed)
        penalty = m._path_length_penalty(3, CPU)
        torch.manual_seed(seed)  # replay: z, the synthesis noise (strengths 0 at init), then y
        ws = G.mapping(torch.randn(3, 32))
        img = G.synthesis(ws)
        y = torch.randn_like(img) / 8
        _, jt_y = torch.autograd.functional.vjp(lambda w: G.synthesis(w, noise_mode="none"), ws, y)
        lengths = jt_y.square().sum(2).mean(1).sqrt()
        a = a + 0.5 * (lengths.mean().item() - a)
        assert G.pl_mean.item() == pytest.approx(a, rel=1e-5)
        assert torch.allclose(penalty, (lengths - a).square(), rtol=1e-4, atol=1e-8)


def test_style_mixing_switches_styles_at_a_cutoff():
    # probability 1: every pass takes layers [0, cutoff) from z and [cutoff, num_ws) from a second latent,
    # the cutoff uniform in [1, num_ws)
    m = make(8, style_mixing=1.0)
    G = m.networks["G"]
    assert G.num_ws == 4
    torch.manual_seed(1)
    cutoffs = set()
    for _ in range(30):
        z = torch.randn(2, 32)
        _, ws = m.run_G(z)
        ws_z = G.mapping(z, update_w_avg=False)
        from_z = [torch.equal(ws[:, i], ws_z[:, i]) for i in range(4)]
        assert from_z[0] and not all(from_z), from_z
        cut = from_z.index(False)
        assert all(from_z[:cut]) and not any(from_z[cut:])
        assert all(torch.equal(ws[:, i], ws[:, cut]) for i in range(cut, 4))  # one second w, broadcast
        cutoffs.add(cut)
    assert cutoffs == {1, 2, 3}
    m = make(16, style_mixing=0.0)
    _, ws = m.run_G(torch.randn(2, 32))
    assert all(torch.equal(ws[:, i], ws[:, 0]) for i in range(ws.shape[1]))


@pytest.mark.parametrize("n", [1, 3])
def test_train_step_with_small_and_odd_batches(n):
    m = make(16, pl_every=1, r1_every=1)
    logs = m.train_step(batch(n), 0, ctx())
    assert {"loss_g", "loss_d", "r1", "pl"} <= set(logs)
    assert all(math.isfinite(v) for v in logs.values())


def test_train_step_under_bf16_autocast():
    m = make(16, pl_every=1, r1_every=1)
    c = StepContext(device=CPU, autocast=lambda: torch.autocast("cpu", dtype=torch.bfloat16))
    logs = m.train_step(batch(), 0, c)
    assert {"loss_g", "loss_d", "r1", "pl"} <= set(logs)
    assert all(math.isfinite(v) for v in logs.values())


# --- sampling, reproducibility, state ---------------------------------------------------------------


@pytest.mark.parametrize("size", [8, 16, 32])
def test_sample_shape_and_range(size):
    m = make(size)
    G = m.networks["G"]
    w_avg = G.mapping.w_avg.clone()
    x = m.sample(G, 3, CPU, truncation_psi=0.7)
    assert x.shape == (3, 3, size, size) and x.dtype == torch.float32
    assert len({tuple(img.flatten().tolist()) for img in x}) == 3  # three different images (the range is clamped by construction)
    assert G.training and torch.equal(G.mapping.w_avg, w_avg)  # mode restored, no w_avg update


def test_noise_inputs_are_random_per_call_constant_or_off():
    m = make(16)
    G = m.networks["G"].eval()
    for layer in G.modules():
        if hasattr(layer, "noise_strength"):
            layer.noise_strength.data.fill_(0.5)
    z = torch.randn(2, 32)
    assert not torch.allclose(G(z, noise_mode="random"), G(z, noise_mode="random"))
    assert torch.equal(G(z, noise_mode="const"), G(z, noise_mode="const"))
    assert not torch.allclose(G(z, noise_mode="const"), G(z, noise_mode="none"))


def test_truncation_pulls_styles_towards_w_avg():
    m = make(16)
    G = m.networks["G"]
    G.mapping.w_avg.copy_(torch.linspace(-1, 1, 32))
    G.eval()
    z = torch.randn(5, 32)
    ws0 = G.mapping(z, truncation_psi=0.0)
    assert torch.allclose(ws0, G.mapping.w_avg.expand_as(ws0))
    ws1, ws_half = G.mapping(z), G.mapping(z, truncation_psi=0.5)
    assert torch.allclose(ws_half, 0.5 * ws1 + 0.5 * G.mapping.w_avg, atol=1e-6)
    G.train()
    # psi = 0: every image uses the same styles; noise strengths start at 0, so images are identical
    x = m.sample(G, 3, CPU, truncation_psi=0.0)
    assert torch.allclose(x[0], x[1]) and torch.allclose(x[0], x[2])
    x = m.sample(G, 3, CPU, truncation_psi=1.0)
    assert not torch.allclose(x[0], x[1])


def test_same_seed_same_samples_and_steps_different_seed_different():
    def run(seed):
        m = make(16, seed=seed)
        torch.manual_seed(seed)
        logs = [m.train_step(batch(), s, ctx()) for s in range(2)]
        return logs, m.sample(m.networks["G"], 2, CPU)

    (logs_a, xa), (logs_b, xb), (logs_c, xc) = run(0), run(0), run(1)
    assert logs_a == logs_b and torch.equal(xa, xb)
    assert logs_a != logs_c and not torch.allclose(xa, xc)


def test_state_dict_round_trip_samples_and_resumes_identically():
    m = make(16)
    for s in range(2):
        m.train_step(batch(), s, ctx())
    state = copy.deepcopy(m.state_dict())
    fresh = make(16, seed=99)
    assert not torch.equal(fresh.networks["G"].synthesis.blocks[0].const, m.networks["G"].synthesis.blocks[0].const)
    fresh.load_state_dict(state)
    assert torch.equal(fresh.networks["G"].pl_mean, m.networks["G"].pl_mean) and m.networks["G"].pl_mean > 0
    torch.manual_seed(7)
    a = m.sample(m.networks["G"], 3, CPU, truncation_psi=0.5)
    torch.manual_seed(7)
    b = fresh.sample(fresh.networks["G"], 3, CPU, truncation_psi=0.5)
    assert torch.equal(a, b)
    torch.manual_seed(8)
    la = m.train_step(batch(), 4, ctx())  # a step with R1 and PL, using the restored Adam state
    torch.manual_seed(8)
    lb = fresh.train_step(batch(), 4, ctx())
    assert la == lb and "r1" in la and "pl" in la
    for k, v in m.networks["D"].state_dict().items():
        assert torch.equal(v, fresh.networks["D"].state_dict()[k]), k
