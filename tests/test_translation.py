"""Translation models (study C's CycleGAN and CycleGAN + CAM): networks against the study's layer list,
the CAM really applied, the losses and schedules the reference implementation fixes, resume, the
character ratio, and the params a translator refuses."""

from __future__ import annotations

import copy
import json

import cv2
import numpy as np
import pytest
import torch
from conftest import assert_params_error
from pytorch_grad_cam import GradCAM
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
from test_train import loop_cfg, same_weights
from torch import nn

from animegen.artifacts.model import SnapshotStore
from animegen.cam.attention import GradCamMaps
from animegen.cam.classifier import SmallCNN
from animegen.metrics.proportion import share_with_interval
from animegen.models import base, cyclegan, registry
from animegen.models.base import StepContext, lsgan
from animegen.train import data_fingerprint, image_banks, train

STUDY_C = {
    "ngf": 64, "ndf": 64, "n_blocks": 4, "lambda_cyc": 10.0, "lambda_identity": 0.0, "pool_size": 50, "lr": 0.0002,
    "betas": [0.5, 0.999], "lr_constant_steps": 0, "lr_decay_steps": 0, "cam_generator": False, "cam_discriminator": False,
}  # fmt: skip
TINY = {**STUDY_C, "ngf": 4, "ndf": 4, "pool_size": 3}
CPU = torch.device("cpu")


def convs(net: nn.Module) -> list[tuple]:
    """(kind, in, out, kernel, stride) of every convolution, in order."""
    return [(type(m).__name__, m.in_channels, m.out_channels, m.kernel_size[0], m.stride[0])
            for m in net.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d))]  # fmt: skip


def frozen_classifier(seed: int = 0) -> SmallCNN:
    torch.manual_seed(seed)
    net = SmallCNN(4, 2).eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def test_the_networks_are_study_cs_layer_list():
    model = registry.model_class("cyclegan")(STUDY_C, 256)
    res = [("Conv2d", 256, 256, 3, 1)] * 2
    assert convs(model.networks["G_A"]) == [
        ("Conv2d", 3, 64, 7, 1), ("Conv2d", 64, 128, 3, 2), ("Conv2d", 128, 256, 3, 2), *res * 4,
        ("ConvTranspose2d", 256, 128, 3, 2), ("ConvTranspose2d", 128, 64, 3, 2), ("Conv2d", 64, 3, 7, 1),
    ]  # fmt: skip
    assert convs(model.networks["D_A"]) == [
        ("Conv2d", 3, 64, 4, 2), ("Conv2d", 64, 128, 4, 2), ("Conv2d", 128, 256, 4, 2), ("Conv2d", 256, 512, 4, 1),
        ("Conv2d", 512, 1, 3, 1),
    ]  # fmt: skip
    assert sorted(model.networks) == ["D_A", "D_B", "G_A", "G_B"]
    # a LeakyReLU of slope 0.2 after each of D's four 4x4 convs (the reference PatchGAN's)
    assert [m.negative_slope for m in model.networks["D_A"].modules() if isinstance(m, nn.LeakyReLU)] == [0.2] * 4
    # InstanceNorm everywhere but the first discriminator layer and the generator's output, as the reference
    assert not any(isinstance(m, nn.BatchNorm2d) for net in model.networks.values() for m in net.modules())


