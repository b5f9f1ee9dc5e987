"""CAM-based selection (study C): scores, Grad-CAM batching, the two stages on the demo data, bad inputs."""

from __future__ import annotations

import csv
import json
import math
import shutil
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from conftest import assert_params_error, copy_workspace, dump_yaml, load_yaml
from PIL import Image
from pytorch_grad_cam.utils.image import show_cam_on_image

from animegen import config, paths
from animegen.artifacts import ArtifactError
from animegen.cam import classifier as clf
from animegen.cam import gradcam
from animegen.cam import scores as sc
from animegen.stages import StageError, collect, cutout, resize, split
from animegen.stages import cam_classifier as classifier_stage
from animegen.stages import cam_select as select_stage
from animegen.stages import train as train_stage

DATASETS = ("face_a_early", "face_a_faceless", "face_a_mixed")

# ------------------------------------------------------------------------------------------- scores


def test_region_mass_is_one_inside_the_box_and_the_area_share_when_uniform():
    box = [0.25, 0.25, 0.5, 0.75]
    hot = np.zeros((32, 32))
    hot[8:24, 8:16] = 1.0
    assert sc.region_mass(hot, [box]) == pytest.approx(1.0)
    assert sc.area_share([box], 32, 32) == pytest.approx(0.25 * 0.5)
    assert sc.region_mass(np.ones((32, 32)), [box]) == pytest.approx(0.125)
    # two overlapping boxes count their union once
    assert sc.region_mass(np.ones((32, 32)), [box, box]) == pytest.approx(0.125)
    half = hot.copy()
    half[0:8, :] = 1.0  # the same mass again outside the box: 128 in, 256 out
    assert sc.region_mass(half, [box]) == pytest.approx(128 / (128 + 256))


def test_topk_mass_and_entropy_measure_concentration():
    flat = np.ones((10, 10))
    spike = np.zeros((10, 10))
    spike[3, 4] = 1.0
    assert sc.topk_mass(flat, 10) == pytest.approx(0.1)
    assert sc.topk_mass(spike, 10) == pytest.approx(1.0)
    assert sc.entropy(flat) == pytest.approx(1.0)
    assert sc.entropy(spike) == pytest.approx(0.0)
    two = np.zeros((10, 10))
    two[0, :2] = 1.0
    assert sc.entropy(two) == pytest.approx(math.log(2) / math.log(100))


