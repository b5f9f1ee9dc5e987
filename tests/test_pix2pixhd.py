"""pix2pixHD (paired face -> full body): the reference's networks, its losses computed by hand, one step's
gradients, the paired protocol, the sizes refused and the learning-rate schedule.  Tiny nets, CPU."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from animegen.models import pix2pixhd, registry
from animegen.models.base import GenerativeModel, StepContext

CPU = torch.device("cpu")
REFERENCE = {
    "ngf": 64, "ndf": 64, "n_downsample": 4, "n_blocks": 9, "n_layers_d": 3, "num_d": 2, "lambda_feat": 10.0,
    "l1_weight": 0.0, "lr": 0.0002, "betas": [0.5, 0.999], "lr_constant_steps": 0, "lr_decay_steps": 0,
}  # fmt: skip
TINY = {**REFERENCE, "ngf": 4, "ndf": 4, "n_downsample": 2, "n_blocks": 1, "n_layers_d": 2, "l1_weight": 100.0}  # 16 px


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny nets gain nothing from threads, and a second thread spinning on a busy 2-core machine costs 5x."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def model(net=None, size: int = 16, seed: int = 0) -> pix2pixhd.Model:
    torch.manual_seed(seed)
    return pix2pixhd.Model({**TINY, **(net or {})}, size)


def batch(b: int = 2, size: int = 16, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(b, 3, size, size, generator=g) * 2 - 1 for k in ("a", "b")}


def convs(net: nn.Module) -> list[tuple]:
    """(kind, in, out, kernel, stride, padding) of every convolution, in order."""
    return [(type(m).__name__, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0], m.padding[0])
            for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]  # fmt: skip


def no_step(opt: torch.optim.Optimizer) -> None:
    opt.step = lambda *args, **kwargs: None  # the loss is still backpropagated: its gradients stay in .grad


# ------------------------------------------------------------------------------------------ networks


def test_the_generator_is_pix2pixhds_global_generator():
    with torch.device("meta"):  # 182 M parameters: no memory, no time
        G = pix2pixhd.GlobalGenerator(64, 4, 9)
    # By hand, conv(i, o, k) = i*o*k*k + o (weight + bias; transposed convs alike; IN has no parameters):
    #   7x7 3->64: 9,472; 3x3 s2 64->128->256->512->1024: 73,856 + 295,168 + 1,180,160 + 4,719,616
    #   9 blocks x 2 convs 3x3 1024->1024: 18 x 9,438,208 = 169,887,744
    #   transposed 3x3 1024->512->256->128->64: 4,719,104 + 1,179,904 + 295,040 + 73,792; 7x7 64->3: 9,411
    assert sum(p.numel() for p in G.parameters()) == 182_443_267

    def conv(i, o, k):
        return i * o * k * k + o

    widths = [64 * 2**i for i in range(5)]
    by_shapes = (conv(3, 64, 7) + sum(conv(c, 2 * c, 3) for c in widths[:-1]) + 18 * conv(1024, 1024, 3)
                 + sum(conv(2 * c, c, 3) for c in widths[:-1]) + conv(64, 3, 7))  # fmt: skip
    assert by_shapes == 182_443_267
    res = [("Conv2d", 1024, 1024, 3, 1, 0)] * 18  # reflect-padded outside the conv
    assert convs(G) == [
        ("Conv2d", 3, 64, 7, 1, 0), ("Conv2d", 64, 128, 3, 2, 1), ("Conv2d", 128, 256, 3, 2, 1), ("Conv2d", 256, 512, 3, 2, 1),
        ("Conv2d", 512, 1024, 3, 2, 1), *res, ("ConvTranspose2d", 1024, 512, 3, 2, 1), ("ConvTranspose2d", 512, 256, 3, 2, 1),
        ("ConvTranspose2d", 256, 128, 3, 2, 1), ("ConvTranspose2d", 128, 64, 3, 2, 1), ("Conv2d", 64, 3, 7, 1, 0),
    ]  # fmt: skip
    norms = [m for m in G.modules() if isinstance(m, (nn.InstanceNorm2d, nn.BatchNorm2d))]
    assert len(norms) == 1 + 4 + 18 + 4 and all(isinstance(m, nn.InstanceNorm2d) and not m.affine for m in norms)
    assert all(m.output_padding == (1, 1) for m in G.modules() if isinstance(m, nn.ConvTranspose2d))
    assert sum(isinstance(m, nn.ReflectionPad2d) for m in G.modules()) == 2 + 18
    assert isinstance(G.model[-1], nn.Tanh)
    block = pix2pixhd.ResnetBlock(4)  # x + branch(x): a branch ending in a zero conv leaves x as it is
    nn.init.zeros_(block.branch[-2].weight)
    nn.init.zeros_(block.branch[-2].bias)
    x = torch.randn(1, 4, 5, 5)
    assert torch.equal(block(x), x)


def test_the_discriminator_is_the_references_multiscale_patchgan():
    D = pix2pixhd.MultiscaleDiscriminator(6, 64, 3, 2)
    assert len(D.scales) == 2
    for scale in D.scales:  # 6 -> 64 -> 128 -> 256 -> 512 -> 1, 4x4 convs padded by ceil(3 / 2) = 2
        assert convs(scale) == [("Conv2d", 6, 64, 4, 2, 2), ("Conv2d", 64, 128, 4, 2, 2), ("Conv2d", 128, 256, 4, 2, 2),
                                ("Conv2d", 256, 512, 4, 1, 2), ("Conv2d", 512, 1, 4, 1, 2)]  # fmt: skip
        kinds = [[type(m).__name__ for m in layer] for layer in scale.layers]
        assert kinds == [["Conv2d", "LeakyReLU"], *[["Conv2d", "InstanceNorm2d", "LeakyReLU"]] * 3, ["Conv2d"]]
        assert all(m.negative_slope == 0.2 for m in scale.modules() if isinstance(m, nn.LeakyReLU))
    assert [c[2] for c in convs(pix2pixhd.NLayerDiscriminator(6, 64, 5))] == [64, 128, 256, 512, 512, 512, 1]  # capped at 512
    # every layer's output, at each scale (getIntermFeat); tiny widths, the same geometry
    out = pix2pixhd.MultiscaleDiscriminator(6, 4, 3, 2)(torch.zeros(1, 6, 32, 32))
    assert [[tuple(t.shape[1:]) for t in s] for s in out] == [
        [(4, 17, 17), (8, 9, 9), (16, 5, 5), (32, 6, 6), (1, 7, 7)],
        [(4, 9, 9), (8, 5, 5), (16, 3, 3), (32, 4, 4), (1, 5, 5)],
    ]  # fmt: skip


def test_scale_i_sees_the_input_average_pooled_i_times_without_counting_padding():
    torch.manual_seed(0)
    D = pix2pixhd.MultiscaleDiscriminator(1, 4, 2, 3)
    x = torch.arange(36.0).reshape(1, 1, 6, 6)

    def pool(img):  # by hand: 3x3 windows at stride 2 around (2i, 2j), the mean of the pixels inside the image
        n = img.shape[-1]
        return torch.tensor([[[[img[0, 0, max(0, 2 * i - 1) : 2 * i + 2, max(0, 2 * j - 1) : 2 * j + 2].mean()
                                for j in range((n + 1) // 2)] for i in range((n + 1) // 2)]]])  # fmt: skip

    once = pool(x)
    assert float(once[0, 0, 0, 0]) == (0 + 1 + 6 + 7) / 4  # the corner: padding not counted
    assert torch.allclose(D.downsample(x), once)
    with torch.no_grad():
        out = D(x)
        for i, want in enumerate([x, once, pool(once)]):
            got = D.scales[i](want)
            assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(out[i], got)), i


def test_the_initialisation_is_the_references_weights_init():
    m = model({"ngf": 16, "ndf": 16})
    w = m.networks["G"].model[4].weight.detach()  # 3x3 16 -> 32: 4,608 weights
    assert float(w.std()) == pytest.approx(0.02, rel=0.1) and abs(float(w.mean())) < 0.003
    assert float(m.networks["D"].scales[1].layers[1][0].weight.detach().std()) == pytest.approx(0.02, rel=0.1)
    bn = nn.BatchNorm2d(256)
    pix2pixhd.init_weights(bn)
    assert float(bn.weight.detach().mean()) == pytest.approx(1.0, abs=0.01) and float(bn.weight.detach().std()) == pytest.approx(0.02, rel=0.2)
    assert not bn.bias.any()


def test_translate_keeps_the_shape_and_maps_to_0_1():
    m = model({"n_downsample": 3, "n_layers_d": 3}, size=32)
    x = batch(3, 32)["a"]
    G = m.ema_network()
    assert G is m.networks["G"]
    with torch.no_grad():
        y = G(x)
    assert y.shape == x.shape and float(y.abs().max()) <= 1
    out = m.translate(G, x)
    assert out.shape == (3, 3, 32, 32) and not out.requires_grad
    assert float(out.min()) >= 0 and float(out.max()) <= 1
    assert torch.allclose(out, (y + 1) / 2)


def test_the_discriminator_is_conditional_on_the_face():
    m = model()
    b = batch()
    D = m.networks["D"]
    with torch.no_grad():
        same = D(torch.cat((b["a"], b["b"]), 1))
        other = D(torch.cat((batch(seed=1)["a"], b["b"]), 1))
    assert D.scales[0].layers[0][0].in_channels == 6
    assert all(not torch.allclose(x[-1], y[-1], atol=1e-5) for x, y in zip(same, other))


# ------------------------------------------------------------------------------------------ losses


def test_feature_matching_against_a_hand_computed_value():
    # 2 scales of 4 outputs (n_layers 2): feat_weight 4 / 3, D_weight 1 / 2; the last outputs are not compared
    fake = [[torch.full((1, 2, 3, 3), v) for v in (1.0, 2.0, 0.0, 100.0)], [torch.full((1, 1, 2, 2), v) for v in (0.5, 0.0, 3.0, -7.0)]]
    real = [[torch.full((1, 2, 3, 3), v) for v in (0.0, 0.0, 1.0, 0.0)], [torch.full((1, 1, 2, 2), v) for v in (0.0, 1.0, 1.0, 5.0)]]
    want = 10.0 * 0.5 * (4 / 3) * ((1 + 2 + 1) + (0.5 + 1 + 2))  # = 50.0
    assert float(pix2pixhd.feature_matching(fake, real, 10.0)) == pytest.approx(want, rel=1e-6)
    assert float(pix2pixhd.feature_matching(fake, fake, 10.0)) == 0.0
    # the real features are a target: no gradient reaches them
    real = [[t.clone().requires_grad_(True) for t in s] for s in real]
    fake = [[t.clone().requires_grad_(True) for t in s] for s in fake]
    pix2pixhd.feature_matching(fake, real, 10.0).backward()
    assert all(t.grad is None for s in real for t in s)
    assert float(fake[0][0].grad.sum()) == pytest.approx(10.0 * 0.5 * (4 / 3))  # d|f - r|/df = 1, mean over the 18 values


def test_the_generators_losses_on_the_model():
    m = model()
    b = batch()
    D = m.networks["D"]
    with torch.no_grad():
        pred_real = D(torch.cat((b["a"], b["b"]), 1))
        same = m.generator_losses(b["a"], b["b"], b["b"], pred_real)  # G(a) = b: nothing to match
        assert float(same["g_feat"]) == 0.0 and float(same["g_l1"]) == 0.0
        fake = b["b"].flip(-1)
        terms = m.generator_losses(b["a"], b["b"], fake, pred_real)
        pred_fake = D(torch.cat((b["a"], fake), 1))
    want_gan = sum(float((s[-1] - 1).pow(2).mean()) for s in pred_fake)  # LSGAN: G wants D(a, G(a)) = 1 at each scale
    want_feat = sum(10.0 * 0.5 * (4 / 3) * float((f - r).abs().mean()) for fs, rs in zip(pred_fake, pred_real) for f, r in zip(fs[:-1], rs[:-1]))
    assert float(terms["g_gan"]) == pytest.approx(want_gan, rel=1e-5)
    assert float(terms["g_feat"]) == pytest.approx(want_feat, rel=1e-5) and want_feat > 0
    assert float(terms["g_l1"]) == pytest.approx(100.0 * float((fake - b["b"]).abs().mean()), rel=1e-5)


@pytest.mark.parametrize("weight", ["lambda_feat", "l1_weight"])
def test_a_weight_of_zero_removes_its_term_and_its_gradient(weight):
    term = {"lambda_feat": "g_feat", "l1_weight": "g_l1"}[weight]
    b = {k: v.double() for k, v in batch().items()}

    def grads(m, which=None):
        G, D = m.networks["G"], m.networks["D"]
        G.zero_grad()
        with torch.no_grad():
            pred_real = D(torch.cat((b["a"], b["b"]), 1))
        terms = m.generator_losses(b["a"], b["b"], G(b["a"]), pred_real)
        (terms[which] if which else sum(terms.values())).backward()
        return terms, [p.grad.clone() for p in G.parameters()]

    on, off = model(), model({weight: 0.0})  # the same seeds: the same weights
    for net in [*on.networks.values(), *off.networks.values()]:
        net.double()
    on_terms, total = grads(on)
    _, alone = grads(on, term)
    off_terms, without = grads(off)
    assert float(on_terms[term].detach()) > 0 and float(off_terms[term].detach()) == 0.0
    assert any(g.abs().sum() > 0 for g in alone)  # the term moves G ...
    for t, a, w in zip(total, alone, without):  # ... and at weight 0 exactly its gradient is gone
        assert torch.allclose(t - a, w, rtol=1e-9, atol=1e-12)


def test_one_step_backpropagates_the_references_losses():
    m = model()
    for net in m.networks.values():
        net.double()
    b = {k: v.double() for k, v in batch().items()}
    G, D = m.networks["G"], m.networks["D"]
    for opt in m.optimizers.values():
        no_step(opt)
    d_grads_after_g_step = []

    class Ctx(StepContext):
        def backward_step(self, loss, optimizer, max_grad_norm=None):
            super().backward_step(loss, optimizer, max_grad_norm)
            if optimizer is m.optimizers["G"]:
                d_grads_after_g_step.extend(p.grad for p in D.parameters())

    losses = m.train_step(b, 0, Ctx(CPU))
    assert d_grads_after_g_step and all(g is None for g in d_grads_after_g_step)  # D frozen: G's loss leaves D alone
    assert set(losses) == {"g_gan", "g_feat", "g_l1", "d_real", "d_fake"} and all(type(v) is float for v in losses.values())
    assert all(p.requires_grad for p in D.parameters())  # frozen for G's step only
    got_g, got_d = [p.grad.clone() for p in G.parameters()], [p.grad.clone() for p in D.parameters()]
    # by hand: G on GAN + feature matching + L1, D on half its real and fake losses
    G.zero_grad()
    D.zero_grad()
    fake = G(b["a"])
    pred_fake, pred_real = D(torch.cat((b["a"], fake), 1)), D(torch.cat((b["a"], b["b"]), 1))
    feat = sum(10.0 * 0.5 * (4 / 3) * (f - r.detach()).abs().mean() for fs, rs in zip(pred_fake, pred_real) for f, r in zip(fs[:-1], rs[:-1]))
    gan = sum((s[-1] - 1).pow(2).mean() for s in pred_fake)
    (gan + feat + 100.0 * (fake - b["b"]).abs().mean()).backward()
    assert float(gan.detach()) == pytest.approx(losses["g_gan"]) and float(feat.detach()) == pytest.approx(losses["g_feat"])
    assert all(torch.allclose(p.grad, g, rtol=1e-7, atol=1e-12) for p, g in zip(G.parameters(), got_g))
    D.zero_grad()
    d_fake = sum(s[-1].pow(2).mean() for s in D(torch.cat((b["a"], fake.detach()), 1)))
    d_real = sum((s[-1] - 1).pow(2).mean() for s in D(torch.cat((b["a"], b["b"]), 1)))
    (0.5 * (d_fake + d_real)).backward()
    assert float(d_real.detach()) == pytest.approx(losses["d_real"]) and float(d_fake.detach()) == pytest.approx(losses["d_fake"])
    assert all(torch.allclose(p.grad, g, rtol=1e-7, atol=1e-12) for p, g in zip(D.parameters(), got_d))


def test_generator_steps_move_d_of_the_fake_towards_real():
    m = model({"lambda_feat": 0.0, "l1_weight": 0.0, "lr": 2e-3})
    b = batch(4)
    G, D = m.networks["G"], m.networks["D"]
    no_step(m.optimizers["D"])  # D fixed
    d_before = [p.clone() for p in D.parameters()]

    def g_gan():
        with torch.no_grad():
            return sum(float((s[-1] - 1).pow(2).mean()) for s in D(torch.cat((b["a"], G(b["a"])), 1)))

    seen = [g_gan()]
    for step in range(5):
        m.train_step(b, step, StepContext(CPU))
        seen.append(g_gan())
    # D's outputs start near 0 (N(0, 0.02) weights): about 1 per scale, and G alone moves them slowly
    assert all(x > y for x, y in zip(seen, seen[1:])) and seen[-1] < 0.97 * seen[0]
    assert all(torch.equal(p, q) for p, q in zip(d_before, D.parameters()))


def test_discriminator_steps_separate_real_pairs_from_fakes():
    m = model({"lr": 2e-3})
    b = batch(4)
    G, D = m.networks["G"], m.networks["D"]
    no_step(m.optimizers["G"])  # G fixed

    def d_loss():
        with torch.no_grad():
            fake = G(b["a"])
            return 0.5 * sum(float(s[-1].pow(2).mean()) for s in D(torch.cat((b["a"], fake), 1))) + 0.5 * sum(
                float((s[-1] - 1).pow(2).mean()) for s in D(torch.cat((b["a"], b["b"]), 1)))  # fmt: skip

    start = d_loss()
    for step in range(5):
        m.train_step(b, step, StepContext(CPU))
    assert d_loss() < 0.9 * start


# ------------------------------------------------------------------------------------------ protocol


def test_the_model_is_a_paired_translation_family_with_one_generator():
    m = model()
    assert isinstance(m, GenerativeModel) and m.kind == "translation"
    assert registry.FAMILIES["pix2pixhd"].needs_pairs(TINY) is True and pix2pixhd.Model.companions(TINY) == []
    assert sorted(m.networks) == ["D", "G"] and sorted(m.optimizers) == ["D", "G"]
    assert not hasattr(m, "reconstruct")
    for k in ("G", "D"):
        opt = m.optimizers[k]
        assert isinstance(opt, torch.optim.Adam) and opt.defaults["betas"] == (0.5, 0.999)
        assert {id(p) for g in opt.param_groups for p in g["params"]} == {id(p) for p in m.networks[k].parameters()}


def test_sizes_the_networks_cannot_take_are_refused():
    with torch.device("meta"):  # 200 M parameters: no memory, no time
        pix2pixhd.Model(REFERENCE, 32)  # the smallest the reference settings take (2 px at the bottleneck)
        pix2pixhd.Model(REFERENCE, 256)
        for size, match in [(40, "divisible by 16"), (16, "at least 32")]:
            with pytest.raises(ValueError, match=match):
                pix2pixhd.Model(REFERENCE, size)
    # 16 px, 3 scales: the coarsest sees 4 px, fewer than the 2**n_layers_d = 8 its stride-2 convs need
    with pytest.raises(ValueError, match="coarsest scale .* 4 px.* at least 32"):
        pix2pixhd.Model({**TINY, "n_layers_d": 3, "num_d": 3}, 16)
    pix2pixhd.Model({**TINY, "n_layers_d": 3, "num_d": 2}, 16)  # 8 px at the coarsest: fine


def test_the_learning_rate_is_constant_then_decays_linearly_to_zero():
    m = model({"lr_constant_steps": 100, "lr_decay_steps": 100})
    b = batch(1)
    ctx = StepContext(CPU)

    def lrs():
        return [g["lr"] for k in ("G", "D") for g in m.optimizers[k].param_groups]

    m.train_step(b, 100, ctx)
    assert lrs() == pytest.approx([2e-4, 2e-4])
    m.train_step(b, 150, ctx)  # halfway through the decay: 1 - 50 / 101 of the rate
    assert lrs() == pytest.approx([1e-4, 1e-4], rel=0.02)
    m.train_step(b, 201, ctx)
    assert lrs() == [0.0, 0.0]
