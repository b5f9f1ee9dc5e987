"""cutout, resize and split on hand-made images with known answers."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image, ImageDraw

from animegen.data.cutout import (
    CutoutParams,
    OnnxSegmenter,
    _checks_at_work_size,
    flood_background,
    plausibility,
    remove_background,
)
from animegen.data.resize import ResizeParams, pad_and_resize, pad_to_square
from animegen.data.split import split_ids, split_key
from animegen.io import Rejected


def figure(bg: str, w=120, h=160, seed=0):
    """A figure with a dark outline and a white belly (white inside the outline must stay foreground)."""
    rng = np.random.default_rng(seed)
    if bg == "plain":
        base = np.full((h, w, 3), (235, 225, 180), np.uint8)
    elif bg == "gradient":
        t = np.linspace(0, 1, h)[:, None, None]
        base = ((1 - t) * np.array([240, 240, 250]) + t * np.array([190, 205, 230])).repeat(w, 1).astype(np.uint8)
    elif bg == "stripes":  # every stripe touches the border: flood fill still covers it
        yy, xx = np.mgrid[0:h, 0:w]
        stripes = ((xx + yy) // 6 % 2)[..., None] * np.array([40, 30, 0])
        base = np.clip(np.array([150, 190, 150]) + stripes + rng.normal(0, 1, (h, w, 3)), 0, 255).astype(np.uint8)
    else:  # speckle: high-contrast noise that no flood fill can follow
        speck = (rng.random((h, w, 1)) < 0.75) * rng.integers(-70, 70, (h, w, 3))
        base = np.clip(np.array([150, 190, 150]) + speck, 0, 255).astype(np.uint8)
    img = Image.fromarray(base)
    d = ImageDraw.Draw(img)
    box = (25, 20, w - 25, h - 20)
    d.ellipse(box, fill=(200, 60, 90), outline=(20, 10, 30), width=3)
    d.ellipse((45, 60, w - 45, h - 50), fill=(255, 255, 255))
    truth = Image.new("L", (w, h), 0)
    ImageDraw.Draw(truth).ellipse(box, fill=255)
    return img, np.asarray(truth) > 127


def iou(a, b):
    return (a & b).sum() / (a | b).sum()


@pytest.mark.parametrize("bg, method, min_iou", [
    ("plain", "floodfill", 0.97), ("plain", "grabcut", 0.95), ("gradient", "grabcut", 0.95), ("stripes", "grabcut", 0.95),
    ("speckle", "grabcut", 0.9),
])  # fmt: skip
def test_classical_cutout_finds_the_figure(bg, method, min_iou):
    img, truth = figure(bg)
    cut = remove_background(img, CutoutParams(method=method))
    fg = cut.mask > 127
    assert iou(fg, truth) >= min_iou, (bg, method, iou(fg, truth))
    assert fg[80, 60], "the white belly inside the outline must stay foreground"
    assert (cut.rgb[~fg] == 0).all(), "background must be black"
    # when flood fill cannot follow the background, GrabCut starts from a rectangle: recorded, not hidden
    expected = {"plain": method, "gradient": method, "speckle": "grabcut_rect"}
    assert cut.method == expected.get(bg, cut.method)


def test_a_figure_cut_by_the_frame_is_measured_at_grabcuts_rectangle_when_no_flood_follows_the_background():
    """GrabCut from a rectangle can never keep the band outside it, so the border measure moves inside:
    a figure running off the bottom edge shows along the rectangle's edge (measured at the image's own
    frame it would read 0 and the gate could never see the cut)."""
    img, _ = figure("speckle")
    ImageDraw.Draw(img).ellipse((25, 40, 95, 240), fill=(200, 60, 90), outline=(20, 10, 30), width=3)  # off the bottom
    cut = remove_background(img, CutoutParams(method="grabcut"))
    assert cut.method == "grabcut_rect"
    assert cut.checks["border"] > 0.1, cut.checks


def test_a_large_image_is_cut_out_at_the_working_size_and_its_mask_scaled_back_at_over_half():
    """Above work_max_side the fill runs on an INTER_AREA copy; its mask comes back with INTER_LINEAR and
    a pixel is foreground only where the interpolated mask is over half (127 is under 127.5)."""
    img, truth = figure("plain", w=300, h=400)  # 400 > 384: scale 0.96
    cut = remove_background(img, CutoutParams(method="floodfill"))
    work = cv2.resize(np.asarray(img), (288, 384), interpolation=cv2.INTER_AREA)
    small = remove_background(Image.fromarray(work), CutoutParams(method="floodfill")).mask
    back = cv2.resize(small, (300, 400), interpolation=cv2.INTER_LINEAR)
    assert (back == 127).any()  # the boundary case occurs here
    assert np.array_equal(cut.mask, np.where(back > 127, 255, 0))
    assert iou(cut.mask > 127, truth) > 0.97


def test_a_segmenters_full_size_mask_is_judged_at_the_working_size():
    """The gate measures an ONNX mask as it measures flood fill's: at most work_max_side px (nearest)."""
    fg = np.zeros((800, 400), bool)
    fg[100:700, 50:350] = True
    fg[300:420, 150:251] = False  # a hole
    fg[790:, 10:20] = True  # a speck on the bottom edge
    small = cv2.resize(fg.astype(np.uint8), (192, 384), interpolation=cv2.INTER_NEAREST).astype(bool)
    assert _checks_at_work_size(fg, 384) == plausibility(small) != plausibility(fg)
    assert _checks_at_work_size(fg, 800) == plausibility(fg)  # already small enough: as is
    assert _checks_at_work_size(np.zeros((800, 400), bool), 384) == {}


