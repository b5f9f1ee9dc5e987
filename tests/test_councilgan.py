"""Council GAN (study B) and the paired training it shares with pix2pixHD: networks, losses, the loop."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pytest
import torch
from conftest import assert_params_error
from test_train import loop_cfg, same_weights

from animegen.artifacts.model import SnapshotStore
from animegen.artifacts.split import write_split
from animegen.models import councilgan, registry
from animegen.models.base import StepContext
from animegen.stages import StageError
from animegen.stages.train_translator import pair_ids
from animegen.train import LoopConfig, image_banks, train

CPU = torch.device("cpu")
CTX = StepContext(device=CPU)
# the reference's anime config at a tiny width (its dims: 64, 256, 64, 64; n_res 5; dis_layers 4)
NET = {
    "n_councils": 3, "member": 0, "dim": 4, "n_downsample": 2, "n_res": 1, "style_dim": 4, "mlp_dim": 8, "n_masks": 3,
    "norm": "adain", "dis_dim": 4, "dis_layers": 3, "dis_scales": 2, "lr": 1e-4, "betas": [0.5, 0.999],
    "weight_decay": 1e-4, "lr_step": 100000, "lr_gamma": 0.5, "gan_w": 26.0, "council_w": 6.0, "council_start": 0,
    "council_dis_iters": 4, "style_alpha": 0.7, "loss_matching_history": 100, "mask_zero_one_w": 0.0,
    "mask_total_w": 0.0, "mask_tv_w": 0.0, "focus_start": 2000, "focus_epsilon": 0.01, "paired_weight": 0.0,
}  # fmt: skip
REFERENCE = {**NET, "n_councils": 4, "dim": 64, "n_res": 5, "style_dim": 64, "mlp_dim": 256, "dis_dim": 64, "dis_layers": 4}


def model(net=None, size: int = 32, seed: int = 0) -> councilgan.Model:
    torch.manual_seed(seed)
    return councilgan.Model({**NET, **(net or {})}, size)


def batch(b: int = 2, size: int = 32, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {k: torch.rand(b, 3, size, size, generator=g) * 2 - 1 for k in ("a", "b")}


# ------------------------------------------------------------------------------------------ networks


def test_the_reference_networks_at_32_and_512_px():
    """Shapes at both of study B's settings' extremes, and the reference generator's size pinned."""
    g = councilgan.Generator(64, 2, 5, 64, 256, 3, "adain")
    # encoder 7x7 3->64, 4x4 64->128->256, 5 res blocks at 256; decoder 5 AdaIN res blocks, two upsamplings
    # (256->128->128, 128->64->64), two 1x1 64->64, 1x1 64->12; the MLP 64->256->256->(2 x 2,944 AdaIN channels)
    assert sum(p.numel() for p in g.encoder.parameters()) == 9_472 + 131_200 + 524_544 + 5 * 1_180_160
    assert sum(m.channels for m in g.adain) == 5 * 2 * 256 + 2 * 128 + 2 * 64
    assert g.mlp[-1].out_features == 2 * 2_944
    for size, norm, n in ((32, "adain", 4), (512, "in", 3)):
        m = model({"norm": norm, "n_councils": n, "dis_layers": 4}, size=size)
        x = torch.rand(1, 3, size, size) * 2 - 1
        out, masks = m.networks["G0"](x, torch.randn(1, 4), return_masks=True)
        assert out.shape == x.shape and masks.shape == (1, 3, size, size)
        assert [o.shape[-1] for o in m.networks["D0"](x)] == [size // 16, size // 32]
        assert [o.shape[-1] for o in m.networks["DC0"](x, x)] == [size // 8, size // 16]
        assert len(m.member_networks()) == n
    # InstanceNorm: the style is concatenated to the content (the reference's do_my_style), no AdaIN left
    g_in = councilgan.Generator(64, 2, 5, 64, 256, 3, "in")
    assert not g_in.adain and g_in.decoder[0].body[0][1].in_channels == 256 + 64 and g_in.mlp[-1].out_features == 64


def test_the_mask_blend_keeps_the_input_where_the_mask_is_zero():
    x = torch.rand(2, 3, 8, 8)
    rgb = torch.rand(2, 6, 8, 8)
    assert torch.equal(councilgan.blend(x, rgb, torch.zeros(2, 2, 8, 8)), x)
    assert torch.equal(councilgan.blend(x, rgb, torch.ones(2, 2, 8, 8)), rgb[:, 3:])  # the last mask wins
    m = torch.full((2, 2, 8, 8), 0.25)
    first = 0.75 * x + 0.25 * rgb[:, :3]
    assert torch.allclose(councilgan.blend(x, rgb, m), 0.75 * first + 0.25 * rgb[:, 3:])
    assert councilgan.masks_from(torch.zeros(1)).item() == 0.5  # (tanh(10 x) + 1) / 2
    assert torch.allclose(councilgan.masks_from(torch.tensor([0.1, -0.1])), (torch.tanh(torch.tensor([1.0, -1.0])) + 1) / 2)


def test_the_focus_terms_against_hand_computed_values():
    m = torch.tensor([[[[0.0, 1.0], [0.5, 0.5]]]])
    f = councilgan.focus_terms(m, 0.01)
    assert f["zero_one"].item() == pytest.approx((2 / 0.51 + 2 / 0.01) / 4)
    assert f["total"].item() == pytest.approx(0.5**2)
    assert f["tv"].item() == pytest.approx((0.5 + 0.5 + 1.0 + 0.0) / 4)
    m = torch.tensor([[[[0.0, 1.0, 0.25], [0.5, 0.5, 1.0]]]])  # three wide: each column with its own left neighbour
    vertical, horizontal = 0.5 + 0.5 + 0.75, (1.0 + 0.75) + (0.0 + 0.5)
    assert councilgan.focus_terms(m, 0.01)["tv"].item() == pytest.approx((vertical + horizontal) / 6)


def test_members_differ_and_a_style_code_belongs_to_its_image():
    m = model()
    x = batch(3)["a"]
    outs = [m.translate(g, x) for g in m.member_networks().values()]
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])
    z = councilgan.style_codes(x, 4)
    assert torch.equal(councilgan.style_codes(x[[2, 0]], 4), z[[2, 0]])  # the same code in any batch
    assert not torch.equal(z[0], z[1])
    assert torch.allclose(m.translate(m.ema_network(), x[[1]]), outs[0][[1]], atol=1e-5)
    m2 = model({"member": 2})
    assert m.ema_network() is m.networks["G0"] and m2.ema_network() is m2.networks["G2"]  # the evaluated member


