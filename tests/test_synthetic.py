"""Tests of the synthetic demo dataset (animegen.data.synthetic)."""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path

import imagehash
import numpy as np
import pytest
from PIL import Image

from animegen.data import synthetic
from animegen.data.synthetic import KINDS, STYLES, VARIANTS, generate

SEED = 0
ANIME = ("a", "b")  # the illustrator styles; "photo" draws faces only
KIND_STYLES = [(k, s) for k in KINDS for s in STYLES if s in ANIME or k == "face"]
GROUPS = [(k, s, v) for k, s in KIND_STYLES for v in VARIANTS]
# Near-duplicates are checked on 96 images of four groups that cover every kind, style and variant
# twice; the other checks use the first 32 images of every group (keeps the file at a few seconds).
DUP_GROUPS = [("face", "a", "early"), ("face", "b", "later"), ("body", "a", "later"), ("body", "b", "early")]
N_DUP, N_CHECK = 96, 32


@pytest.fixture(scope="module")
def samples():
    """``samples(group)``: the group's images with the character layer and backdrop each was composed of."""
    cache: dict[tuple[str, str, str], list] = {}

    def get(group: tuple[str, str, str]) -> list:
        if group not in cache:
            cache[group] = list(synthetic._samples(*group, N_DUP if group in DUP_GROUPS else N_CHECK, SEED, None))
        return cache[group]

    return get


def _fingerprint(item: synthetic.SyntheticImage) -> tuple:
    return item.name, item.image.mode, item.image.size, item.image.tobytes(), item.background, item.parts, item.clarity


def _on_black(image: Image.Image) -> Image.Image:
    if image.mode == "RGBA":
        return Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image).convert("RGB")
    return image


def _hamming(hashes: list[imagehash.ImageHash]) -> np.ndarray:
    bits = np.array([h.hash.ravel() for h in hashes])
    return (bits[:, None, :] != bits[None, :, :]).sum(axis=-1)


# --- determinism -----------------------------------------------------------------------


def test_same_arguments_give_identical_images():
    first = [_fingerprint(x) for x in generate("face", "a", "early", 4, 7)]
    again = [_fingerprint(x) for x in generate("face", "a", "early", 4, 7)]
    assert first == again


def test_image_i_does_not_depend_on_n():
    short = [_fingerprint(x) for x in generate("body", "b", "later", 5, 3)]
    long = [_fingerprint(x) for x in generate("body", "b", "later", 12, 3)]
    assert long[:5] == short


def test_public_generator_matches_composed_samples(samples):
    public = [_fingerprint(x) for x in generate("face", "b", "early", 5, SEED)]
    assert public == [_fingerprint(s.image) for s in samples(("face", "b", "early"))[:5]]


def test_counts():
    assert len(list(generate("body", "a", "early", 3, SEED))) == 3
    assert list(generate("face", "b", "later", 0, SEED)) == []


def test_distinct_seeds_and_groups_differ():
    base = [x.image.tobytes() for x in generate("face", "a", "early", 4, 1)]
    assert base != [x.image.tobytes() for x in generate("face", "a", "early", 4, 2)]
    assert base != [x.image.tobytes() for x in generate("face", "a", "later", 4, 1)]


# --- the demo data is pinned ---------------------------------------------------------------------
# README and BENCHMARKS figures were measured on these pictures, and DVC caches them: a change to the
# drawing code must be a decision (regenerate with `python tests/test_synthetic.py --write-golden`),
# not an accident.  Each image is pinned by its metadata exactly and by a 16 x 16 grid of its mean RGBA
# per block (about 80 pixels each), to within 0.05 levels: a pixel that another numpy or CPU rounds one
# level differently moves its block by about 0.012; a drawn change (an iris moved by a pixel, a nose
# highlight, a clothing colour's jitter, a polygon's last vertex) moves one by 0.05 to 60 levels.

GOLDEN = Path(__file__).parent / "data" / "synthetic_golden.json"
GOLDEN_GRID, GOLDEN_TOLERANCE = 16, 0.05