@pytest.mark.parametrize("turns", range(4))
def test_flood_fill_starts_from_every_side_of_the_frame(turns):
    """A background pocket that reaches the frame on one side only (the four rotations put it on each side)
    is background: every border pixel seeds the fill, each with its own colour check."""
    a = np.zeros((20, 20, 3), np.uint8)
    a[3:17, 5:20] = 200  # a block touching the right edge ...
    a[6:14, 8:20] = 0  # ... with a black pocket open to the right edge only
    pocket = np.zeros((20, 20), bool)
    pocket[6:14, 8:20] = True
    bg, share = flood_background(np.rot90(a, turns).copy(), 10)
    assert np.array_equal(bg, ~np.rot90(a[..., 0] == 200, turns))  # all black is background, the block is not
    assert bg[np.rot90(pocket, turns)].all()
    assert share == pytest.approx((76 - 6) / 76)  # the block covers 6 of the 76 frame pixels
    # a pocket whose only opening is the single frame pixel next to a corner is reached too
    b = np.zeros((10, 10, 3), np.uint8)
    b[5:, :6] = 200
    b[8, :4] = 0  # opens on the frame at (8, 0) only: row 9 is the block's
    bg, _ = flood_background(np.rot90(b, turns).copy(), 10)
    assert np.array_equal(bg, ~np.rot90(b[..., 0] == 200, turns))


@pytest.mark.parametrize("upscale", [1, 4])
def test_cutout_of_demo_characters_matches_their_drawn_alpha(upscale):
    """Transparent demo characters put on backgrounds: the alpha they were drawn with is the truth.

    Upscaled 4x and JPEG-compressed, outlines become soft ramps a floating flood fill leaks through
    (a tolerance of 12 lost whole faces here): this guards the working resolution and the leak check.
    """
    from animegen.data import synthetic

    rng = np.random.default_rng(0)
    chars = [s.image for st in "ab" for s in synthetic.generate("face", st, "early", 40, 7) if s.image.mode == "RGBA"][:8]
    assert len(chars) == 8
    ious = []
    for i, ch in enumerate(chars):
        w, h = ch.size
        colour = rng.integers(120, 250, 3)
        for bg in (np.full((h, w, 3), colour, np.uint8), np.clip(colour + rng.normal(0, 8, (h, w, 3)), 0, 255).astype(np.uint8)):
            canvas = Image.fromarray(bg).convert("RGBA")
            canvas.alpha_composite(ch)
            rgb, truth = canvas.convert("RGB"), np.asarray(ch.getchannel("A")) > 127
            if upscale > 1:
                rgb = rgb.resize((w * upscale, h * upscale), Image.Resampling.LANCZOS)
                buf = io.BytesIO()
                rgb.save(buf, "JPEG", quality=90)
                rgb = Image.open(buf).convert("RGB")
                truth = np.asarray(Image.fromarray(truth).resize(rgb.size, Image.Resampling.NEAREST))
            cut = remove_background(rgb, CutoutParams(method="grabcut"))
            ious.append(iou(cut.mask > 127, truth))
    assert min(ious) > 0.9 and np.mean(ious) > 0.95, ious