def test_a_style_code_is_drawn_from_the_little_endian_sha256_of_the_images_bytes():
    """The derivation is part of every translated image: changing it changes every published output.
    An image of -1 is 3 x 4 x 4 zero bytes (uint8, C H W); its seed is the first 8 bytes of their SHA-256,
    read little-endian, less the top bit."""
    digest = hashlib.sha256(bytes(48)).digest()
    seed = int.from_bytes(digest[:8], "little") & (2**63 - 1)
    assert seed != int.from_bytes(digest[:8], "big") & (2**63 - 1)
    want = torch.randn(4, generator=torch.Generator().manual_seed(seed))
    assert torch.equal(councilgan.style_codes(-torch.ones(1, 3, 4, 4), 4), want[None])


def test_one_council_and_sizes_the_networks_cannot_take_are_refused():
    with pytest.raises(ValueError, match="n_councils must be at least 2"):
        model({"n_councils": 1})
    with pytest.raises(ValueError, match="member 3 is not one of the 3"):
        model({"member": 3})
    with pytest.raises(ValueError, match="at least 16 px divisible by 4"):
        model(size=8)
    assert_params_error(lambda p: p["translators"]["councilgan"]["net"].update(n_councils=1),
                        r"translators\.councilgan\.net\.n_councils: the council loss compares a member with the others: at least 2")  # fmt: skip
    assert_params_error(lambda p: p["translators"]["councilgan"]["net"].update(member=2), r"translators\.councilgan\.net\.member")
    assert_params_error(lambda p: p["translators"]["councilgan"]["net"].update(dis_layers=5),
                        r"translators\.councilgan\.source\.dataset: Council GAN .* at least 64 px")  # fmt: skip
    assert_params_error(lambda p: p["translators"]["councilgan"]["net"].update(norm="bn"), r"translators\.councilgan\.net\.norm")


# ------------------------------------------------------------------------------------------ losses