def _golden_cases() -> dict[str, list[synthetic.SyntheticImage]]:
    cases = {f"{k}-{s}-{v}": list(generate(k, s, v, 5, SEED)) for k, s, v in GROUPS}  # 5: every backdrop kind
    cases["face-b-later-clarity-0.2-0.4"] = list(generate("face", "b", "later", 2, SEED, parts_clarity=(0.2, 0.4)))
    cases["face-a-early-clarity-0.0"] = list(generate("face", "a", "early", 1, SEED, parts_clarity=0.0))
    cases["face-photo-early-clarity-0.0"] = list(generate("face", "photo", "early", 1, SEED, parts_clarity=0.0))
    cases["body-a-early-hazards"] = list(generate("body", "a", "early", 3, SEED, hazard="mixed"))
    return cases


def _blocks(image: Image.Image) -> np.ndarray:
    """The mean of each channel (RGBA) over a GOLDEN_GRID x GOLDEN_GRID grid of blocks, float64."""
    a = np.asarray(image.convert("RGBA"), dtype=np.float64)
    rows = np.linspace(0, a.shape[0], GOLDEN_GRID + 1).astype(int)
    cols = np.linspace(0, a.shape[1], GOLDEN_GRID + 1).astype(int)
    sums = np.add.reduceat(np.add.reduceat(a, rows[:-1], axis=0), cols[:-1], axis=1)
    return sums / (np.diff(rows)[:, None, None] * np.diff(cols)[None, :, None])


def _golden_record(item: synthetic.SyntheticImage) -> dict:
    """Metadata as is; the blocks in hundredths of a level, little-endian uint16, base64 (compact JSON)."""
    hundredths = np.round(_blocks(item.image) * 100).astype("<u2")
    return {"name": item.name, "mode": item.image.mode, "size": list(item.image.size), "background": item.background,
            "parts": item.parts, "clarity": round(float(item.clarity), 6),
            "blocks": base64.b64encode(hundredths.tobytes()).decode("ascii")}


def _golden_records() -> dict[str, list[dict]]:
    return {case: [_golden_record(x) for x in items] for case, items in _golden_cases().items()}


def test_the_demo_pictures_are_the_pinned_ones():
    pinned = json.loads(GOLDEN.read_text())
    now = _golden_records()
    assert list(now) == list(pinned)
    for case, records in now.items():
        assert len(records) == len(pinned[case]), case
        for got, want in zip(records, pinned[case]):
            assert {k: v for k, v in got.items() if k != "blocks"} == {k: v for k, v in want.items() if k != "blocks"}
            blocks = [np.frombuffer(base64.b64decode(r["blocks"]), "<u2").astype(np.float64) / 100 for r in (got, want)]
            worst = np.abs(blocks[0] - blocks[1]).max()
            assert worst <= GOLDEN_TOLERANCE, f"{got['name']}: a block moved by {worst:.2f} levels"


# --- shape of the output ---------------------------------------------------------------------


@pytest.mark.parametrize("kind, style, variant", GROUPS)
def test_counts_names_modes_and_sizes(samples, kind, style, variant):
    items = [s.image for s in samples((kind, style, variant))[:N_CHECK]]
    assert len({x.name for x in items}) == N_CHECK
    assert items[7].name == f"{kind}-{style}-{variant}-0007"
    for x in items:
        assert x.image.mode == ("RGBA" if x.background == "transparent" else "RGB")
        w, h = x.image.size
        if kind == "face":
            assert 112 <= w <= 176 and 112 <= h <= 176
        else:
            assert 96 <= w <= 128 and 192 <= h <= 256 and h > w
        assert 0.3 <= x.clarity <= 1.0


def test_background_mix(samples):
    kinds = [s.image.background for s in samples(("face", "a", "early"))]
    share = {b: kinds.count(b) / len(kinds) for b in synthetic.BACKGROUNDS}
    assert share["plain"] == pytest.approx(0.4, abs=0.05)
    for b in ("gradient", "texture", "transparent"):
        assert share[b] == pytest.approx(0.2, abs=0.05)


# --- margin: the character never reaches the border --------------------------------------


@pytest.mark.parametrize("kind, style, variant", GROUPS)
def test_character_keeps_margin(samples, kind, style, variant):
    for s in samples((kind, style, variant))[:N_CHECK]:
        image, alpha = s.image.image, np.asarray(s.character)[..., 3]
        h, w = alpha.shape
        mx, my = int(0.06 * w), int(0.06 * h)
        band = np.ones_like(alpha, dtype=bool)
        band[my:h - my, mx:w - mx] = False
        assert alpha.any() and not alpha[band].any(), s.image.name
        if s.backdrop is None:
            assert image.mode == "RGBA" and not np.asarray(image)[..., 3][band].any()
            continue
        # the delivered image is the backdrop with the character over it, and its border is pure backdrop
        composed = Image.alpha_composite(s.backdrop.convert("RGBA"), s.character).convert("RGB")
        assert composed.tobytes() == image.tobytes()
        pixels, backdrop = np.asarray(image), np.asarray(s.backdrop)
        assert np.array_equal(pixels[band], backdrop[band]), s.image.name