def test_alpha_cutout_and_auto_choice():
    img, truth = figure("plain")
    rgba = img.convert("RGBA")
    rgba.putalpha(Image.fromarray(truth.astype(np.uint8) * 255))
    cut = remove_background(rgba, CutoutParams(method="auto"))
    assert cut.method == "alpha" and iou(cut.mask > 127, truth) == 1.0
    assert remove_background(img, CutoutParams(method="auto")).method == "grabcut"
    with pytest.raises(Rejected) as e:
        remove_background(img, CutoutParams(method="alpha"))
    assert e.value.reason == "no_alpha"


def test_failed_cutouts_are_named():
    blank = Image.new("RGBA", (64, 64), (0, 0, 0, 0))
    with pytest.raises(Rejected) as e:
        remove_background(blank, CutoutParams())
    assert e.value.reason == "cutout_empty"
    full = Image.new("RGBA", (64, 64), (10, 20, 30, 255))
    full.putpixel((0, 0), (0, 0, 0, 0))
    with pytest.raises(Rejected) as e:
        remove_background(full, CutoutParams())
    assert e.value.reason == "cutout_no_background"


def red_mask_model(path, size: int = 64):
    """A real ONNX graph: mask = 1 where the red channel is above 0.5, for ``size`` x ``size`` inputs."""
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    nodes = [
        helper.make_node("Slice", ["img", "s", "e", "ax"], ["red"]),
        helper.make_node("Greater", ["red", "half"], ["gt"]),
        helper.make_node("Cast", ["gt"], ["mask"], to=TensorProto.FLOAT),
    ]
    inits = [helper.make_tensor("s", TensorProto.INT64, [1], [0]), helper.make_tensor("e", TensorProto.INT64, [1], [1]),
             helper.make_tensor("ax", TensorProto.INT64, [1], [1]), helper.make_tensor("half", TensorProto.FLOAT, [], [0.5])]  # fmt: skip
    graph = helper.make_graph(
        nodes, "redmask", [helper.make_tensor_value_info("img", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("mask", TensorProto.FLOAT, [1, 1, size, size])], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=8)
    onnx.save(model, path)
    return path


def test_onnx_segmenter_is_used_when_configured(tmp_path):
    # our figure is red, the background not
    path = red_mask_model(tmp_path / "seg.onnx", 64)
    img = Image.new("RGB", (100, 60), (20, 120, 20))
    ImageDraw.Draw(img).rectangle((30, 10, 70, 50), fill=(230, 30, 30))
    cut = remove_background(img, CutoutParams(method="auto"), OnnxSegmenter(path, size=64))
    assert cut.method == "onnx"
    fg = cut.mask > 127
    truth = np.zeros((60, 100), bool)
    truth[10:51, 30:71] = True
    assert iou(fg, truth) > 0.85


def test_pad_to_square_keeps_aspect_and_centres():
    arr = np.full((20, 60, 3), 200, np.uint8)
    sq, px, py = pad_to_square(arr)
    assert sq.shape == (60, 60, 3) and (px, py) == (0, 20)
    assert (sq[:20] == 0).all() and (sq[40:] == 0).all() and (sq[20:40] == 200).all()


def _rect_image(w, h, box):
    rgb = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    x0, y0, x1, y1 = box
    rgb[y0:y1, x0:x1] = (250, 120, 40)
    mask[y0:y1, x0:x1] = 255
    return rgb, mask


def test_resize_trims_pads_and_downsamples():
    rgb, mask = _rect_image(200, 300, (50, 20, 150, 220))  # a 100 x 200 figure
    out, tf = pad_and_resize(rgb, mask, ResizeParams(size=64, margin=0.0))
    assert out.shape == (64, 64, 3) and not tf.upscaled
    assert tf.crop == (50, 20, 150, 220) and tf.scale == pytest.approx(64 / 200)
    cols = np.flatnonzero(out[32, :, 0] > 128)
    assert 14 <= cols[0] <= 17 and 46 <= cols[-1] <= 49  # 2:1 figure centred with black bars
    assert tf.box([50, 20, 150, 220], 64) == pytest.approx([0.25, 0.0, 0.75, 1.0], abs=1e-3)


def test_no_silent_upscale():
    rgb, mask = _rect_image(40, 40, (5, 5, 35, 35))
    with pytest.raises(Rejected) as e:
        pad_and_resize(rgb, mask, ResizeParams(size=64))
    assert e.value.reason == "needs_upscale"
    out, tf = pad_and_resize(rgb, mask, ResizeParams(size=64, allow_upscale=True))
    assert out.shape == (64, 64, 3) and tf.upscaled


def test_shoulders_up_keeps_the_top_of_the_figure():
    rgb, mask = _rect_image(100, 300, (30, 20, 70, 280))
    rgb[20:60, 30:70] = (10, 200, 10)  # the "head" at the top is green
    out, tf = pad_and_resize(rgb, mask, ResizeParams(size=32, crop="shoulders_up", shoulders_ratio=0.25, margin=0.0))
    assert tf.crop == (30, 20, 70, 85)
    assert out[4, 16, 1] > 150  # the head is in the crop


def test_resize_geometry_is_pinned_at_every_branch():
    """The transform's box mapping, the mask threshold, the trim switch, the shoulders cut and the margin,
    each at values that tell a sign, an index or a boundary apart."""
    from animegen.data.resize import Transform, crop_box, foreground_box

    tf = Transform(crop=(10, 20, 50, 60), pad_x=3, pad_y=5, scale=0.5, upscaled=False)
    assert tf.box([12, 25, 30, 40], 32) == [0.07812, 0.15625, 0.35938, 0.39062]  # (b - crop + pad) * scale / size
    assert tf.box([2, 10, 200, 300], 32) == [0.0, 0.0, 1.0, 1.0]  # clamped to the output
    mask = np.zeros((40, 30), np.uint8)
    mask[0, 0], mask[5, 7] = 127, 128  # the foreground is above 127
    assert foreground_box(mask) == (7, 5, 8, 6)  # one pixel is a box
    assert foreground_box(np.full((4, 4), 127, np.uint8)) is None
    mask = np.zeros((300, 100), np.uint8)
    mask[20:100, 40:60] = 255  # a narrow head
    mask[100:280, 10:90] = 255  # on a wide body
    full = ResizeParams(margin=0.0)
    assert crop_box(mask, full) == (10, 20, 90, 280)  # the shape comes from the mask when none is given
    assert crop_box(mask, ResizeParams(margin=0.0, trim_to_foreground=False)) == (0, 0, 100, 300)
    assert crop_box(mask, ResizeParams(margin=0.05)) == (0, 7, 100, 293)  # 0.05 x the longer side (260) = 13, inside
    wide = np.zeros((100, 300), np.uint8)
    wide[40:60, 150:250] = 255  # margin: 0.1 x its width 100, not x (x0 + x1)
    assert crop_box(wide, ResizeParams(margin=0.1)) == (140, 30, 260, 70)
    shoulders = ResizeParams(crop="shoulders_up", shoulders_ratio=0.25, margin=0.0)
    assert crop_box(mask, shoulders) == (40, 20, 60, 85)  # the top quarter holds only the head: its width
    assert crop_box(mask, ResizeParams(crop="shoulders_up", shoulders_ratio=0.001, margin=0.0)) == (40, 20, 60, 21)
    # shoulders_up crops to the figure and adds the margin even without trim_to_foreground (0.05 x 104 = 5)
    assert crop_box(mask, ResizeParams(crop="shoulders_up", trim_to_foreground=False, margin=0.05)) == (5, 15, 95, 129)


def test_resize_filters_and_the_upscale_boundary_are_the_libraries_own():
    from animegen.data.resize import resize_square

    rng = np.random.default_rng(4)
    big = rng.integers(0, 256, (300, 300, 3), dtype=np.uint8)
    small = rng.integers(0, 256, (20, 20, 3), dtype=np.uint8)
    np.testing.assert_array_equal(resize_square(big, 30, "area"), cv2.resize(big, (30, 30), interpolation=cv2.INTER_AREA))
    np.testing.assert_array_equal(resize_square(small, 30, "area"), cv2.resize(small, (30, 30), interpolation=cv2.INTER_CUBIC))
    lanczos = np.asarray(Image.fromarray(big).resize((30, 30), Image.Resampling.LANCZOS, reducing_gap=3.0))
    np.testing.assert_array_equal(resize_square(big, 30, "lanczos"), lanczos)
    rgb, mask = _rect_image(64, 64, (0, 0, 64, 64))
    out, tf = pad_and_resize(rgb, mask, ResizeParams(size=64, margin=0.0))  # exactly the size: no upscale
    assert not tf.upscaled and out.shape == (64, 64, 3)
    with pytest.raises(Rejected, match="63px square < size 64 and resize.allow_upscale is false"):
        pad_and_resize(rgb[:63, :63], mask[:63, :63], ResizeParams(size=64, margin=0.0))
    with pytest.raises(Rejected) as empty:
        pad_and_resize(rgb, np.zeros_like(mask), ResizeParams(size=64))
    assert (empty.value.reason, empty.value.detail) == ("cutout_empty", "no foreground to crop")


def test_area_filter_and_lanczos_agree_on_flat_regions():
    rgb, mask = _rect_image(300, 300, (0, 0, 300, 300))
    mask[:] = 255
    a, _ = pad_and_resize(rgb, mask, ResizeParams(size=30, filter="area", margin=0.0))
    b, _ = pad_and_resize(rgb, mask, ResizeParams(size=30, filter="lanczos", margin=0.0))
    assert np.abs(a.astype(int) - b.astype(int)).max() <= 1


def test_split_is_deterministic_and_stable_when_images_are_added():
    ids = [f"{i:016x}" for i in range(1000)]
    a = split_ids(ids, 0.1, seed=3407)
    assert a == split_ids(list(reversed(ids)), 0.1, seed=3407)
    assert 60 < len(a["test"]) < 140 and set(a["test"]).isdisjoint(a["train"])
    grown = split_ids(ids + [f"new{i}" for i in range(500)], 0.1, seed=3407)
    assert set(a["test"]) <= set(grown["test"]) and set(a["train"]) <= set(grown["train"])
    assert split_ids(ids, 0.1, seed=1) != a


def test_split_ids_are_pinned_across_processes_and_machines():
    """The key is SHA-256 of "<seed>:<id>", never Python's per-process ``hash()``: these values were
    computed once and must come out of every process (a resumed or a remote run splits the same)."""
    ids = [f"img{i:02d}" for i in range(20)]
    assert split_key("img00", 3407) == pytest.approx(0.4361644527993365, abs=1e-15)
    assert split_ids(ids, 0.25, seed=3407)["test"] == ["img01", "img06", "img07"]
    assert split_ids(ids, 5, seed=3407)["test"] == ["img01", "img06", "img07", "img15", "img18"]


def test_split_by_count_changes_minimally():
    ids = [f"{i:016x}" for i in range(200)]
    a = split_ids(ids, 50, seed=0)
    assert len(a["test"]) == 50 and len(a["train"]) == 150
    b = split_ids(ids + ["extra"], 50, seed=0)
    assert len(set(a["test"]) - set(b["test"])) <= 1
    with pytest.raises(ValueError, match="needs at least"):
        split_ids(ids[:10], 50, seed=0)


def test_split_bounds_are_exact():
    """A fraction is in (0, 1) and an id is held out when its key is below it (strictly); a count is in
    [0, number of ids); a bool or a string is neither."""
    ids = [f"img{i:02d}" for i in range(20)]
    edge = split_key("img01", 3407)  # img01 is the lowest key (the count test above)
    assert split_ids(ids, edge, seed=3407)["test"] == []  # its own key is not below itself
    assert split_ids(ids, float(np.nextafter(edge, 1)), seed=3407)["test"] == ["img01"]
    assert split_ids(ids, 0, seed=3407) == {"train": ids, "test": []}
    assert len(split_ids(ids, 19, seed=3407)["train"]) == 1
    with pytest.raises(ValueError, match="test count 20 needs at least 21 images, have 20"):
        split_ids(ids, 20, seed=3407)
    for fraction in (0.0, 1.0, 1.5, -0.1):
        with pytest.raises(ValueError, match=rf"test fraction must be in \(0, 1\), got {fraction}"):
            split_ids(ids, fraction, seed=3407)
    for wrong in (True, False, "0.1", None):
        with pytest.raises(ValueError, match="test must be a fraction or a count, got"):
            split_ids(ids, wrong, seed=3407)


def test_a_study_a_recipe_passes_images_through_as_they_are(workspace):
    """datasets.<d>: cutout none, no trimming, test 0 (study A's icons): each processed image is its input
    padded to a black square and resized (nothing cut out, nothing cropped) and every image is in train.
    (With a full mask, trimming to the foreground keeps the whole image anyway; per-key merging is
    tested in test_params.)"""
    import csv
    import json

    from conftest import dump_yaml, load_yaml, without_study_c

    from animegen.cli import main
    from animegen.recipes import NO_RECIPE

    rng = np.random.default_rng(3)
    folder = workspace / "data/sources/icons/in"
    folder.mkdir(parents=True)
    inputs = {f"icon{i}.png": rng.integers(0, 256, (64, 96 if i == 0 else 64, 3), dtype=np.uint8) for i in range(5)}
    for name, arr in inputs.items():
        Image.fromarray(arr).save(folder / name)
    params = load_yaml(workspace / "params.yaml")
    params["models"], params["compare"]["pairs"] = {}, {}
    without_study_c(params)
    params["collect"]["near_duplicate"].update(phash_max_distance=None)
    recipe = {"cutout": {"method": "none"}, "resize": {"trim_to_foreground": False}, "split": {"test": 0}}
    params["datasets"] = {"icons": {"sources": [{"type": "folder", "path": "in"}], "size": 32, "crop": "full",
                                    **NO_RECIPE, **recipe}}  # fmt: skip
    dump_yaml(params, workspace / "params.yaml")
    for stage in ("collect", "cutout", "resize", "split"):
        assert main(["--params", str(workspace / "params.yaml"), stage, "--dataset", "icons"]) == 0, stage
    ids = {r["origin"]: r["id"] for r in csv.DictReader(open(workspace / "data/raw/icons/manifest.csv"))}
    assert len(ids) == 5
    for name, arr in inputs.items():
        h, w = arr.shape[:2]
        square = Image.new("RGB", (max(h, w),) * 2)  # the 96 x 64 one is padded with black, centred
        square.paste(Image.fromarray(arr), ((max(h, w) - w) // 2, (max(h, w) - h) // 2))
        expected = np.asarray(square.resize((32, 32), Image.Resampling.LANCZOS))
        got = np.asarray(Image.open(workspace / f"data/processed/icons/images/{ids[name]}.png"))
        np.testing.assert_array_equal(got, expected, err_msg=name)
    cut = json.loads((workspace / "data/interim/cutout/icons/report.json").read_text())
    assert cut["by_method"] == {"none": 5} and cut["recipe"] == {"method": "none"}
    split = json.loads((workspace / "data/splits/icons.json").read_text())
    assert split["n_train"] == 5 and split["test"] == [] and split["method"] == "none"


@pytest.mark.parametrize("opaque, outcome", [(199, "cutout_empty"), (200, "ok"), (9700, "ok"), (9701, "cutout_no_background")])
def test_foreground_limits_accept_the_value_itself(opaque, outcome):
    """min_foreground 0.02 and max_foreground 0.97 of a 100 x 100 image are 200 and 9,700 pixels: both pass."""
    alpha = np.zeros(100 * 100, np.uint8)
    alpha[:opaque] = 255
    rgba = np.dstack([np.full((100, 100, 3), 200, np.uint8), alpha.reshape(100, 100)])
    p = CutoutParams(method="alpha", min_foreground=0.02, max_foreground=0.97)
    try:
        remove_background(Image.fromarray(rgba, "RGBA"), p)
        got = "ok"
    except Rejected as e:
        got = e.reason
    assert got == outcome