def test_a_map_without_mass_has_no_score_and_is_never_selected():
    empty = np.zeros((8, 8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # decided, not computed as 0 / 0 (numpy's "invalid value" warning)
        assert all(math.isnan(sc.score(empty, m, [[0, 0, 1, 1]])) for m in sc.SCORES)
    assert sc.select(["a", "b", "c"], [0.2, math.nan, 0.5], "region_mass", "threshold", threshold=0.0) == ["c", "a"]
    with pytest.raises(ValueError, match="only 2 have a score"):
        sc.select(["a", "b", "c"], [0.2, math.nan, 0.5], "region_mass", "top_n", n=3)


@pytest.mark.parametrize("bad, message", [
    (np.ones((2, 2, 2)), r"^a map is 2-D \(H, W\), got shape \(2, 2, 2\)$"),
    (-np.ones((4, 4)), "^a map must be finite and non-negative$"),
    (np.full((4, 4), np.nan), "^a map must be finite and non-negative$"),
])  # fmt: skip
def test_malformed_maps_are_refused(bad, message):
    with pytest.raises(ValueError, match=message):
        sc.region_mass(bad, [[0, 0, 1, 1]])


def test_maps_are_summed_in_float64():
    """A half-precision map of large values (finite in float16) would overflow its own sum."""
    assert sc.region_mass(np.full((4, 4), 6e4, np.float16), [[0, 0, 0.5, 1]]) == 0.5
    assert sc.topk_mass(np.full((4, 4), 6e4, np.float16), 25) == 0.25


def test_selection_ranks_by_concentration_with_stable_ties():
    ids, values = ["d", "a", "c", "b"], [0.3, 0.9, 0.3, 0.1]
    assert sc.select(ids, values, "topk_mass", "top_n", n=3) == ["a", "c", "d"]
    assert sc.select(ids, values, "entropy", "top_n", n=2) == ["b", "c"]  # lower entropy is more concentrated
    assert sc.select(ids, values, "entropy", "threshold", threshold=0.3) == ["b", "c", "d"]
    control = sc.random_control(ids, 2, seed=7)
    assert control == sc.random_control(list(reversed(ids)), 2, seed=7) and len(set(control)) == 2
    assert control != sc.random_control(ids, 2, seed=8) or sc.random_control(ids, 2, seed=9) != control


def test_box_edges_are_pixel_centres_start_inclusive_end_exclusive():
    """4 rows: centres 0.125, 0.375, 0.625, 0.875; a box [.., 0.375, .., 0.625] holds row 1 only."""
    mask = sc.box_mask([[0.375, 0.375, 0.625, 0.625]], 4, 4)
    assert mask.sum() == 1 and mask[1, 1]
    assert sc.box_mask([[0.0, 0.0, 0.375, 1.0]], 4, 4)[:, 0].all() and not sc.box_mask([[0.0, 0.0, 0.375, 1.0]], 4, 4)[:, 1:].any()
    wide = sc.box_mask([[0.0, 0.5, 1.0, 1.0]], 2, 4)  # rows and columns are not swapped on a non-square map
    assert wide.tolist() == [[False] * 4, [True] * 4]


def test_topk_counts_a_partial_pixel_as_a_whole_one_and_never_less_than_one():
    cam = np.arange(100, dtype=float).reshape(10, 10)  # 0..99, total 4950
    assert sc.topk_mass(cam, 1.2) == pytest.approx((99 + 98) / 4950)  # 1.2 pixels -> the top 2
    assert sc.topk_mass(cam, 2.01) == pytest.approx((99 + 98 + 97) / 4950)  # 2.01 % of 100 pixels: 3
    assert sc.topk_mass(cam, 0.0) == pytest.approx(99 / 4950)  # at least the hottest pixel
    assert sc.topk_mass(cam, 100.0) == pytest.approx(1.0)
    assert sc.entropy(np.ones((1, 1))) == 0.0  # one pixel: log(1) would divide by zero


def test_select_modes_boundaries_and_refusals():
    ids, values = ["a", "b", "c"], [0.5, 0.7, 0.2]
    assert sc.select(ids, values, "region_mass", "threshold", threshold=0.5) == ["b", "a"]  # at the threshold: kept
    assert sc.select(ids, values, "entropy", "threshold", threshold=0.5) == ["c", "a"]
    assert sc.select(ids, values, "region_mass", "top_n", n=3) == ["b", "a", "c"]  # n == the scored count
    assert sc.select(ids, values, "region_mass", "top_n", n=1) == ["b"]  # one image is a selection
    for kwargs, message in [({"n": 0}, "^top_n needs n >= 1$"), ({}, "^top_n needs n >= 1$")]:
        with pytest.raises(ValueError, match=message):
            sc.select(ids, values, "region_mass", "top_n", **kwargs)
    with pytest.raises(ValueError, match="^threshold mode needs a threshold$"):
        sc.select(ids, values, "region_mass", "threshold")
    with pytest.raises(ValueError, match="unknown selection mode 'best'"):
        sc.select(ids, values, "region_mass", "best", n=1)
    with pytest.raises(ValueError, match="^one score per id$"):
        sc.select(ids, values[:2], "region_mass", "top_n", n=1)
    with pytest.raises(ValueError, match="^unknown score 'mass'; expected one of region_mass, topk_mass, entropy$"):
        sc.score(np.ones((2, 2)), "mass")
    assert sc.random_control(ids, 3, seed=0) == ["a", "b", "c"]  # all of them is allowed
    with pytest.raises(ValueError, match="cannot draw 4 of 3"):
        sc.random_control(ids, 4, seed=0)
    assert sc.score(np.eye(4), "topk_mass", topk_percent=25.0) == pytest.approx(1.0)  # the percent reaches the score
    ramp = np.arange(100, dtype=float).reshape(10, 10)
    assert sc.score(ramp, "topk_mass") == pytest.approx(sum(range(90, 100)) / 4950)  # 10 % by default
    assert sc.score(np.eye(4), "region_mass", boxes=[[0, 0, 0.5, 0.5]]) == pytest.approx(0.5)


def test_spearman_is_the_rank_correlation_and_undefined_when_constant():
    assert sc.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert sc.spearman([1, 2, 3, 4], [4, 1, 2, 3]) == pytest.approx(-0.2)  # ranks, not values
    assert sc.spearman([1.5, 3, 1.5], [1, 3, 2]) == pytest.approx(math.sqrt(3) / 2)  # average ranks for ties
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # decided before scipy, which would warn (ConstantInputWarning) into the stage's log
        assert math.isnan(sc.spearman([1], [2])) and math.isnan(sc.spearman([1, 1], [1, 2])) and math.isnan(sc.spearman([1, 2], [3, 3]))
        assert math.isnan(sc.spearman([5, 5, 5], [1, 2, 3])) and math.isnan(sc.spearman([1, 2, 3], [4, 4, 4]))


def _evidence_case(method: str = "region_mass"):
    """Four images with recorded parts and clarity, one without a score (c, an empty map)."""
    from animegen.cam import selection  # noqa: PLC0415

    parts = {"left_eye": [0, 0, 0.5, 0.5], "right_eye": [0.5, 0, 1, 0.5], "mouth": [0, 0.5, 0.5, 1]}  # 3/4 of the area
    cams = np.zeros((4, 4, 4))
    cams[0] = 1.0  # a: uniform, 3/4 of its mass on the parts
    cams[1, 3, 3] = 1.0  # b: all of it off the parts (the bottom-right quarter)
    cams[3, 0, 0] = 1.0  # d: all of it on the left eye; c has no mass
    extras = {i: {"parts": parts, "clarity": c} for i, c in zip("abcd", (1, 6, 2, 3))}
    values = [0.5, 0.9, math.nan, 0.5]
    return selection.evidence(list("abcd"), values, [0.1, 0.2, 0.3, 0.4], cams, extras, ["b", "a"], ["c", "d"], method)


def test_the_selection_evidence_on_a_hand_computed_case():
    rows, metrics, rank = _evidence_case()
    assert rank == {"b": 1, "a": 2, "d": 3, "c": 4}  # unscored last, the tie a/d broken by id
    assert [r["id"] for r in rows] == ["b", "a", "d", "c"]
    assert rows[0] == {"rank": 1, "id": "b", "score": 0.9, "selected": True, "random_control": False, "p_target": 0.2,
                       "parts_mass": 0.0, "parts_area": 0.75, "clarity": 6}  # fmt: skip
    assert rows[3] == {"rank": 4, "id": "c", "score": None, "selected": False, "random_control": True, "p_target": 0.3,
                       "parts_mass": None, "parts_area": 0.75, "clarity": 2}  # fmt: skip
    assert [r["parts_mass"] for r in rows] == [0.0, 0.75, 1.0, None]
    assert metrics == {
        "n_images": 4, "n_selected": 2, "n_unscored": 1, "cutoff_score": 0.5,
        "score_mean_all": round((0.5 + 0.9 + 0.5) / 3, 6), "score_mean_selected": 0.7, "score_mean_random": 0.5,
        "higher_is_more_concentrated": True, "p_target_mean": 0.25,
        "parts_mass_mean": round(1.75 / 3, 6), "parts_area_mean": 0.75, "parts_mass_over_area": round(1.75 / 3 / 0.75, 6),
        "clarity_mean_all": 3.0, "clarity_mean_selected": 3.5, "clarity_mean_random": 2.5,
        # over the three scored images (c has no score): ranks (1.5, 3, 1.5) against clarity's (1, 3, 2)
        "spearman_score_clarity": round(math.sqrt(3) / 2, 6),
    }  # fmt: skip


def test_the_evidence_follows_the_scores_direction_and_what_the_manifest_records():
    from animegen.cam import selection  # noqa: PLC0415

    rows, metrics, rank = _evidence_case("entropy")  # lower is more concentrated: the order and the sign flip
    assert rank == {"a": 1, "d": 2, "b": 3, "c": 4}
    assert metrics["higher_is_more_concentrated"] is False
    assert metrics["spearman_score_clarity"] == round(-math.sqrt(3) / 2, 6)
    cams = np.ones((2, 4, 4))
    no_parts = {"a": {"parts": {"left_eye": [0, 0, 1, 1]}, "clarity": 1}, "b": {"clarity": 2}}  # mouth, eyes missing
    rows, metrics, _ = selection.evidence(["a", "b"], [0.2, 0.4], [0.5, 0.5], cams, no_parts, ["b"], ["a"], "topk_mass")
    assert not any(k.startswith("parts_") for k in metrics) and all(r["parts_mass"] is r["parts_area"] is None for r in rows)
    assert metrics["spearman_score_clarity"] == 1.0 and metrics["cutoff_score"] == 0.4
    rows, metrics, _ = selection.evidence(["a", "b"], [0.2, 0.4], [0.5, 0.5], cams, {"a": {"clarity": 1}}, ["b"], ["a"], "topk_mass")
    assert not any(k.startswith("clarity") or k.startswith("spearman") for k in metrics)  # b records no clarity
    rows, metrics, _ = selection.evidence(["a", "b"], [0.2, 0.4], [0.5, 0.5], cams, {}, ["b"], ["a"], "topk_mass")
    assert [r["clarity"] for r in rows] == [None, None] and "parts_mass_mean" not in metrics  # nothing recorded at all
    flat = {i: {"parts": dict.fromkeys(selection.PARTS, [0.5, 0.5, 0.5, 0.5])} for i in "ab"}  # boxes of no area
    _, metrics, _ = selection.evidence(["a", "b"], [0.2, 0.4], [0.5, 0.5], cams, flat, ["b"], ["a"], "topk_mass")
    assert (metrics["parts_area_mean"], metrics["parts_mass_mean"], metrics["parts_mass_over_area"]) == (0.0, 0.0, None)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an empty control is "no mean", not numpy's mean of an empty slice
        _, metrics, _ = selection.evidence(["a", "b"], [0.2, 0.4], [0.5, 0.5], cams, {}, ["b"], [], "topk_mass")
    assert metrics["score_mean_random"] is None and metrics["score_mean_selected"] == 0.4


def test_regions_are_fixed_boxes_or_the_images_recorded_parts():
    from animegen.cam import selection  # noqa: PLC0415

    extras = {"a": {"parts": {"mouth": [1, 2, 3, 4]}}, "b": {"parts": {"mouth": ["0.5", 0, 1, 1], "nose": [0, 0, 1, 1]}}}
    assert selection.regions_per_image(["mouth", [0, 0, 0.5, 0.5]], ["a", "b"], extras) == [
        [[1.0, 2.0, 3.0, 4.0], [0.0, 0.0, 0.5, 0.5]], [[0.5, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 0.5]]]
    with pytest.raises(ValueError, match=r"image b has no part 'eye' in its manifest \(recorded: mouth, nose\)"):
        selection.regions_per_image(["eye"], ["b"], extras)
    with pytest.raises(ValueError, match=r"image c has no part 'eye' .*\(recorded: none\)"):
        selection.regions_per_image(["eye"], ["c"], extras)


# --------------------------------------------------------------------------------------- Grad-CAM


def _tiny_net(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = clf.build("small_cnn", 4, 2)
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    return net


def test_batched_grad_cam_equals_one_image_at_a_time():
    net = _tiny_net()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (6, 16, 16, 3), dtype=np.uint8)
    layer = clf.target_layer(net, "blocks.1")
    batched, p_batched = gradcam.maps(net, layer, images, "small_cnn", 1, torch.device("cpu"), batch_size=6)
    single, p_single = gradcam.maps(net, layer, images, "small_cnn", 1, torch.device("cpu"), batch_size=1)
    assert batched.shape == (6, 16, 16) and batched.dtype == np.float32
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(p_batched, p_single, atol=1e-6)
    # one target per image: every image gets its own map (the library's one-element-list pitfall explains image 0 only)
    assert all(not np.allclose(batched[0], batched[k]) for k in range(1, 6))
    assert batched.min() >= 0 and batched.max() <= 1 + 1e-6


def test_an_unknown_target_layer_lists_real_ones():
    with pytest.raises(ValueError, match="no layer 'blocks.9'.*blocks"):
        clf.target_layer(_tiny_net(), "blocks.9")
    # a deep network: the message names its first 12 Sequential or Conv2d layers, not all of them
    with pytest.raises(ValueError) as info:
        clf.target_layer(clf.build("resnet18"), "layer9")
    listed = str(info.value).split("(some layers: ", 1)[1].rstrip(")").split(", ")
    assert listed == ["conv1", "layer1", "layer1.0.conv1", "layer1.0.conv2", "layer1.1.conv1", "layer1.1.conv2", "layer2",
                      "layer2.0.conv1", "layer2.0.conv2", "layer2.0.downsample", "layer2.0.downsample.0", "layer2.1.conv1"]


def test_float_images_are_normalised_as_each_arch_was_trained():
    x = torch.rand(2, 3, 5, 4, generator=torch.Generator().manual_seed(0))
    assert torch.equal(clf.prepare_float(x, "small_cnn"), x * 2 - 1)  # the small CNN: [-1, 1]
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])  # ImageNet's, per channel
    want = (x - mean[None, :, None, None]) / std[None, :, None, None]
    assert torch.allclose(clf.prepare_float(x, "resnet18"), want, atol=1e-6)