def test_plain_backgrounds_have_a_single_colour_border(samples):
    checked = 0
    for group in GROUPS:
        for s in samples(group)[:N_CHECK]:
            if s.image.background == "plain":
                pixels = np.asarray(s.image.image)
                border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
                assert (border == border[0]).all(), s.image.name
                checked += 1
    assert checked > 0


# --- parts ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind, style, variant", GROUPS)
def test_parts_boxes_inside_image_and_nested(samples, kind, style, variant):
    expected = {"face", "left_eye", "right_eye", "mouth"} | ({"body"} if kind == "body" else set())
    for s in samples((kind, style, variant))[:N_CHECK]:
        parts, (w, h) = s.image.parts, s.image.image.size
        assert set(parts) == expected
        for x0, y0, x1, y1 in parts.values():
            assert 0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h
        fx0, fy0, fx1, fy1 = parts["face"]
        for name in ("left_eye", "right_eye", "mouth"):
            x0, y0, x1, y1 = parts[name]
            assert fx0 <= x0 and fy0 <= y0 and x1 <= fx1 and y1 <= fy1, (s.image.name, name)
        assert sum(parts["left_eye"][::2]) < sum(parts["right_eye"][::2])
        if kind == "body":
            bx0, by0, bx1, by1 = parts["body"]
            assert bx0 <= fx0 and by0 <= fy0 and fx1 <= bx1 and fy1 <= by1
            assert by1 - by0 > bx1 - bx0


@pytest.mark.parametrize("kind, style", KIND_STYLES)
def test_clarity_changes_only_eyes_and_mouth_and_boxes_are_tight(kind, style):
    """Rendering the same image with parts at clarity 1 and 0 differs exactly inside the part boxes."""
    bold = list(generate(kind, style, "later", 6, 5, parts_clarity=1.0))
    faint = list(generate(kind, style, "later", 6, 5, parts_clarity=0.0))
    for b, f in zip(bold, faint):
        assert b.parts == f.parts and (b.clarity, f.clarity) == (1.0, 0.0)
        diff = (np.asarray(b.image, dtype=int) != np.asarray(f.image, dtype=int)).any(axis=-1)
        inside = np.zeros_like(diff)
        for name in ("left_eye", "right_eye", "mouth"):
            x0, y0, x1, y1 = b.parts[name]
            inside[y0:y1, x0:x1] = True
            ys, xs = np.nonzero(diff[y0:y1, x0:x1])
            assert len(xs), (b.name, name)
            # tight: what was drawn reaches within 2 px of every side of the box
            assert xs.min() <= 2 and ys.min() <= 2 and xs.max() >= x1 - x0 - 3 and ys.max() >= y1 - y0 - 3
        assert not (diff & ~inside).any(), b.name


# --- arguments -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, kwargs",
    [
        (("hand", "a", "early", 1, 0), {}),
        (("face", "c", "early", 1, 0), {}),
        (("face", "a", "middle", 1, 0), {}),
        (("face", "a", "early", -1, 0), {}),
        (("face", "a", "early", 2.5, 0), {}),
        (("face", "a", "early", 1, "0"), {}),
        (("face", "a", "early", 1, 0), {"parts_clarity": 1.5}),
        (("face", "a", "early", 1, 0), {"parts_clarity": -0.1}),
        (("face", "a", "early", 1, 0), {"parts_clarity": (0.6, 0.4)}),  # lo above hi
        (("face", "a", "early", 1, 0), {"parts_clarity": (-0.1, 0.5)}),
        (("face", "a", "early", 1, 0), {"parts_clarity": (0.5, 1.1)}),
        (("body", "photo", "early", 1, 0), {}),
    ],
)
def test_bad_arguments_raise_at_call(args, kwargs):
    with pytest.raises(ValueError):
        generate(*args, **kwargs)  # no iteration needed


# --- distinctness and style separation ---------------------------------------------------------