@pytest.mark.parametrize("size, patch", [(256, 31), (32, 3)])
def test_shapes_at_256_and_32_px(size, patch):
    model = registry.model_class("cyclegan")({**STUDY_C, "ngf": 8, "ndf": 8} if size == 32 else STUDY_C, size)
    x = torch.rand(1, 3, size, size) * 2 - 1
    G, D = model.networks["G_A"], model.networks["D_A"]
    assert G.down(x).shape[-2:] == (size // 4, size // 4)  # residual blocks at 64 x 64 for 256 px (study C)
    y = G(x)
    assert y.shape == x.shape and y.abs().max() <= 1
    assert D(x).shape == (1, 1, patch, patch)  # the CAM before D's last layer lives at 31 x 31 for 256 px


def test_sizes_the_networks_cannot_take_are_refused():
    for size in (30, 16):
        with pytest.raises(ValueError, match="divisible by 4|at least 32"):
            registry.model_class("cyclegan")(TINY, size)


def test_the_cam_is_really_applied_and_a_map_of_ones_is_plain_cyclegan():
    torch.manual_seed(0)
    model = registry.model_class("cyclegan")(TINY, 32)
    G, D = model.networks["G_A"].eval(), model.networks["D_A"].eval()
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    ones, zeros = torch.ones(2, 1, 8, 8), torch.zeros(2, 1, 8, 8)
    assert torch.equal(G(x, ones), G(x)) and torch.equal(D(x, ones), D(x))
    assert not torch.allclose(G(x, zeros), G(x), atol=1e-4)
    assert not torch.allclose(D(x, zeros), D(x), atol=1e-4)
    # a map of any size is resized to each feature map it multiplies
    half = torch.ones(2, 1, 32, 32)
    half[..., :16] = 0
    h = D.features(x)
    assert cyclegan._resize_map(half, h).shape == (2, 1, 3, 3)
    assert not torch.allclose(D(x, half), D(x)) and not torch.allclose(D(x, half), D(x, zeros))


def test_the_switches_turn_each_side_on_alone():
    torch.manual_seed(0)
    model = registry.model_class("cyclegan")({**TINY, "cam_generator": True}, 32)
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    with pytest.raises(RuntimeError, match="no CAM function"):
        model.translate(model.networks["G_A"], x)
    calls = []
    model.set_cam(lambda imgs, domain: calls.append(domain) or torch.zeros(len(imgs), 1, 8, 8))
    assert model._cam(x, "a", "generator") is not None and model._cam(x, "a", "discriminator") is None
    assert calls == ["a"]


def test_torch_gradcam_matches_the_grad_cam_library():
    net = frozen_classifier()
    x = torch.rand(3, 3, 16, 16) * 2 - 1
    ours = GradCamMaps(net, net.blocks[1], "small_cnn", {"a": 0, "b": 1})(x, "b")
    assert ours.shape == (3, 1, 8, 8) and float(ours.min()) >= 0 and float(ours.max()) <= 1
    # min-max scaled per image, as the library's scale_cam_image: each map spans [0, 1] on its own
    torch.testing.assert_close(ours.amin(dim=(1, 2, 3)), torch.zeros(3))
    torch.testing.assert_close(ours.amax(dim=(1, 2, 3)), torch.ones(3), atol=5e-3, rtol=0)  # the 1e-7 guard against 0 costs ~1e-3 here
    with GradCAM(model=net, target_layers=[net.blocks[1]]) as cam:
        lib = cam(input_tensor=x.clone().requires_grad_(True), targets=[ClassifierOutputTarget(1)] * 3)
    # the library resizes to the input and then scales to [0, 1]; ours stays at the layer's resolution
    resized = np.stack([cv2.resize(m[0].numpy(), (16, 16), interpolation=cv2.INTER_LINEAR) for m in ours])
    resized -= resized.min(axis=(1, 2), keepdims=True)
    resized /= resized.max(axis=(1, 2), keepdims=True)
    assert np.allclose(resized, lib, atol=1e-4)
    other = GradCamMaps(net, net.blocks[1], "small_cnn", {"a": 0, "b": 1})(x, "a")
    assert not torch.allclose(other, ours)  # each domain's map is its own class's


def test_torch_gradcam_scales_each_image_to_zero_one_even_where_no_pixel_is_zero():
    """A hand-made classifier whose map is positive everywhere (activation = 3 + the pixel sum, a
    positive weight on it): each image's map is shifted by its own minimum and divided by its own
    maximum, so a uniform-gradient map is the activation's min-max scaling, per image."""
    layer = nn.Conv2d(3, 1, 1)
    with torch.no_grad():
        layer.weight.fill_(1.0)
        layer.bias.fill_(3.0)  # x in [-1, 1]: 3 + sum >= 0, and > 0 almost everywhere
    net = nn.Sequential(layer, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(1, 2)).eval()
    with torch.no_grad():
        net[3].weight.copy_(torch.tensor([[1.0], [-1.0]]))
        net[3].bias.zero_()
    net.requires_grad_(False)
    x = torch.rand(2, 3, 4, 4, generator=torch.Generator().manual_seed(0)) * 2 - 1
    x[1] = x[1] * 0.5 + 0.25  # another image, another range of activations
    maps = GradCamMaps(net, layer, "small_cnn", {"a": 0, "b": 1})(x, "a")
    act = x.sum(dim=1, keepdim=True) + 3.0  # small_cnn's input is x itself ([0, 1] -> [-1, 1] and back)
    lo, hi = act.amin(dim=(2, 3), keepdim=True), act.amax(dim=(2, 3), keepdim=True)
    torch.testing.assert_close(maps, (act - lo) / (hi - lo), atol=1e-5, rtol=0)
    assert float(act.amin()) > 0  # no zero anywhere: the shift is each image's own


def test_no_gradient_reaches_the_classifier_and_a_live_one_is_refused():
    net = frozen_classifier()
    maps = GradCamMaps(net, net.blocks[1], "small_cnn", {"a": 0, "b": 1})
    torch.manual_seed(0)
    model = registry.model_class("cyclegan")({**TINY, "cam_generator": True, "cam_discriminator": True}, 32)
    model.set_cam(maps)
    batch = {"a": torch.rand(2, 3, 32, 32) * 2 - 1, "b": torch.rand(2, 3, 32, 32) * 2 - 1}
    losses = model.train_step(batch, 0, StepContext(device=CPU))
    assert all(np.isfinite(v) for v in losses.values())
    assert all(p.grad is None for p in net.parameters()) and not net.training
    live = SmallCNN(4, 2)
    with pytest.raises(ValueError, match=r"^the CAM classifier must be frozen \(requires_grad False on every parameter\)$"):
        GradCamMaps(live, live.blocks[1], "small_cnn", {"a": 0, "b": 1})


def test_lsgan_targets_and_the_linear_decay_are_the_references():
    pred = torch.tensor([0.0, 0.5, 2.0])
    assert float(lsgan(pred, True)) == pytest.approx((1 + 0.25 + 1) / 3)
    assert float(lsgan(pred, False)) == pytest.approx((0 + 0.25 + 4) / 3)
    # reference: 1 - max(0, epoch - n_epochs) / (n_epochs_decay + 1), here in steps
    assert [base.lr_factor(s, 100, 100) for s in (0, 100, 101, 150, 200)] == pytest.approx(
        [1.0, 1.0, 1 - 1 / 101, 1 - 50 / 101, 1 - 100 / 101])  # fmt: skip
    assert base.lr_factor(10**6, 100, 0) == 1.0


def test_the_learning_rate_follows_the_schedule_in_a_step():
    torch.manual_seed(0)
    model = registry.model_class("cyclegan")({**TINY, "lr_constant_steps": 1, "lr_decay_steps": 3}, 32)
    batch = {"a": torch.rand(1, 3, 32, 32) * 2 - 1, "b": torch.rand(1, 3, 32, 32) * 2 - 1}
    model.train_step(batch, 3, StepContext(device=CPU))
    for opt in model.optimizers.values():
        assert opt.param_groups[0]["lr"] == pytest.approx(0.0002 * (1 - 2 / 4))


def test_the_cycle_and_identity_weights_enter_the_loss():
    batch = {"a": torch.rand(2, 3, 32, 32) * 2 - 1, "b": torch.rand(2, 3, 32, 32) * 2 - 1}
    out, models = {}, {}
    for name, net in (("plain", TINY), ("double", {**TINY, "lambda_cyc": 20.0}), ("idt", {**TINY, "lambda_identity": 0.5})):
        torch.manual_seed(0)
        models[name] = registry.model_class("cyclegan")(net, 32)
        out[name] = models[name].train_step(batch, 0, StepContext(device=CPU))
    assert out["double"]["cycle"] == pytest.approx(2 * out["plain"]["cycle"], rel=1e-5)
    assert out["plain"]["identity"] == 0.0 and out["idt"]["identity"] > 0
    # both terms reach the generators' update, not only the log
    for name in ("double", "idt"):
        assert not same_weights(models[name].networks["G_B"], models["plain"].networks["G_B"]), name


def test_the_logged_losses_are_lsgan_against_hand_computed_values():
    """G_A's adversarial loss mse(D_A(G_A(a)), 1) and D_A's 0.5 x (mse(D_A(b), 1) + mse(D_A(pooled G_A(a)), 0)),
    with the networks as the step found them (the pool not yet full: the fakes themselves); likewise for B."""
    torch.manual_seed(0)
    model = registry.model_class("cyclegan")(TINY, 32)
    nets = {k: copy.deepcopy(v) for k, v in model.networks.items()}
    batch = {"a": torch.rand(2, 3, 32, 32) * 2 - 1, "b": torch.rand(2, 3, 32, 32) * 2 - 1}
    losses = model.train_step(batch, 0, StepContext(device=CPU))
    assert sorted(losses) == ["cycle", "d_a", "d_b", "g_adv_a", "g_adv_b", "identity"]
    with torch.no_grad():
        fake_b, fake_a = nets["G_A"](batch["a"]), nets["G_B"](batch["b"])
        for side, D, real, fake in (("a", nets["D_A"], batch["b"], fake_b), ("b", nets["D_B"], batch["a"], fake_a)):
            assert losses[f"g_adv_{side}"] == pytest.approx(float(((D(fake) - 1) ** 2).mean()), rel=1e-5)
            want = 0.5 * (float(((D(real) - 1) ** 2).mean()) + float((D(fake) ** 2).mean()))
            assert losses[f"d_{side}"] == pytest.approx(want, rel=1e-5)


def test_the_image_pool_keeps_earlier_fakes_as_the_reference_does():
    torch.manual_seed(0)
    pool = cyclegan.ImagePool(2)
    first = torch.arange(2.0).view(2, 1, 1, 1)
    assert torch.equal(pool.query(first), first)  # not full: the new images themselves
    later = torch.full((50, 1, 1, 1), 9.0)
    got = pool.query(later)
    assert ((got == 0) | (got == 1) | (got == 9)).all() and (got != 9).any() and (got == 9).any()
    assert torch.equal(cyclegan.ImagePool(0).query(later), later)


def test_unpaired_batches_draw_each_domain_in_its_own_order():
    data = np.stack([np.full((16, 16, 3), i, np.uint8) for i in range(6)])
    banks = image_banks({"a": data, "b": data}, "translation", CPU, 1, False)
    a, b = banks["a"].batch(0, 6), banks["b"].batch(0, 6)
    assert sorted(a[:, 0, 0, 0].tolist()) == sorted(b[:, 0, 0, 0].tolist()) and not torch.equal(a, b)
    with pytest.raises(ValueError, match="translation model trains on"):
        image_banks(data, "translation", CPU, 1, False)
    assert data_fingerprint({"a": data, "b": data[:3]}) != data_fingerprint({"a": data[:3], "b": data})


def run_translator(tmp, steps: int, ckpt: str, net=None):
    torch.manual_seed(0)
    net = net or {**TINY, "cam_generator": True, "cam_discriminator": True}
    model = registry.model_class("cyclegan")(net, 32)
    model.set_cam(GradCamMaps(*(lambda c: (c, c.blocks[1]))(frozen_classifier()), "small_cnn", {"a": 0, "b": 1}))
    rng = np.random.default_rng(0)
    data = {k: rng.integers(0, 256, (6, 32, 32, 3), dtype=np.uint8) for k in ("a", "b")}
    fp = "cyclegan" + json.dumps(net, sort_keys=True)
    cfg = loop_cfg(steps, ema_beta=0.0)
    result, ema = train(model, data, cfg, CPU, tmp / ckpt, tmp / ckpt / "live", fingerprint=fp, log=lambda m: None,
                        snapshots=SnapshotStore(tmp / ckpt / "snapshots", fp))  # fmt: skip
    return model, result


def test_resuming_a_translator_equals_an_uninterrupted_run_pool_included(tmp_path):
    whole, r_whole = run_translator(tmp_path, 6, "a")
    run_translator(tmp_path, 3, "b")
    resumed, r_resumed = run_translator(tmp_path, 6, "b")
    assert r_resumed.resumed_from_step == 3
    for k in whole.networks:
        assert same_weights(whole.networks[k], resumed.networks[k]), k
    assert all(torch.equal(x, y) for x, y in zip(whole.pools["fake_b"].images, resumed.pools["fake_b"].images))
    assert r_whole.history == r_resumed.history


def test_a_checkpoint_made_with_another_classifier_is_not_resumed(tmp_path, monkeypatch):
    """What prepare() returns (train_translator: the CAM classifier's SHA-256) joins the fingerprint."""
    from animegen import fitting  # noqa: PLC0415

    seen = []

    def fake_train(model, images, cfg, device, ckpt, live, fingerprint, **kw):
        seen.append(fingerprint)
        raise KeyboardInterrupt  # stop before any training

    monkeypatch.setattr(fitting, "train", fake_train)
    model_train = {"steps": 2, "time_budget_hours": 1.0, "batch_size": 2, "seed_offset": 0, "hflip": True,
                   "precision": "fp32", "track_fid_every": 0, "ema": {"beta": 0.0, "update_after_step": 0, "update_every": 1}}  # fmt: skip
    params = {"train": {"seed": 1, "device": "cpu", "cpu_threads": 1, "tf32": True, "checkpoint_every_steps": 2,
                        "checkpoint_every_minutes": 10.0, "log_every": 1},
              "translators": {"t": {"family": "cyclegan", "net": TINY, "train": model_train}}}  # fmt: skip
    data = {k: np.zeros((2, 32, 32, 3), np.uint8) for k in ("a", "b")}
    for extra in ({"cam": {"classifier_sha256": "aa"}}, {"cam": {"classifier_sha256": "bb"}}, None):
        with pytest.raises(KeyboardInterrupt):
            fitting.fit(params, "translators", "t", data, 32, tmp_path, {}, "t", "t", prepare=lambda m, d: extra)
    assert len(set(seen)) == 3


def test_the_character_ratio_and_its_bootstrap_interval():
    hits = np.array([True] * 36 + [False] * 14)  # study C's CycleGAN: 0.72 of 50
    r = share_with_interval(hits, 2000, 3407)
    assert r["share"] == pytest.approx(0.72) and r["n"] == 50
    # the binomial standard error at 0.72 of 50 is 0.063: the interval is about +-0.12
    assert r["ci95_low"] == pytest.approx(0.60, abs=0.03) and r["ci95_high"] == pytest.approx(0.84, abs=0.03)
    assert share_with_interval(hits, 2000, 3407) == r  # seeded
    assert 0.76 < r["ci95_high"]  # CycleGAN + CAM's 0.76 lies inside CycleGAN's interval
    assert share_with_interval(np.zeros(0, bool), 100, 0)["share"] is None


# ------------------------------------------------------------------------------------------ params


def test_a_translation_family_is_refused_under_models():
    assert_params_error(lambda p: p["models"]["dcgan"].update(family="cyclegan"), r"models\.dcgan\.family")


def test_source_and_target_of_different_sizes_are_refused():
    assert_params_error(lambda p: (p["cam_classifier"].pop("face_vs_body"), p["datasets"]["body_a"].update(size=64)),
                        r"translators\.councilgan\.target: 'body_a' is 64 px but the source 'body_a_shoulders' is 32 px")  # fmt: skip


def test_a_missing_classifier_is_refused():
    assert_params_error(lambda p: p["translators"]["cyclegan"].update(classifier="nope"),
                        r"translators\.cyclegan\.classifier: no such classifier 'nope'")  # fmt: skip


def test_a_source_without_test_images_and_a_name_taken_by_a_model_are_refused():
    assert_params_error(lambda p: p["translators"]["cyclegan"].update(source={"dataset": "face_a_later", "split": "face_a_later"}),
                        r"translators\.cyclegan\.source\.dataset: 'face_a_later' holds out no images")  # fmt: skip
    assert_params_error(lambda p: p["translators"].update(dcgan=p["translators"]["cyclegan"]),
                        r"translators\.dcgan: models\.dcgan has this name too")  # fmt: skip


def test_a_split_of_another_dataset_and_an_unknown_net_key_are_refused():
    assert_params_error(lambda p: p["translators"]["cyclegan"]["source"].update(split="face_a_cam"),
                        r"translators\.cyclegan\.source\.split: 'face_a_cam' is not a split of dataset 'face_photo'")  # fmt: skip
    assert_params_error(lambda p: p["translators"]["cyclegan"]["net"].update(lamda_cyc=1.0),
                        r"translators\.cyclegan\.net\.lamda_cyc: unknown key \(did you mean 'lambda_cyc'\?")  # fmt: skip


def test_tracking_a_translator_less_often_than_its_steps_is_refused():
    # steps set here, so the test does not follow the demo's budget in params.yaml
    assert_params_error(lambda p: p["translators"]["cyclegan"]["train"].update(steps=600, track_fid_every=601),
                        r"translators\.cyclegan\.train\.track_fid_every: 601 is more than steps \(600\)")  # fmt: skip