def test_council_discriminators_compare_with_others_without_repeating_until_all_were_drawn():
    m = model({"n_councils": 4})
    torch.manual_seed(0)
    for i in range(4):
        picks = m._others(i)
        assert len(picks) == 4 and i not in picks
        assert sorted(picks[:3]) == [j for j in range(4) if j != i]  # every other member once, then again
    assert len(model({"n_councils": 2})._others(0)) == 2  # min(council_dis_iters, n_councils) draws


def test_the_council_starts_at_its_iteration_and_is_rescaled_by_the_loss_histories():
    m = model({"council_start": 3})
    before = {k: v.clone() for k, v in m.networks["DC0"].state_dict().items()}
    logs = m.train_step(batch(), 2, CTX)
    assert "council" not in logs and "d_council" not in logs
    assert all(torch.equal(before[k], v) for k, v in m.networks["DC0"].state_dict().items())  # untouched before the start
    gan0 = list(m.hist_gan[0])
    logs = m.train_step(batch(seed=1), 3, CTX)
    assert "council" in logs and "d_council" in logs
    assert not all(torch.equal(before[k], v) for k, v in m.networks["DC0"].state_dict().items())
    # w = mean(last 100 GAN losses) / mean(last 100 council losses), the histories starting as ones
    w0 = np.mean(m.hist_gan[0]) / np.mean(m.hist_council[0])
    assert len(m.hist_gan[0]) == 100 and list(m.hist_gan[0])[:-1] == gan0[1:]
    assert list(m.hist_council[0])[:-1] == [1.0] * 99
    ws = [np.mean(m.hist_gan[i]) / np.mean(m.hist_council[i]) for i in range(3)]
    assert logs["w_match"] == pytest.approx(np.mean(ws)) and w0 != 1.0
    off = model({"council_start": 0, "loss_matching_history": 0}).train_step(batch(), 0, CTX)
    assert off["w_match"] == 1.0


def test_any_positive_council_weight_turns_the_council_on():
    x = batch(size=16)
    assert "council" in model({"council_w": 0.5, "n_councils": 2}, size=16).train_step(x, 0, CTX)  # 0.5 < 1: still on
    assert "council" not in model({"council_w": 0.0, "n_councils": 2}, size=16).train_step(x, 0, CTX)


def test_a_generator_step_moves_its_output_towards_real_and_towards_the_council():
    """Each of the generator's two adversarial terms, stepped alone with its discriminator frozen (the
    loop's step 3), lowers its own loss: D_0 and the council's D^_0 both call G_0's output "real".  Each
    term alone: summed, the GAN term's gradient (weight 26, its discriminator far from saturated) hides
    the council term's at this untrained start, and their sum moved the council loss by 1e-6 either way
    depending on the installed libraries (a test that flipped between two CI runs)."""
    x = batch(seed=3)
    for term in ("gan", "council"):
        m = model({"lr": 2e-3, "weight_decay": 0.0})
        z = torch.randn(2, 4)
        g, d, dc = m.networks["G0"], m.networks["D0"], m.networks["DC0"]

        def score() -> torch.Tensor:
            out = g(x["a"], z)
            return councilgan.multiscale_lsgan(d(out) if term == "gan" else dc(out, x["a"]), True)

        with torch.no_grad():
            before = score().item()
        for net in (d, dc):
            net.requires_grad_(False)
        for _ in range(15):
            CTX.backward_step(score(), m.optimizers["G0"])
        with torch.no_grad():
            after = score().item()
        # Adam moves every weight by ~lr whatever the gradient's size, so the loss falls at first order: by
        # 4e-4 and 1.6e-5 here (D^_0 barely depends on its input at initialisation); 1e-6 is 4 float32 ulps at 2
        assert after < before - 1e-6, (term, before, after)


def test_a_discriminator_step_labels_its_members_output_fake_and_the_others_real():
    m = model({"lr": 1e-2, "weight_decay": 0.0})
    x = batch(seed=4)
    z = torch.randn(2, 4)
    with torch.no_grad():
        own, other = m.networks["G0"](x["a"], z), m.networks["G1"](x["a"], 0.7 * z)
    dc = m.networks["DC0"]

    def gap():
        with torch.no_grad():
            return sum(o.mean() for o in dc(other, x["a"])).item() - sum(o.mean() for o in dc(own, x["a"])).item()

    g0 = gap()
    for _ in range(15):
        loss = councilgan.multiscale_lsgan(dc(own, x["a"]), False) + councilgan.multiscale_lsgan(dc(other, x["a"]), True)
        CTX.backward_step(loss, m.optimizers["DC0"])
    assert gap() > g0 + 0.2  # D^_0(others) towards 1, D^_0(own) towards 0