def test_torchvision_backbones_build_with_a_two_class_head_and_refuse_foreign_weights(tmp_path):
    net = clf.build("resnet18")
    assert net.fc.out_features == 2 and clf.default_target_layer("resnet18", 3) == "layer4"
    weights = tmp_path / "w.pt"
    torch.save(clf.build("resnet18").state_dict(), weights)
    clf.build("resnet18", weights=weights)  # a resnet18 state dict (its fc is replaced) loads
    torch.save({"conv.weight": torch.zeros(1)}, weights)
    with pytest.raises(ValueError, match="not a resnet18 state dict"):
        clf.build("resnet18", weights=weights)


# ------------------------------------------------------------------------------------ stages, demo


@pytest.fixture(scope="module")
def ws(tmp_path_factory) -> Path:
    """The demo's three CAM datasets through collect -> split, the demo classifier and selection."""
    ws = copy_workspace(tmp_path_factory.mktemp("cam") / "ws")
    params = load_yaml(ws / "params.yaml")
    params["datasets"] = {k: params["datasets"][k] for k in DATASETS}
    params["datasets"]["face_a_early"]["sources"] = params["datasets"]["face_a_early"]["sources"][:1]
    params["models"] = {k: params["models"][k] for k in ("dcgan_cam", "dcgan_cam_random")}
    params["cam_classifier"] = {"face_parts": params["cam_classifier"]["face_parts"]}
    params["cam_select"] = {"face_a_cam": params["cam_select"]["face_a_cam"]}
    params["translators"], params["survey"]["models"] = {}, []  # study C's translators: tests/test_translation.py
    params["derive"].update(edge_smooth=[], faces={})  # and study D's derived data
    params["compare"]["pairs"] = {}
    params["cam"]["cpu_threads"] = 1
    params["train"]["cpu_threads"] = 1
    dump_yaml(params, ws / "params.yaml")
    p = config.load_params(ws / "params.yaml")
    for ds in DATASETS:
        for stage in (collect, cutout, resize, split):
            stage.run(p, ds, ws)
    classifier_stage.run(p, "face_parts", ws)
    select_stage.run(p, "face_a_cam", ws)
    return ws