@pytest.mark.parametrize("kind, style, variant", DUP_GROUPS)
def test_no_near_duplicates_within_group(samples, kind, style, variant):
    images = [_on_black(s.image.image) for s in samples((kind, style, variant))]
    assert len(images) == N_DUP
    dp = _hamming([imagehash.phash(im, hash_size=8) for im in images])
    dc = _hamming([imagehash.colorhash(im, binbits=3) for im in images])
    near = np.triu((dp <= 6) & (dc <= 4), k=1)
    assert not near.any(), [tuple(p) for p in np.argwhere(near)]


def _colour_histogram(group) -> np.ndarray:
    """Mean over images of the 4x4x4 RGB histogram (each sums to 1) of the character's opaque pixels."""
    total = np.zeros(64)
    for s in group:
        layer = np.asarray(s.character)
        rgb = layer[layer[..., 3] == 255][:, :3].astype(int) // 64
        total += np.bincount(rgb[:, 0] * 16 + rgb[:, 1] * 4 + rgb[:, 2], minlength=64) / len(rgb)
    return total / len(group)


@pytest.mark.parametrize("kind", KINDS)
def test_styles_far_apart_variants_close(samples, kind):
    """L1 distance of mean colour histograms: the two styles differ far more than two variants of one."""
    hist = {(s, v): _colour_histogram(samples((kind, s, v))[:N_CHECK]) for s in ANIME for v in VARIANTS}

    def dist(x, y):
        return float(np.abs(hist[x] - hist[y]).sum())

    between_styles = dist(("a", "early"), ("b", "early"))
    within_a, within_b = dist(("a", "early"), ("a", "later")), dist(("b", "early"), ("b", "later"))
    assert between_styles > 2 * within_a and between_styles > 2 * within_b
    assert min(within_a, within_b) > 0.1  # the later variant is a measurable drift, not a copy


# --- style "photo": photo-like human faces ---------------------------------------------------


def _luma(rgb: np.ndarray) -> np.ndarray:
    return rgb[..., :3].astype(float) @ np.array([0.299, 0.587, 0.114])


def _box_area(box: list[int]) -> int:
    x0, y0, x1, y1 = box
    return (x1 - x0) * (y1 - y0)


def _dark_line_share(sample) -> float:
    """Share of the character's opaque pixels (eye and mouth boxes left out) on a thin dark line: darker by
    more than 25 grey levels than both neighbours 2 px away in some direction, as an outline is."""
    layer = np.asarray(sample.character)
    luma, opaque = _luma(layer), layer[..., 3] == 255
    h, w = luma.shape
    d = 2
    centre = luma[d:h - d, d:w - d]
    ok = opaque[d:h - d, d:w - d].copy()
    for name in ("left_eye", "right_eye", "mouth"):
        x0, y0, x1, y1 = sample.image.parts[name]
        ok[max(y0 - d, 0):y1 - d, max(x0 - d, 0):x1 - d] = False
    response = np.zeros_like(centre)
    for dy, dx in ((0, d), (d, 0), (d, d), (d, -d)):
        one, other = (luma[d + sy:h - d + sy, d + sx:w - d + sx] for sy, sx in ((dy, dx), (-dy, -dx)))
        response = np.maximum(response, np.minimum(one - centre, other - centre))
        ok &= opaque[d + dy:h - d + dy, d + dx:w - d + dx] & opaque[d - dy:h - d - dy, d - dx:w - d - dx]
    return float((response[ok] > 25).mean())