def test_the_paired_term_pulls_each_output_towards_its_own_target():
    x = {"a": batch(seed=5)["a"], "b": torch.full((2, 3, 32, 32), -0.5)}  # a target the tiny net can reach in 10 steps
    on = model({"paired_weight": 10.0, "council_start": 100, "gan_w": 0.0, "lr": 1e-2, "weight_decay": 0.0})
    first = on.train_step(x, 0, CTX)["paired"]
    for step in range(1, 10):
        last = on.train_step(x, step, CTX)["paired"]
    assert last < 0.7 * first  # L1(G_i(a), b): each output towards its own row of b
    assert "paired" not in model({"council_start": 100}).train_step(x, 0, CTX)
    assert registry.FAMILIES["councilgan"].needs_pairs({"paired_weight": 1.0})
    assert not registry.FAMILIES["councilgan"].needs_pairs({"paired_weight": 0.0})
    assert registry.FAMILIES["pix2pixhd"].needs_pairs({})


FOCUS_TERMS = {  # each focus term by hand, of one member's masks m (B, n_masks, H, W)
    "mask_zero_one_w": lambda m: float((1.0 / ((m - 0.5).abs() + 0.3)).mean()),  # focus_epsilon 0.3
    "mask_total_w": lambda m: float(m.mean()) ** 2,
    "mask_tv_w": lambda m: float((m[:, :, 1:] - m[:, :, :-1]).abs().sum() + (m[..., 1:] - m[..., :-1]).abs().sum()) / m.numel(),
}


@pytest.mark.parametrize("weight", sorted(FOCUS_TERMS))
def test_the_focus_loss_starts_after_focus_start_with_any_positive_weight_and_its_epsilon(weight):
    """Focus on with only one weight positive (0.5 < 1): 0.5 x that term of each member's masks, averaged over
    the members; the zero-one term ``mean(1 / (|m - 0.5| + focus_epsilon))`` with the configured epsilon."""
    m = model({"n_councils": 2, weight: 0.5, "focus_start": 1, "focus_epsilon": 0.3, "council_start": 100}, size=16)
    x = batch(size=16, seed=6)
    z = torch.randn(2, 4)
    m._z = lambda n, device: z  # every phase of the step draws this code
    assert "focus" not in m.train_step(x, 1, CTX)  # not yet at step == focus_start
    with torch.no_grad():
        masks = [m.networks[f"G{i}"](x["a"], z, return_masks=True)[1] for i in range(2)]
    want = np.mean([0.5 * FOCUS_TERMS[weight](k) for k in masks])
    assert m.train_step(x, 2, CTX)["focus"] == pytest.approx(want, rel=1e-5)


def test_the_lr_halves_every_step_size():
    m = model({"lr_step": 10})
    assert m._set_lr(9) == pytest.approx(1e-4) and m._set_lr(10) == pytest.approx(5e-5) and m._set_lr(25) == pytest.approx(2.5e-5)
    assert m.optimizers["DC2"].param_groups[0]["lr"] == pytest.approx(2.5e-5)


# --------------------------------------------------------------------------------------- the loop


def run_council(tmp, steps: int, ckpt: str, paired: bool = False):
    m = model({"council_start": 1, "loss_matching_history": 3})
    rng = np.random.default_rng(0)
    data = {k: rng.integers(0, 256, (5, 32, 32, 3), dtype=np.uint8) for k in ("a", "b")}
    fp = "councilgan" + json.dumps(NET, sort_keys=True)
    result, _ = train(m, data, loop_cfg(steps, ema_beta=0.0, batch_size=2, paired=paired), CPU, tmp / ckpt, tmp / ckpt / "live",
                      fingerprint=fp, log=lambda msg: None, snapshots=SnapshotStore(tmp / ckpt / "snapshots", fp))  # fmt: skip
    return m, result