def _params(ws: Path) -> dict:
    return config.load_params(ws / "params.yaml")


def _metrics(ws: Path) -> dict:
    """The selection's record (selection.json: names, settings, counts and the evidence); its metrics
    file holds the evidence's numbers only."""
    record = json.loads((ws / paths.CAM_SELECTION.format(selection="face_a_cam") / "selection.json").read_text())
    numbers = json.loads((ws / paths.CAM_SELECTION_METRICS.format(selection="face_a_cam")).read_text())
    assert numbers == {k: record[k] for k in numbers} and "n_selected" not in numbers and "cutoff_score" in numbers
    return record


def test_the_classifier_separates_the_classes_on_held_out_images(ws):
    m = json.loads((ws / paths.CAM_CLASSIFIER.format(classifier="face_parts") / "train.json").read_text())
    numbers = json.loads((ws / paths.CAM_CLASSIFIER_METRICS.format(classifier="face_parts")).read_text())
    assert numbers == {k: m[k] for k in ("accuracy", "balanced_accuracy", "accuracy_positive", "accuracy_negative",
                                         "train_accuracy", "final_loss")}  # fmt: skip
    assert m["n_test"]["positive"] > 0 and m["n_test"]["negative"] > 0
    assert m["balanced_accuracy"] >= 0.9, m
    blob = torch.load(ws / paths.CAM_CLASSIFIER.format(classifier="face_parts") / "classifier.pt", weights_only=True)
    assert blob["classes"] == {"0": "face_a_faceless", "1": "face_a_early"} and blob["default_target_layer"] == "blocks.1"