def _face_edge_energy_32(item: synthetic.SyntheticImage) -> float:
    """Mean absolute grey step between neighbouring pixels inside the face box, after the demo's downscale
    to 32 px (composited on black, Lanczos)."""
    image = _on_black(item.image)
    w, h = image.size
    luma = _luma(np.asarray(image.resize((32, 32), Image.LANCZOS)))
    x0, y0, x1, y1 = item.parts["face"]
    face = luma[y0 * 32 // h:-(-y1 * 32 // h), x0 * 32 // w:-(-x1 * 32 // w)]
    return float((np.abs(np.diff(face, axis=0)).mean() + np.abs(np.diff(face, axis=1)).mean()) / 2)


def test_photo_faces_are_deterministic():
    first = [_fingerprint(x) for x in generate("face", "photo", "later", 3, 7, parts_clarity=(0.2, 0.9))]
    again = [_fingerprint(x) for x in generate("face", "photo", "later", 3, 7, parts_clarity=(0.2, 0.9))]
    assert first == again
    assert [x[3] for x in first] != [x.image.tobytes() for x in generate("face", "photo", "later", 3, 8)]


def test_photo_is_faces_only():
    with pytest.raises(ValueError, match="photo.*faces only"):
        generate("body", "photo", "later", 1, 0)


def test_photo_has_no_outlines():
    """Thin dark lines are style a's and b's outlines; photo faces have light and shadow instead (what is
    left: brows, nostrils, a few hair strands).  An outline round the head alone triples photo's share."""
    share = {s: [_dark_line_share(x) for x in synthetic._samples("face", s, "early", 8, SEED, None)]
             for s in ("photo", "a", "b")}
    mean = {s: float(np.mean(v)) for s, v in share.items()}
    assert mean["photo"] < 0.1 * mean["a"] and mean["photo"] < 0.15 * mean["b"], mean
    assert max(share["photo"]) < 0.03, share["photo"]


def test_photo_skin_tones_vary_from_light_to_dark():
    cheeks = []
    for x in generate("face", "photo", "early", 12, SEED, parts_clarity=0.0):
        ex0, _, ex1, ey1 = x.parts["left_eye"]
        mouth_top = x.parts["mouth"][1]
        cheek = np.asarray(_on_black(x.image))[ey1 + 1:mouth_top - 1, ex0:ex1].reshape(-1, 3)
        cheeks.append(np.median(cheek, axis=0))
    cheeks = np.array(cheeks)
    luma = _luma(cheeks)
    assert luma.max() - luma.min() > 90 and luma.std() > 25, np.round(luma)
    assert (cheeks[:, 0] > cheeks[:, 1]).all() and (cheeks[:, 1] > cheeks[:, 2]).all(), cheeks  # skin hues


def test_photo_eyes_are_small_and_realistic():
    """An eye box is a small part of the head box (style a's is ~0.1 of it), about a fifth of its width."""
    def eye_share(style):
        items = list(generate("face", style, "early", 8, SEED))
        return np.array([[_box_area(x.parts[e]) / _box_area(x.parts["face"]) for e in ("left_eye", "right_eye")]
                         for x in items]), items

    photo, items = eye_share("photo")
    anime, _ = eye_share("a")
    assert photo.max() < 0.5 * anime.min(), (photo.max(), anime.min())
    for x in items:
        fx0, _, fx1, _ = x.parts["face"]
        for e in ("left_eye", "right_eye"):
            x0, y0, x1, y1 = x.parts[e]
            assert (x1 - x0) < 0.32 * (fx1 - fx0) and (y1 - y0) < 0.8 * (x1 - x0), (x.name, e)  # wide, not tall


def test_photo_blur_keeps_the_margin():
    """The softening blur spreads the character a little: it still keeps 7% of each side free."""
    for s in synthetic._samples("face", "photo", "early", 8, 3, None):
        alpha = np.asarray(s.character)[..., 3]
        h, w = alpha.shape
        mx, my = int(0.07 * w), int(0.07 * h)
        assert alpha[my:h - my, mx:w - mx].sum() == alpha.sum(), s.image.name


def test_photo_group_has_no_near_duplicates():
    images = [_on_black(x.image) for x in generate("face", "photo", "early", 40, SEED)]
    dp = _hamming([imagehash.phash(im, hash_size=8) for im in images])
    dc = _hamming([imagehash.colorhash(im, binbits=3) for im in images])
    assert not np.triu((dp <= 6) & (dc <= 4), k=1).any()


def test_photo_and_anime_faces_separate_at_32px():
    """At the 32 px of the translation study, a face box's edge energy tells photo from style a: the threshold
    halfway between the medians sorts at least 90% of each right, and style a's median is 1.6x photo's."""
    energy = {s: np.array([_face_edge_energy_32(x) for x in generate("face", s, "early", 24, SEED)])
              for s in ("photo", "a")}
    photo, anime = np.median(energy["photo"]), np.median(energy["a"])
    cut = (photo + anime) / 2
    assert anime > 1.6 * photo, energy
    assert (energy["photo"] < cut).mean() >= 0.9 and (energy["a"] > cut).mean() >= 0.9, energy


if __name__ == "__main__" and sys.argv[1:] == ["--write-golden"]:
    GOLDEN.parent.mkdir(exist_ok=True)
    GOLDEN.write_text(json.dumps(_golden_records(), separators=(",", ":")) + "\n")
    print(f"wrote {GOLDEN}")