def test_resuming_council_gan_equals_an_uninterrupted_run(tmp_path):
    whole, r_whole = run_council(tmp_path, 4, "a")  # the council starts at step 1 and the histories roll over (3)
    run_council(tmp_path, 3, "b")
    resumed, r_resumed = run_council(tmp_path, 4, "b")
    assert r_resumed.resumed_from_step == 3
    for k in whole.networks:
        assert same_weights(whole.networks[k], resumed.networks[k]), k
    assert r_whole.history == r_resumed.history
    assert [list(h) for h in whole.hist_council] == [list(h) for h in resumed.hist_council]
    assert "council" in r_whole.history[-1]


# ---------------------------------------------------------------------------------------- pairs


def test_paired_banks_draw_each_pair_together_with_the_same_flips():
    rng = np.random.default_rng(0)
    a = rng.integers(0, 256, (7, 16, 16, 3), dtype=np.uint8)
    banks = image_banks({"a": a, "b": 255 - a}, "translation", CPU, 3, True, paired=True)
    for step in range(5):
        assert torch.allclose(banks["b"].batch(step, 3), -banks["a"].batch(step, 3), atol=1e-6)
    unpaired = image_banks({"a": a, "b": 255 - a}, "translation", CPU, 3, True)
    assert not all(torch.allclose(unpaired["b"].batch(s, 3), -unpaired["a"].batch(s, 3), atol=1e-6) for s in range(5))
    with pytest.raises(ValueError, match="paired domains need one image each per pair: a has 7, b 6"):
        image_banks({"a": a, "b": a[:6]}, "translation", CPU, 3, True, paired=True)
    # pairing changes the batches: it is in the checkpoint fingerprint, but only when on
    assert "paired" in loop_cfg(2, paired=True).fingerprint_fields()
    assert "paired" not in loop_cfg(2).fingerprint_fields()
    assert LoopConfig.from_params({"seed": 1, "tf32": True, "checkpoint_every_steps": 1, "checkpoint_every_minutes": 1.0, "log_every": 1},
                                  {"steps": 1, "time_budget_hours": 1.0, "batch_size": 1, "seed_offset": 0, "hflip": False,
                                   "precision": "fp32", "track_fid_every": 0, "ema": {"beta": 0.0, "update_after_step": 0, "update_every": 1}},
                                  paired=True).paired  # fmt: skip


def test_a_pair_with_a_missing_partner_or_a_shared_test_image_is_refused_with_its_id(tmp_path):
    def split(name, train, test):
        write_split(tmp_path / f"data/splits/{name}.json", {"dataset": name, "train": sorted(train), "test": sorted(test)})

    t = {"source": {"dataset": "faces", "split": "faces"}, "target": {"dataset": "bodies", "split": "bodies"}}
    ids = ["a" * 16, "b" * 16, "c" * 16]
    split("faces", ids, ["d" * 16])
    split("bodies", ids, ["d" * 16])
    assert pair_ids(tmp_path, "m", t, ids) == ids
    split("bodies", ids[:2], ["d" * 16])
    with pytest.raises(StageError, match=f"1 of 3 faces train images have no partner in bodies's train split, first {'c' * 16}"):
        pair_ids(tmp_path, "m", t, ids)
    split("bodies", ids + ["d" * 16], [])
    with pytest.raises(StageError, match=f"1 faces test image\\(s\\) have their partner in bodies's train split, first {'d' * 16}"):
        pair_ids(tmp_path, "m", t, ids)


def test_pairs_are_checked_before_any_work():
    assert_params_error(lambda p: p["translators"]["councilgan_paired"].update(paired=False),
                        r"translators\.councilgan_paired\.paired: councilgan has a paired term")  # fmt: skip
    assert_params_error(lambda p: p["translators"]["pix2pixhd"].update(paired=False), r"translators\.pix2pixhd\.paired: pix2pixhd trains on pairs")
    assert_params_error(lambda p: p["datasets"]["body_a_shoulders"]["sources"][0].update(seed=6),
                        r"translators\.councilgan_paired\.paired: .* need the same sources")  # fmt: skip
    assert_params_error(lambda p: p["datasets"]["body_a_shoulders"].update(split={"test": 5}),
                        r"translators\.councilgan_paired\.paired: a pair shares its split")  # fmt: skip