def test_cam_mass_falls_on_the_drawn_parts_and_selection_prefers_clear_parts(ws):
    m = _metrics(ws)
    # the CAM of "has a face" concentrates on the eyes and mouth the generator drew ...
    assert m["parts_mass_mean"] > 2.5 * m["parts_area_mean"], m
    # ... and the most concentrated images are those whose parts are drawn clearly
    assert m["spearman_score_clarity"] > 0.15, m
    # (not by construction: the top-n by CAM score beats a random n on score, but clarity is the
    # generator's hidden truth, which the selection never sees)
    assert m["clarity_mean_selected"] > m["clarity_mean_random"] + 0.05, m


def test_scores_csv_ranks_every_image_and_the_splits_hold_the_selection(ws):
    p = _params(ws)["cam_select"]["face_a_cam"]
    with open(ws / paths.CAM_SELECTION.format(selection="face_a_cam") / "scores.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    base = json.loads((ws / paths.SPLIT.format(dataset="face_a_mixed")).read_text())
    assert sorted(r["id"] for r in rows) == sorted(base["train"])
    scores = [float(r["score"]) for r in rows]
    assert [int(r["rank"]) for r in rows] == list(range(1, len(rows) + 1)) and scores == sorted(scores, reverse=True)
    kept = [r["id"] for r in rows if r["selected"] == "True"]
    assert kept == [r["id"] for r in rows[: p["n"]]]
    sel = json.loads((ws / paths.CAM_SPLIT.format(selection="face_a_cam")).read_text())
    ctl = json.loads((ws / paths.CAM_RANDOM_SPLIT.format(selection="face_a_cam")).read_text())
    assert sel["train"] == sorted(kept) and sel["test"] == ctl["test"] == base["test"]
    assert len(ctl["train"]) == p["n"] and set(ctl["train"]) <= set(base["train"]) and ctl["train"] != sel["train"]
    assert sorted(r["id"] for r in rows if r["random_control"] == "True") == ctl["train"]
    for name in ("overlay_top.png", "overlay_bottom.png"):
        with Image.open(ws / paths.CAM_SELECTION.format(selection="face_a_cam") / name) as im:
            assert im.size == (8 * 128, 2 * (128 + 14))  # 16 tiles of 128 px, a label row each


def test_selection_is_reproducible(ws, tmp_path):
    out = ws / paths.CAM_SELECTION.format(selection="face_a_cam")
    before = {f.name: f.read_bytes() for f in out.iterdir()}
    select_stage.run(_params(ws), "face_a_cam", ws)
    assert {f.name: f.read_bytes() for f in out.iterdir()} == before


def test_a_model_trains_on_the_selection(ws):
    params = load_yaml(ws / "params.yaml")
    m = params["models"]["dcgan_cam"]
    m["train"].update(steps=2, batch_size=4)
    m["net"].update(nz=8, ngf=4, ndf=4)
    dump_yaml(params, ws / "params.yaml")
    try:
        train_stage.run(_params(ws), "dcgan_cam", ws)
    finally:
        shutil.rmtree(ws / "data/checkpoints", ignore_errors=True)
    summary = json.loads((ws / paths.MODEL.format(model="dcgan_cam") / "train.json").read_text())
    assert summary["split"] == "face_a_cam" and summary["n_train_images"] == _params(ws)["cam_select"]["face_a_cam"]["n"]


# ------------------------------------------------------------------------------------ bad inputs


def _edited(ws: Path, tmp_path: Path, edit) -> tuple[Path, dict]:
    """A copy of the fixture workspace (outputs included) with params changed by ``edit``."""
    copy = tmp_path / "ws"
    shutil.copytree(ws, copy)
    params = load_yaml(copy / "params.yaml")
    edit(params)
    dump_yaml(params, copy / "params.yaml")
    return copy, config.load_params(copy / "params.yaml")


def test_a_class_with_too_few_images_stops_the_classifier(ws, tmp_path):
    copy, p = _edited(ws, tmp_path, lambda q: q["cam_classifier"]["face_parts"].update(min_train_images=500))
    with pytest.raises(StageError, match=r"class positive \(face_a_early\) has \d+ train images, fewer than "
                                         r"cam_classifier.face_parts.min_train_images = 500"):  # fmt: skip
        classifier_stage.run(p, "face_parts", copy)


def test_a_corrupt_image_stops_the_classifier_and_names_it(ws, tmp_path):
    copy, p = _edited(ws, tmp_path, lambda q: None)
    victim = json.loads((copy / paths.SPLIT.format(dataset="face_a_faceless")).read_text())["train"][3]
    (copy / paths.PROCESSED.format(dataset="face_a_faceless") / "images" / f"{victim}.png").write_bytes(b"\x89PNG broken")
    before = (copy / paths.CAM_CLASSIFIER_METRICS.format(classifier="face_parts")).read_bytes()
    with pytest.raises(ArtifactError, match=rf"face_a_faceless/images/{victim}\.png: cannot be read"):
        classifier_stage.run(p, "face_parts", copy)
    assert (copy / paths.CAM_CLASSIFIER_METRICS.format(classifier="face_parts")).read_bytes() == before


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda s: s.update(n=10_000), r"cam_select.face_a_cam.n: top_n asks for 10000 images"),
        (lambda s: s.update(select="threshold", n=None, threshold=0.99), r"cam_select.face_a_cam.threshold: no image reaches 0.99"),
        (lambda s: s.update(regions=["left_eye", "tail"]), r"cam_select.face_a_cam.regions: image \w+ has no part 'tail'"),
        (lambda s: s.update(target_layer="blocks.7"), r"cam_select.face_a_cam.target_layer: no layer 'blocks.7'"),
    ],
    ids=["n-too-large", "threshold-too-strict", "unknown-part", "unknown-layer"],
)  # fmt: skip
def test_bad_selections_stop_with_the_key(ws, tmp_path, edit, message):
    copy, p = _edited(ws, tmp_path, lambda q: edit(q["cam_select"]["face_a_cam"]))
    with pytest.raises(StageError, match=message):
        select_stage.run(p, "face_a_cam", copy)


def test_a_confidence_floor_excludes_images_from_the_selection_and_the_control(ws, tmp_path):
    """Study C's "recognisable as a face": below min_confidence an image is neither kept nor drawn."""
    rows = list(csv.DictReader(open(ws / paths.CAM_SELECTION.format(selection="face_a_cam") / "scores.csv", newline="")))
    ps = sorted({float(r["p_target"]) for r in rows})  # rounded in the file: a floor between two of them
    floor = (ps[len(ps) // 2 - 1] + ps[len(ps) // 2]) / 2
    copy, p = _edited(ws, tmp_path, lambda q: q["cam_select"]["face_a_cam"].update(min_confidence=floor, n=5))
    select_stage.run(p, "face_a_cam", copy)
    rows = list(csv.DictReader(open(copy / paths.CAM_SELECTION.format(selection="face_a_cam") / "scores.csv", newline="")))
    low = {r["id"] for r in rows if float(r["p_target"]) < floor}
    assert low and {r["id"] for r in rows if r["confident"] == "False"} == low
    chosen = {r["id"] for r in rows if r["selected"] == "True" or r["random_control"] == "True"}
    assert len(chosen) > 5 and not chosen & low
    m = _metrics(copy)
    assert m["n_below_confidence"] == len(low) and m["min_confidence"] == floor
    copy, p = _edited(ws, tmp_path / "all", lambda q: q["cam_select"]["face_a_cam"].update(min_confidence=1.0))
    with pytest.raises(StageError, match=r"cam_select\.face_a_cam\.n: .* 0 at or above min_confidence 1\.0"):
        select_stage.run(p, "face_a_cam", copy)


def test_an_image_exactly_at_the_confidence_floor_is_recognisable(ws, tmp_path, monkeypatch):
    """The floor is inclusive: p(target) == min_confidence counts, the next float below it does not."""
    floor = 0.5
    real = gradcam.maps

    def maps(*args, **kwargs):
        cams, p = real(*args, **kwargs)
        p = np.asarray(p, dtype=np.float64).copy()
        p[:] = 0.9
        p[0], p[1] = floor, np.nextafter(floor, 0.0)
        return cams, p

    monkeypatch.setattr(gradcam, "maps", maps)  # the stage imports the module when it runs
    copy, params = _edited(ws, tmp_path, lambda q: q["cam_select"]["face_a_cam"].update(min_confidence=floor, n=5))
    select_stage.run(params, "face_a_cam", copy)
    rows = list(csv.DictReader(open(copy / paths.CAM_SELECTION.format(selection="face_a_cam") / "scores.csv", newline="")))
    # with a strict floor the image at exactly 0.5 would be excluded too: two below instead of one
    assert len(rows) >= 3 and [r["confident"] for r in rows].count("False") == 1
    assert _metrics(copy)["n_below_confidence"] == 1


def test_other_scores_and_fixed_boxes_run(ws, tmp_path):
    def edit(q):
        q["cam_select"]["face_a_cam"].update(score="entropy", regions=[[0.2, 0.3, 0.8, 0.7]], n=5)

    copy, p = _edited(ws, tmp_path, edit)
    select_stage.run(p, "face_a_cam", copy)
    m = _metrics(copy)
    assert m["score"] == "entropy" and not m["higher_is_more_concentrated"] and m["n_selected"] == 5
    assert m["score_mean_selected"] < m["score_mean_all"]


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda p: p["cam_select"]["face_a_cam"].update(classifier="nope"), r"cam_select.face_a_cam.classifier: no such classifier 'nope'"),
        (lambda p: p["cam_classifier"]["face_parts"].update(negative="face_a_early"), r"cam_classifier.face_parts.negative: the same dataset"),
        (lambda p: (p["datasets"]["body_a"].update(size=48), p["cam_classifier"]["face_parts"].update(negative="body_a")), r"cam_classifier.face_parts: the two classes have different sizes"),
        (lambda p: p["cam_classifier"]["face_parts"].update(arch="vgg"), r"cam_classifier.face_parts.arch: 'vgg' is not one of"),
        (lambda p: p["cam_classifier"]["face_parts"].update(weights="w.pt"), r"cam_classifier.face_parts.weights: small_cnn has no pretrained"),
        (lambda p: p["cam_classifier"]["face_parts"].update(arch="resnet18", weights="missing.pt"), r"cam_classifier.face_parts.weights: no such file"),
        (lambda p: p["cam_select"]["face_a_cam"].update(n=None), r"cam_select.face_a_cam.n: select top_n needs n"),
        (lambda p: p["cam_select"]["face_a_cam"].update(regions=[[0.5, 0.1, 0.2, 0.3]]), r"cam_select.face_a_cam.regions\[0\]: a box is"),
        (lambda p: p["cam_select"]["face_a_cam"].update(regions=[[0.5, 0.1, 1.2, 0.3]]), r"cam_select.face_a_cam.regions\[0\]"),
        (lambda p: p["cam_select"]["face_a_cam"].update(score="gini"), r"cam_select.face_a_cam.score: 'gini' is not one of"),
        (lambda p: p["cam_select"].update(face_a_later=p["cam_select"]["face_a_cam"]), r"cam_select.face_a_later: 'face_a_later' would name two splits"),
        (lambda p: p["models"]["dcgan"].update(split="face_a_cam"), r"models.dcgan.split: 'face_a_cam' is not a split of dataset 'face_a_early'"),
        (lambda p: p["models"]["dcgan_cam"].update(split="face_a_cam_control"), r"models.dcgan_cam.split: .*usable: face_a_mixed, face_a_cam, face_a_cam_random"),
        (lambda p: p["datasets"]["face_a_mixed"]["sources"][0].update(parts_clarity=[0.9, 0.1]), r"datasets.face_a_mixed.sources\[0\].parts_clarity: a range is"),
    ],
)  # fmt: skip
def test_bad_cam_params_name_the_key(mutate, message):
    assert_params_error(mutate, message)


def test_the_overlay_sheet_blends_each_map_half_and_half_outlines_regions_in_white_and_labels_below():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 16, 16, 3), dtype=np.uint8)
    cams = rng.random((3, 16, 16)).astype(np.float32)
    sheet = gradcam.overlay_grid(images, cams, ["a", "b", "c"], boxes=[[[0.25, 0.25, 0.75, 0.75]], [], []], cols=2, tile=32)
    assert sheet.size == (2 * 32, 2 * (32 + 14))  # two columns, two rows of a tile and its 14 px label band
    a = np.asarray(sheet).astype(int)
    for k, (x, y) in enumerate([(0, 0), (32, 0), (0, 46)]):
        img = cv2.resize(images[k], (32, 32), interpolation=cv2.INTER_NEAREST).astype(np.float32) / 255.0
        heat = cv2.resize(cams[k], (32, 32), interpolation=cv2.INTER_LINEAR)
        blend = show_cam_on_image(img, heat, use_rgb=True, image_weight=0.5).astype(int)
        tile = a[y:y + 32, x:x + 32]
        if k:
            assert np.array_equal(tile, blend), k
        else:  # the region's outline: the box's edge pixels (8..23) white, the rest the blend
            ring = np.zeros((32, 32), bool)
            ring[8:24, 8:24] = True
            ring[9:23, 9:23] = False
            assert (tile[ring] == 255).all() and np.array_equal(tile[~ring], blend[~ring])
        band = a[y + 32:y + 46, x:x + 32]
        assert (band == band[..., :1]).all() and 150 < band.max() <= 230  # the label, in (anti-aliased) light grey
    assert not a[46:, 32:].any()  # the unused fourth cell stays black
