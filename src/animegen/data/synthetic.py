"""Deterministic synthetic anime characters and photo-like faces: the pipeline's built-in demo dataset.

The real research data (illustrations by different artists) cannot ship with the
repository, so every stage is exercised on pictures drawn here instead:

* ``kind`` "face" gives head-and-shoulders icons (112..176 px per side, not always
  square), "body" gives full-body front-facing figures (96..128 x 192..256 px).
* ``style`` "a" and "b" imitate two illustrators with different shape language,
  palette and line weight: "a" has big glossy eyes, spiky polygon hair, a saturated
  warm palette and thick dark outlines; "b" has small dot/round/closed eyes, a soft
  bob with blunt bangs, a pastel cool palette and thin light outlines, so that
  feature statistics (e.g. an Inception-based FID) separate the styles clearly.
* ``style`` "photo" (kind "face" only) is the photo side of image-to-image translation
  (photo -> anime): human head-and-shoulders with realistic proportions (small almond
  eyes at half the head's height, a nose shown by shading only, lips), natural hair and
  skin tones from light to dark, lit by a key light with soft cast shadows, then a
  slight lens blur and sensor grain.  It has no outlines at all, which with its palette
  and eye size tells it from the anime styles even at 32 px.  Its "texture" backdrop is
  an out-of-focus room (soft blobs of colour) rather than a pattern.
* ``variant`` "later" is a small drift of "early" within a style (larger eyes,
  thinner lines, hue-shifted and less saturated palette), so the two are close but
  measurably different.

Every image keeps its character at least 7% away from each border (the cutout stage
flood-fills the background from the border), has a background that is plain (40%),
gradient, texture or transparent (RGBA; 20% each), and records pixel boxes of the
head, the eyes, the mouth and, for bodies, the whole figure.  ``clarity`` says how
visibly the eyes and mouth are drawn; the same image rendered with two clarities
differs only inside the eye and mouth boxes, which a Grad-CAM experiment relies on.

Characters are drawn as lists of shapes in head units (head half-width 1), then scaled
onto the canvas, so the part boxes follow from the geometry; Pillow draws them at 3x and
the result is box-averaged down (anti-aliasing).  A photo face's shapes are drawn flat on
separate layers that numpy then lights, composites and blurs; its eyes and mouth are faded
by ``clarity`` and cut to their boxes after the blur, so the clarity property holds too.
Within a group no two images are near-duplicates (phash within 6 bits and colorhash within
4 bits, on black): the rare attempt that would be one is redrawn with the next random stream.
"""

from __future__ import annotations

import bisect
import colorsys
import itertools
import math
import zlib
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Iterator, Sequence, TypeVar

import imagehash
import numpy as np
from PIL import Image, ImageDraw

KINDS = ("face", "body")
STYLES = ("a", "b", "photo")
VARIANTS = ("early", "later")
HAZARDS = ("skin_background", "hair_background", "cut_by_frame")  # cutout failure cases, see generate()
BACKGROUNDS = ("plain", "gradient", "texture", "transparent")

_BACKGROUND_CYCLE = ("plain", "plain", "gradient", "texture", "transparent")  # shuffled per block of 5
_FACE_SIDE = (112, 176)  # inclusive range of width and of height
_BODY_SIZE = ((96, 128), (192, 256))  # (width range, height range), inclusive
_MARGIN = 0.07  # free fraction of the image on every side
_SUPERSAMPLE = 3
_CLARITY_RANGE = (0.3, 1.0)
_NECK = (0.0, 0.9)  # pivot of the head tilt, head units
_NEAR_PHASH, _NEAR_COLORHASH = 6, 4  # two images closer than both (Hamming bits) are near-duplicates
_PARTS = ("face", "left_eye", "right_eye", "mouth")

Color = tuple[int, int, int]
_T = TypeVar("_T")
WHITE: Color = (255, 255, 255)


@dataclass
class SyntheticImage:
    """One generated picture and where its parts are."""

    name: str
    image: Image.Image
    background: str
    parts: dict[str, list[int]]
    clarity: float


# ---------------------------------------------------------------------------
# colours


def _mix(a: Color, b: Color, t: float) -> Color:
    """Linear blend from ``a`` (t=0) to ``b`` (t=1)."""
    return tuple(int(round(x + (y - x) * t)) for x, y in zip(a, b))  # type: ignore[return-value]


def _shade(c: Color, f: float) -> Color:
    return tuple(int(round(min(255.0, v * f))) for v in c)  # type: ignore[return-value]


def _hsv(h: float, s: float, v: float) -> Color:
    return tuple(int(round(x * 255)) for x in colorsys.hsv_to_rgb(h % 1.0, s, v))  # type: ignore[return-value]


def _hue(c: Color) -> float:
    return colorsys.rgb_to_hsv(*(v / 255 for v in c))[0]


def _jitter(rng: np.random.Generator, c: Color, amount: int) -> Color:
    noise = rng.integers(-amount, amount + 1, size=3)
    return tuple(int(v) for v in np.clip(np.array(c) + noise, 0, 255))  # type: ignore[return-value]


# ---------------------------------------------------------------------------
# styles


@dataclass(frozen=True)
class _Style:
    """An illustrator's habits; ``tone`` applies the variant's palette drift."""

    name: str
    line: float  # outline width in head units (head half-width = 1)
    outline: Color
    eye_scale: float
    hue_shift: float
    sat_scale: float
    skin: tuple[Color, ...]
    hair: tuple[Color, ...]
    eyes: tuple[Color, ...]
    clothes: tuple[Color, ...]
    accents: tuple[Color, ...]

    def tone(self, c: Color) -> Color:
        h, s, v = colorsys.rgb_to_hsv(*(x / 255 for x in c))
        return _hsv(h + self.hue_shift, min(1.0, s * self.sat_scale), v)

    def pick(self, rng: np.random.Generator, palette: tuple[Color, ...], amount: int = 10) -> Color:
        return self.tone(_jitter(rng, palette[rng.integers(len(palette))], amount))


_BASE_STYLES = {
    "a": _Style(
        name="a", line=0.075, outline=(42, 18, 26), eye_scale=1.0, hue_shift=0.0, sat_scale=1.0,
        skin=((255, 219, 186), (250, 205, 170), (255, 226, 200)),
        hair=((205, 35, 45), (235, 115, 25), (240, 185, 35), (215, 50, 130), (120, 50, 25), (70, 25, 35),
              (150, 40, 160), (250, 90, 70), (30, 25, 40), (250, 225, 140), (40, 80, 200), (30, 140, 80)),
        eyes=((200, 30, 40), (230, 140, 20), (40, 150, 60), (30, 90, 210), (140, 40, 190)),
        clothes=((190, 25, 40), (30, 35, 90), (35, 30, 35), (240, 235, 225), (220, 120, 20), (30, 110, 60),
                 (110, 30, 120), (20, 120, 140), (200, 160, 30), (130, 20, 30)),
        accents=((230, 30, 50), (250, 200, 30), (30, 60, 200), (245, 245, 245), (40, 170, 80)),
    ),
    "b": _Style(
        name="b", line=0.028, outline=(105, 100, 140), eye_scale=1.0, hue_shift=0.0, sat_scale=1.0,
        skin=((252, 236, 230), (247, 228, 222), (255, 241, 236)),
        hair=((190, 172, 228), (168, 218, 206), (166, 200, 236), (238, 192, 212), (206, 212, 228),
              (236, 224, 184), (150, 196, 200), (130, 150, 200), (190, 140, 180)),
        eyes=((80, 110, 170), (90, 140, 150), (120, 100, 160), (100, 110, 125)),
        clothes=((200, 220, 240), (220, 205, 240), (200, 235, 220), (250, 250, 252), (240, 210, 220),
                 (170, 190, 225), (185, 225, 235), (235, 235, 200), (150, 160, 190)),
        accents=((250, 190, 210), (180, 220, 250), (255, 240, 170), (200, 180, 240), (170, 230, 200)),
    ),
    # photo-like human faces: natural colours, no outlines (``line`` and ``outline`` are unused)
    "photo": _Style(
        name="photo", line=0.0, outline=(0, 0, 0), eye_scale=1.0, hue_shift=0.0, sat_scale=1.0,
        skin=((250, 220, 198), (243, 206, 180), (236, 190, 160), (222, 172, 135), (198, 145, 108),
              (172, 120, 86), (141, 94, 66), (112, 74, 52), (86, 58, 42)),  # light to dark
        hair=((28, 24, 24), (48, 36, 30), (74, 52, 38), (104, 74, 52), (140, 104, 70), (182, 148, 100),
              (214, 184, 132), (124, 62, 38), (158, 84, 48)),  # black, browns, blond, auburn
        eyes=((70, 45, 28), (98, 66, 40), (120, 96, 60), (84, 108, 72), (78, 112, 146), (112, 124, 132)),
        clothes=((48, 56, 78), (92, 96, 104), (222, 220, 214), (34, 34, 38), (104, 108, 74), (118, 48, 52),
                 (70, 98, 130), (196, 178, 150), (150, 150, 146)),
        accents=((196, 96, 100), (176, 84, 88), (188, 110, 104), (160, 78, 84)),  # lip tints
    ),
}


def _style(style: str, variant: str) -> _Style:
    """The "later" variant: larger eyes, thinner lines, hue-shifted and slightly less saturated palette."""
    base = _BASE_STYLES[style]
    if variant == "early":
        return base
    return replace(base, line=base.line * 0.78, eye_scale=1.12, hue_shift=0.025, sat_scale=0.9)


# ---------------------------------------------------------------------------
# display list in head units


@dataclass(frozen=True)
class _Op:
    shape: str  # "ellipse" (pts = two corners) | "polygon" | "line"
    pts: np.ndarray
    fill: Color | None
    outline: Color | None = None
    width: float = 0.0
    part: str | None = None
    layer: str = ""  # for the photo style, which of its separately lit layers the shape is on

    def bounds(self) -> np.ndarray:
        """[x0, y0, x1, y1] of what the operation covers."""
        pad = self.width / 2 if self.shape == "line" else 0.0
        return np.concatenate([self.pts.min(axis=0) - pad, self.pts.max(axis=0) + pad])


@dataclass
class _Figure:
    """Drawing operations collected before the figure is scaled onto a canvas."""

    ops: list[_Op] = field(default_factory=list)
    matrix: np.ndarray = field(default_factory=lambda: np.eye(2))  # current rotation ...
    shift: np.ndarray = field(default_factory=lambda: np.zeros(2))  # ... and translation
    layer: str = ""  # layer of the shapes added now

    @contextmanager
    def turned(self, angle: float, pivot: tuple[float, float]) -> Iterator[None]:
        """Rotate what is drawn inside the block by ``angle`` about ``pivot``; ellipses keep their axes."""
        saved = self.matrix, self.shift
        rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        self.matrix, self.shift = self.matrix @ rot, self.matrix @ (np.asarray(pivot) - rot @ pivot) + self.shift
        try:
            yield
        finally:
            self.matrix, self.shift = saved

    @contextmanager
    def on(self, layer: str) -> Iterator[None]:
        """Put what is drawn inside the block on ``layer``."""
        saved, self.layer = self.layer, layer
        try:
            yield
        finally:
            self.layer = saved

    def _turn(self, pts) -> np.ndarray:
        return np.asarray(pts, dtype=float) @ self.matrix.T + self.shift

    def ellipse(self, cx, cy, rx, ry, fill, outline=None, width=0.0, part=None) -> None:
        centre = self._turn([cx, cy])
        pts = np.stack([centre - (rx, ry), centre + (rx, ry)])
        self.ops.append(_Op("ellipse", pts, fill, outline, width, part, self.layer))

    def polygon(self, pts, fill, outline=None, width=0.0, part=None) -> None:
        self.ops.append(_Op("polygon", self._turn(pts), fill, outline, width, part, self.layer))

    def line(self, pts, color, width, part=None) -> None:
        self.ops.append(_Op("line", self._turn(pts), color, None, width, part, self.layer))

    def limb(self, pts, color, width, outline, line) -> None:
        """A thick stroke with an outline (drawn as a wider dark stroke underneath)."""
        self.line(pts, outline, width + 2 * line)
        self.line(pts, color, width)

    def bounds(self, part: str | None = None) -> np.ndarray:
        boxes = np.array([op.bounds() for op in self.ops if part is None or op.part == part])
        return np.concatenate([boxes[:, :2].min(axis=0), boxes[:, 2:].max(axis=0)])


def _choose(rng: np.random.Generator, options: Sequence[_T], weights: Sequence[float] | None = None) -> _T:
    """One of ``options``, uniformly or with the given weights (faster than Generator.choice)."""
    if weights is None:
        return options[int(rng.integers(len(options)))]
    return options[bisect.bisect(list(itertools.accumulate(weights)), rng.random() * sum(weights))]


def _arc(cx, cy, rx, ry, t0, t1, k=16) -> np.ndarray:
    t = np.linspace(t0, t1, k)
    return np.stack([cx + rx * np.cos(t), cy + ry * np.sin(t)], axis=1)


def _mirror(pts: np.ndarray) -> np.ndarray:
    return pts * np.array([-1.0, 1.0])


# ---------------------------------------------------------------------------
# one character's random choices


@dataclass(frozen=True)
class _Look:
    skin: Color
    hair: Color
    eye: Color
    top: Color
    bottom: Color
    accent: Color
    eye_kind: str  # "anime" (style a) | "dot" | "round" | "closed"
    mouth: str  # "smile" | "open" | "flat" | "cat"
    blush: bool
    accessory: str | None  # "ribbon" | "clip" | "ears" | "hat" | None
    accessory_side: int
    hair_length: float
    hair_extra: str | None  # a: "ahoge" | "twintails" | "ponytail"; b: "buns" | "pigtails" | "topknot"
    tilt: float  # head tilt in radians
    eye_spacing: float
    chin: float


def _look(rng: np.random.Generator, st: _Style, kind: str) -> _Look:
    a = st.name == "a"
    hair = st.pick(rng, st.hair, 18)
    top = st.pick(rng, st.clothes, 12)
    mouths = ("smile", "open", "flat") if a else ("smile", "open", "flat", "cat")
    short, medium, long = (0.35, 0.6), (0.8, 1.25), ((1.5, 2.2) if kind == "face" else (2.2, 3.4))
    length = rng.uniform(*_choose(rng, (short, medium, long), (0.2, 0.45, 0.35)))
    return _Look(
        skin=st.pick(rng, st.skin, 5),
        hair=hair,
        eye=st.pick(rng, st.eyes, 20),
        top=top,
        bottom=st.pick(rng, st.clothes, 12),
        accent=st.pick(rng, st.accents, 15),
        eye_kind="anime" if a else _choose(rng, ("dot", "round", "closed"), (0.45, 0.4, 0.15)),
        mouth=_choose(rng, mouths),
        blush=bool(rng.random() < (0.35 if a else 0.75)),
        accessory=_choose(rng, (None, *_ACCESSORIES), (0.35, 0.18, 0.15, 0.16, 0.16)),
        accessory_side=_choose(rng, (-1, 1)),
        hair_length=length,
        hair_extra=_choose(rng, (None, *(("ahoge", "twintails", "ponytail") if a else ("buns", "pigtails", "topknot"))),
                           (0.4, 0.2, 0.2, 0.2)),
        tilt=rng.uniform(-0.25, 0.25),
        eye_spacing=rng.uniform(0.38, 0.46),
        chin=rng.uniform(1.12, 1.24) if a else rng.uniform(0.96, 1.04),
    )


# ---------------------------------------------------------------------------
# hair


def _spiky_back(fig, rng, st, look, line) -> None:
    n = int(rng.integers(5, 9))
    phi = np.linspace(-0.62 * np.pi, 0.62 * np.pi, 2 * n + 1)
    r = np.where(np.arange(2 * n + 1) % 2 == 1, rng.uniform(1.25, 1.75, 2 * n + 1), 1.1)
    dome = np.stack([r * np.sin(phi), -r * np.cos(phi)], axis=1)
    k = int(rng.integers(4, 8))
    xs = np.linspace(1.25, -1.25, 2 * k + 1)
    ys = look.hair_length - np.where(np.arange(2 * k + 1) % 2 == 1, rng.uniform(0.25, 0.45, 2 * k + 1), 0.0)
    hem = np.stack([xs + rng.uniform(-0.05, 0.05, 2 * k + 1), ys], axis=1)
    fig.polygon(np.concatenate([dome, hem]), _shade(look.hair, 0.82), st.outline, line)


def _spiky_front(fig, rng, st, look, line) -> None:
    arc = _arc(0, -0.05, 1.1, 1.14, 0.96 * np.pi, 2.04 * np.pi, 20)
    n = int(rng.integers(4, 7))
    xs = np.linspace(0.86, -0.86, 2 * n + 1)
    tips = np.arange(2 * n + 1) % 2 == 0
    ys = np.where(tips, rng.uniform(-0.22, -0.1, 2 * n + 1), rng.uniform(-0.6, -0.42, 2 * n + 1))
    sweep = np.where(tips, rng.uniform(-0.2, 0.2), 0.0)  # bangs combed to one side
    fringe = np.stack([np.clip(xs + sweep + rng.uniform(-0.06, 0.06, 2 * n + 1), -0.92, 0.92), ys], axis=1)
    fig.polygon(np.concatenate([arc, fringe]), look.hair, st.outline, line)
    for side in (-1, 1):
        tip = (1.0 + rng.uniform(-0.05, 0.1), max(0.8, look.hair_length * rng.uniform(0.8, 1.0)))
        lock = np.array([[0.78, -0.3], [1.1, -0.2], [1.14, 0.5], tip, [0.86, 0.6], [0.8, 0.2]])
        fig.polygon(lock * np.array([side, 1.0]), look.hair, st.outline, line)
    gloss = np.concatenate([
        _arc(0, -0.05, 0.86, 0.9, 1.28 * np.pi, 1.72 * np.pi, 9),
        _arc(0, -0.05, 0.74, 0.78, 1.72 * np.pi, 1.28 * np.pi, 9)
        * np.where(np.arange(9) % 2 == 0, 1.0, 0.9)[:, None],
    ])
    fig.polygon(gloss, _mix(look.hair, WHITE, 0.5))


def _bob_back(fig, rng, st, look, line) -> None:
    t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    half_w, top = rng.uniform(1.2, 1.5), rng.uniform(1.2, 1.45)
    x = half_w * np.sign(c) * np.abs(c) ** np.where(s > 0, 2 / 3.5, 1.0)
    y = np.where(s > 0, look.hair_length * np.abs(s) ** (2 / 3.5), top * s)
    fig.polygon(np.stack([x, y], axis=1), _shade(look.hair, 0.9), st.outline, line)


def _bob_front(fig, rng, st, look, line) -> None:
    arc = _arc(0, -0.05, 1.16, 1.22, np.pi, 2 * np.pi, 24)
    end = rng.uniform(0.58, 0.75)
    curtain = np.array([[1.17, 0.2], [1.14, end], [0.94, end + 0.06], [0.82, 0.3], [0.76, -0.1]])
    cut = rng.uniform(-0.24, -0.1)
    xs = np.linspace(0.7, -0.7, 15)
    slant = rng.uniform(-0.2, 0.2)  # side-swept cut
    hem = np.stack([xs, cut + slant * xs + 0.06 * np.abs(np.sin(xs * rng.uniform(5, 8)))], axis=1)
    pts = np.concatenate([arc, curtain, hem, _mirror(curtain)[::-1]])
    fig.polygon(pts, look.hair, st.outline, line)
    ring = np.concatenate([
        _arc(0, -0.05, 0.98, 1.04, 1.22 * np.pi, 1.78 * np.pi, 12),
        _arc(0, -0.05, 0.88, 0.93, 1.78 * np.pi, 1.22 * np.pi, 12),
    ])
    fig.polygon(ring, _mix(look.hair, WHITE, 0.55))


# ---------------------------------------------------------------------------
# face features


def _head(fig, st, look, line) -> None:
    t = np.linspace(0, 2 * np.pi, 64, endpoint=False)
    x, y = np.cos(t), np.sin(t)
    jaw = 0.3 if st.name == "a" else 0.1
    lower = y > 0
    pts = np.stack([np.where(lower, x * (1 - jaw * y), x), np.where(lower, y * look.chin, y)], axis=1)
    fig.polygon(pts, look.skin, st.outline, line, part="face")


def _anime_eye(fig, cx, cy, side, st, look, clarity) -> None:
    """Style a: tall glossy eye with a heavy upper lash and two highlights."""
    part = "left_eye" if side < 0 else "right_eye"
    w, h = 0.21 * st.eye_scale, 0.27 * st.eye_scale
    ink = _mix(look.skin, st.outline, clarity)
    fig.ellipse(cx, cy + 0.02, w, h * 0.92, _mix(look.skin, WHITE, clarity), part=part)
    iris = _mix(look.skin, look.eye, clarity)
    fig.ellipse(cx, cy + 0.06, w * 0.78, h * 0.86, iris, _mix(look.skin, _shade(look.eye, 0.45), clarity),
                0.03, part)
    fig.ellipse(cx, cy + 0.2 * h, w * 0.55, h * 0.45, _mix(look.skin, _mix(look.eye, WHITE, 0.35), clarity),
                part=part)
    fig.ellipse(cx, cy + 0.02, w * 0.34, h * 0.42, _mix(look.skin, _shade(look.eye, 0.3), clarity), part=part)
    glint = _mix(look.skin, WHITE, clarity)
    fig.ellipse(cx - side * w * 0.3, cy - h * 0.3, w * 0.28, h * 0.22, glint, part=part)
    fig.ellipse(cx + side * w * 0.3, cy + h * 0.45, w * 0.12, h * 0.09, glint, part=part)
    lash = _arc(cx, cy - 0.02, w * 1.12, h * 0.95, 1.12 * np.pi, 1.88 * np.pi, 10)
    flick = lash[0] if side < 0 else lash[-1]
    fig.line(lash, ink, 0.09, part)
    fig.line([flick, flick + np.array([side * 0.09, -0.05])], ink, 0.06, part)
    fig.line(_arc(cx, cy, w * 0.8, h * 0.95, 0.3 * np.pi, 0.7 * np.pi, 6), ink, 0.025, part)


def _soft_eye(fig, cx, cy, side, st, look, clarity) -> None:
    """Style b: small dot, round or closed eye."""
    part = "left_eye" if side < 0 else "right_eye"
    s = st.eye_scale
    ink = _mix(look.skin, (55, 50, 75), clarity)
    glint = _mix(look.skin, WHITE, clarity)
    if look.eye_kind == "dot":
        fig.ellipse(cx, cy, 0.075 * s, 0.1 * s, ink, part=part)
        fig.ellipse(cx - 0.025 * s, cy - 0.04 * s, 0.025 * s, 0.025 * s, glint, part=part)
    elif look.eye_kind == "round":
        fig.ellipse(cx, cy, 0.1 * s, 0.12 * s, _mix(look.skin, look.eye, clarity), ink, 0.025, part)
        fig.ellipse(cx, cy + 0.01, 0.045 * s, 0.055 * s, ink, part=part)
        fig.ellipse(cx - 0.035 * s, cy - 0.045 * s, 0.03 * s, 0.03 * s, glint, part=part)
        fig.line(_arc(cx, cy + 0.01, 0.13 * s, 0.14 * s, 1.15 * np.pi, 1.85 * np.pi, 8), ink, 0.035, part)
    else:
        fig.line(_arc(cx, cy + 0.05 * s, 0.1 * s, 0.09 * s, 1.1 * np.pi, 1.9 * np.pi, 8), ink, 0.04, part)


def _mouth(fig, cy, st, look, clarity) -> None:
    big = 1.0 if st.name == "a" else 0.75
    ink = _mix(look.skin, _shade(st.outline, 0.8), clarity)
    width = 0.035 if st.name == "a" else 0.028
    if look.mouth == "smile":
        x = np.linspace(-0.15, 0.15, 9) * big
        fig.line(np.stack([x, cy + 0.25 * x**2 / big], axis=1), ink, width, "mouth")
    elif look.mouth == "flat":
        fig.line([(-0.09 * big, cy), (0.09 * big, cy)], ink, width, "mouth")
    elif look.mouth == "cat":
        for sign in (-1, 1):
            x = np.linspace(0, 0.1, 6) * sign
            fig.line(np.stack([x, cy + 0.035 * np.sin(np.abs(x) * np.pi / 0.1)], axis=1), ink, width, "mouth")
    else:
        rim = np.concatenate([[[-0.13 * big, cy - 0.04]], _arc(0, cy - 0.04, 0.13 * big, 0.16 * big, 0, np.pi, 12)])
        fig.polygon(rim[::-1], _mix(look.skin, (150, 35, 50), clarity), ink, width, "mouth")
        fig.ellipse(0, cy + 0.07 * big, 0.07 * big, 0.04 * big, _mix(look.skin, (240, 120, 130), clarity),
                    part="mouth")


def _ribbon(fig, st, look, x, y, line) -> None:
    for side in (-1, 1):
        fig.polygon([(x, y), (x + side * 0.32, y - 0.2), (x + side * 0.32, y + 0.2)], look.accent, st.outline, line)
    fig.ellipse(x, y, 0.08, 0.08, look.accent, st.outline, line)


def _clip(fig, st, look, x, y, line) -> None:
    """Style a: two crossed pins; style b: a little flower."""
    if st.name == "a":
        bar = np.array([[-0.2, -0.04], [0.2, -0.04], [0.2, 0.04], [-0.2, 0.04]]) + (x, y)
        for angle in (-0.6, 0.6):
            with fig.turned(angle, (x, y)):
                fig.polygon(bar, look.accent, st.outline, line)
        return
    for k in range(5):
        a = 2 * np.pi * k / 5
        fig.ellipse(x + 0.1 * math.cos(a), y + 0.1 * math.sin(a), 0.075, 0.075, look.accent, st.outline, line)
    fig.ellipse(x, y, 0.05, 0.05, (255, 225, 120))


def _ears(fig, st, look, x, y, line) -> None:
    """Style a: pointed cat ears; style b: long round bunny ears."""
    inner = _mix(look.skin, (255, 140, 160), 0.5)
    for side in (-1, 1):
        if st.name == "a":
            ear = np.array([(0.3, -0.95), (0.8, -1.7), (0.95, -0.8)]) * (side, 1.0)
            fig.polygon(ear, look.hair, st.outline, line)
            fig.polygon((ear - ear.mean(axis=0)) * 0.55 + ear.mean(axis=0), inner)
        else:
            fig.ellipse(side * 0.42, -1.6, 0.2, 0.6, WHITE, st.outline, line)
            fig.ellipse(side * 0.42, -1.55, 0.09, 0.42, inner)


def _hat(fig, st, look, x, y, line) -> None:
    """Style a: a pointed witch hat; style b: a soft beret."""
    lean = 0.25 * np.sign(x)
    if st.name == "a":
        brim = _shade(look.top, 0.8)
        fig.ellipse(0.0, -0.98, 1.55, 0.22, brim, st.outline, line)
        fig.polygon([(-0.8, -1.0), (lean + 0.2, -2.3), (0.8, -1.0)], brim, st.outline, line)
        fig.polygon([(-0.78, -1.05), (-0.7, -1.3), (0.7, -1.3), (0.78, -1.05)], look.accent, st.outline, line)
    else:
        fig.ellipse(lean, -1.02, 1.05, 0.34, look.accent, st.outline, line)
        fig.ellipse(lean, -1.4, 0.07, 0.07, look.accent, st.outline, line)


_ACCESSORIES = {"ribbon": _ribbon, "clip": _clip, "ears": _ears, "hat": _hat}


def _accessory(fig, st, look, line) -> None:
    if look.accessory is not None:
        _ACCESSORIES[look.accessory](fig, st, look, 0.72 * look.accessory_side, -0.88, line)


def _tails(fig, rng, st, look, line, sides) -> None:
    """Style a: spiky tails tied at the sides of the head (both sides, or one for a ponytail)."""
    length = max(look.hair_length, 1.4) + rng.uniform(0.1, 0.5)
    for side in sides:
        tail = np.array([[0.9, -0.85], [1.45, -0.8], [1.8, 0.0], [1.72, 0.6 * length], [1.55, length],
                         [1.45, 0.5 * length], [1.3, 0.1], [1.15, -0.3]])
        fig.polygon(tail * (side, 1.0), _shade(look.hair, 0.9), st.outline, line)
        fig.ellipse(side * 1.0, -0.8, 0.1, 0.12, look.accent, st.outline, line)


def _round_tufts(fig, st, look, line) -> None:
    """Style b: buns on top, a top knot, or soft pigtails beside the jaw."""
    hair = _shade(look.hair, 0.95)
    if look.hair_extra == "buns":
        for side in (-1, 1):
            fig.ellipse(side * 0.72, -1.05, 0.38, 0.36, hair, st.outline, line)
    elif look.hair_extra == "topknot":
        fig.ellipse(0.0, -1.45, 0.36, 0.32, hair, st.outline, line)
    else:
        for side in (-1, 1):
            fig.ellipse(side * 1.45, 0.75, 0.3, 0.62, hair, st.outline, line)


def _draw_back_hair(fig, rng, st, look, line) -> None:
    if st.name == "a":
        if look.hair_extra in ("twintails", "ponytail"):
            _tails(fig, rng, st, look, line, (-1, 1) if look.hair_extra == "twintails" else (-look.accessory_side,))
        _spiky_back(fig, rng, st, look, line)
    else:
        _bob_back(fig, rng, st, look, line)
        if look.hair_extra is not None:
            _round_tufts(fig, st, look, line)


def _draw_head(fig, rng, st, look, clarity, line) -> None:
    """Head, face features, front hair and accessory, centred on (0, 0), half-width 1."""
    a = st.name == "a"
    _head(fig, st, look, line)
    eye_y, mouth_y = (0.3, 0.85) if a else (0.3, 0.7)
    if look.blush:
        blush = _mix(look.skin, (255, 120, 135), 0.45 if a else 0.35)
        for side in (-1, 1):
            fig.ellipse(side * 0.6, 0.72 if a else 0.55, 0.17, 0.055 if a else 0.07, blush)
    if a:
        fig.line([(0.02, 0.56), (-0.02, 0.62)], _shade(look.skin, 0.8), 0.03)
    eye = _anime_eye if a else _soft_eye
    for side in (-1, 1):
        eye(fig, side * look.eye_spacing, eye_y, side, st, look, clarity)
        if not a:
            brow = _arc(side * look.eye_spacing, 0.16, 0.09, 0.05, 1.25 * np.pi, 1.75 * np.pi, 6)
            fig.line(brow, _shade(look.hair, 0.7), 0.025)
    _mouth(fig, mouth_y, st, look, clarity)
    (_spiky_front if a else _bob_front)(fig, rng, st, look, line)
    if look.hair_extra == "ahoge":
        fig.polygon([(-0.08, -1.08), (0.12, -1.5), (0.42, -1.62), (0.22, -1.46), (0.1, -1.1)],
                    look.hair, st.outline, line)
    _accessory(fig, st, look, line)


# ---------------------------------------------------------------------------
# figures


def _bust(fig, rng, st, look, line) -> None:
    """Neck and, for most icons, a hint of shoulders."""
    if rng.random() < 0.25:
        fig.polygon([(-0.3, 0.7), (0.3, 0.7), (0.26, 1.25), (-0.26, 1.25)], look.skin, st.outline, line)
        return
    fig.polygon([(-0.3, 0.7), (0.3, 0.7), (0.3, 1.5), (-0.3, 1.5)], look.skin, st.outline, line)
    w, bottom = rng.uniform(1.1, 1.5), rng.uniform(1.85, 2.2)
    right = np.array([(0.32, 1.35), (0.95, 1.5), (w - 0.08, 1.75), (w, bottom)])
    fig.polygon(np.concatenate([_mirror(right), right[::-1]]), look.top, st.outline, line)
    _neckline(fig, rng, st, look, 1.35, 1.72, line)


def _neckline(fig, rng, st, look, top, bottom, line) -> None:
    """V neckline from ``top`` to ``bottom`` with nothing, a sailor collar or a ribbon tie."""
    fig.polygon([(-0.32, top), (0.0, bottom), (0.32, top)], look.skin, st.outline, line)
    choice, depth = _choose(rng, (None, "collar", "tie")), bottom - top
    if choice == "collar":
        collar = _shade(look.accent, 0.85) if st.name == "a" else WHITE
        for side in (-1, 1):
            fig.polygon([(side * 0.32, top), (side * 0.75, top + 0.2), (side * 0.1, bottom + 0.1 * depth)],
                        collar, st.outline, line)
    elif choice == "tie":
        for side in (-1, 1):
            fig.polygon([(0, bottom), (side * 0.2, bottom - 0.1), (side * 0.2, bottom + 0.12)],
                        look.accent, st.outline, line)
        fig.ellipse(0, bottom, 0.06, 0.06, look.accent, st.outline, line)


def _face_figure(rng, st, look, clarity) -> _Figure:
    """Head and shoulders; the head (with its back hair) is tilted about the neck."""
    fig = _Figure()
    with fig.turned(look.tilt, _NECK):
        _draw_back_hair(fig, rng, st, look, st.line)
    _bust(fig, rng, st, look, st.line)
    with fig.turned(look.tilt, _NECK):
        _draw_head(fig, rng, st, look, clarity, st.line)
    return fig


@dataclass(frozen=True)
class _Frame:
    """Vertical landmarks and half-widths of a body, head units."""

    shoulder: float
    waist: float
    hem: float
    foot: float
    shoulder_w: float
    waist_w: float


def _frame(rng: np.random.Generator, st: _Style) -> _Frame:
    """Style a about 5 heads tall, style b chibi (about 3); leg length varies per figure."""
    if st.name == "a":
        shoulder, waist, hem, leg, sw, ww = 1.4, 3.0, 4.1, 3.3, 0.95, 0.6
    else:
        shoulder, waist, hem, leg, sw, ww = 1.2, 2.2, 2.75, 1.4, 0.78, 0.66
    return _Frame(shoulder, waist, hem, waist + leg * rng.uniform(0.88, 1.15), sw, ww)


def _legs(fig, rng, st, look, fr, line) -> None:
    a = st.name == "a"
    legs = _mix(look.skin, (40, 30, 45), 0.85) if a and rng.random() < 0.4 else look.skin
    spread = rng.uniform(0.0, 0.35)
    for side in (-1, 1):
        x = side * 0.3
        fig.limb([(x, fr.waist + 0.2), (x + side * spread, fr.foot)], legs, 0.3 if a else 0.34, st.outline, line)
        fig.ellipse(x + side * (spread + 0.05), fr.foot + 0.1, 0.24, 0.14, _shade(look.bottom, 0.6), st.outline, line)


def _bottom(fig, rng, st, look, fr, line) -> None:
    """Short skirt, long dress or trousers."""
    ww, choice = fr.waist_w, _choose(rng, ("skirt", "dress", "trousers"), (0.45, 0.2, 0.35))
    if choice == "trousers":
        for side in (-1, 1):
            leg = np.array([(0.0, fr.waist), (ww, fr.waist), (ww + 0.05, fr.hem + 0.4), (0.06, fr.hem + 0.4)])
            fig.polygon(leg * (side, 1), look.bottom, st.outline, line)
        return
    hem = fr.hem if choice == "skirt" else fr.foot - 0.45
    flare = rng.uniform(0.25, 0.55) * (1.0 if choice == "skirt" else 1.5)
    fig.polygon([(-ww, fr.waist), (ww, fr.waist), (ww + flare, hem), (-ww - flare, hem)], look.bottom, st.outline, line)


def _torso(fig, rng, st, look, fr, line) -> None:
    sw, ww, y = fr.shoulder_w, fr.waist_w, fr.shoulder
    fig.polygon([(-0.3, y - 0.05), (-sw, y + 0.1), (-ww, fr.waist), (ww, fr.waist), (sw, y + 0.1), (0.3, y - 0.05)],
                look.top, st.outline, line)
    fig.polygon([(-0.22, 0.7), (0.22, 0.7), (0.22, y), (-0.22, y)], look.skin, st.outline, line)
    if rng.random() < 0.5:
        fig.polygon([(-ww, fr.waist - 0.15), (ww, fr.waist - 0.15), (ww, fr.waist + 0.02), (-ww, fr.waist + 0.02)],
                    look.accent, st.outline, line)
    _neckline(fig, rng, st, look, y - 0.05, y + 0.3, line)


def _arms(fig, rng, st, look, fr, line) -> None:
    """Each arm hangs down, waves, or rests its hand on the hip."""
    sw = fr.shoulder_w
    for side in (-1, 1):
        pose, reach = _choose(rng, ("down", "wave", "hip"), (0.6, 0.2, 0.2)), rng.uniform(0.25, 0.6)
        root = (side * (sw - 0.1), fr.shoulder + 0.15)
        if pose == "down":
            hand = (side * (sw + reach), fr.waist + 0.38)
            arm = [root, (hand[0], fr.waist + 0.3)]
        elif pose == "wave":
            hand = (side * (sw + 0.45 + reach), fr.shoulder - 0.5)
            arm = [root, (side * (sw + 0.3 + reach), fr.shoulder + 0.5), hand]
        else:
            hand = (side * (fr.waist_w + 0.05), fr.waist - 0.05)
            arm = [root, (side * (sw + 0.2 + reach), (fr.shoulder + fr.waist) / 2), hand]
        fig.limb(arm, look.top, 0.28, st.outline, line)
        fig.ellipse(*hand, 0.15, 0.15, look.skin, st.outline, line)


def _body_figure(rng, st, look, clarity) -> _Figure:
    """Front-facing full figure leaning slightly; lines a little heavier than on icons as it is drawn smaller."""
    line = st.line * 1.6
    fr = _frame(rng, st)
    fig = _Figure()
    with fig.turned(rng.uniform(-0.07, 0.07), (0.0, fr.foot)):
        with fig.turned(look.tilt, _NECK):
            _draw_back_hair(fig, rng, st, look, line)
        _legs(fig, rng, st, look, fr, line)
        _bottom(fig, rng, st, look, fr, line)
        _torso(fig, rng, st, look, fr, line)
        _arms(fig, rng, st, look, fr, line)
        with fig.turned(look.tilt, _NECK):
            _draw_head(fig, rng, st, look, clarity, line)
    return fig


# ---------------------------------------------------------------------------
# rendering


@dataclass(frozen=True)
class _Placement:
    scale: float  # output pixels per head unit
    offset: np.ndarray  # output pixel position of head-unit origin

    def box(self, bounds: np.ndarray, size: tuple[int, int]) -> list[int]:
        """Pixel box (x1, y1 exclusive) covering ``bounds`` as the supersampled raster draws it.

        Pillow may round a shape's edge one supersampled pixel outwards, hence the +-1.
        """
        lo = np.floor((bounds[:2] * self.scale + self.offset) * _SUPERSAMPLE - 1) // _SUPERSAMPLE
        hi = np.floor((bounds[2:] * self.scale + self.offset) * _SUPERSAMPLE + 1) // _SUPERSAMPLE + 1
        lo = np.clip(lo, 0, np.array(size) - 1)
        hi = np.clip(hi, lo + 1, np.array(size))
        return [int(lo[0]), int(lo[1]), int(hi[0]), int(hi[1])]


def _place(bounds: np.ndarray, size: tuple[int, int], rng: np.random.Generator) -> _Placement:
    """Scale and shift the figure to a random place inside the margins."""
    extent = bounds[2:] - bounds[:2]
    margin = _MARGIN * np.array(size) + 1
    room = np.array(size) - 2 * margin
    scale = float(np.min(room / extent)) * rng.uniform(0.65, 1.0)
    slack = room - scale * extent
    offset = margin + rng.random(2) * slack - scale * bounds[:2]
    return _Placement(scale, offset)


def _render(fig: _Figure, size: tuple[int, int], place: _Placement, layer: str | None = None) -> Image.Image:
    """RGBA layer of the figure (only the shapes on ``layer`` if given), alpha 0 wherever nothing is drawn."""
    s = _SUPERSAMPLE
    canvas = Image.new("RGBA", (size[0] * s, size[1] * s), (0, 0, 0, 0))
    draw = ImageDraw.Draw(canvas)
    for op in fig.ops:
        if layer is not None and op.layer != layer:
            continue
        pts = (op.pts * place.scale + place.offset) * s
        xy = [tuple(p) for p in pts.tolist()]
        width = max(1, int(round(op.width * place.scale * s)))
        if op.shape == "ellipse":
            draw.ellipse(xy, fill=op.fill, outline=op.outline, width=width)
        elif op.shape == "polygon":
            draw.polygon(xy, fill=op.fill, outline=op.outline, width=width)
        else:
            draw.line(xy, fill=op.fill, width=width, joint="curve")
    return canvas.reduce(s)


# ---------------------------------------------------------------------------
# backgrounds


def _background(kind: str, size: tuple[int, int], rng: np.random.Generator, hair: Color) -> Image.Image | None:
    """Backdrop image, None for transparent."""
    w, h = size
    if kind == "transparent":
        return None
    if kind == "plain":
        return Image.new("RGB", size, _hsv(rng.random(), rng.uniform(0.1, 0.55), rng.uniform(0.45, 0.97)))
    if kind == "gradient":
        hue, sat = rng.random(), rng.uniform(0.1, 0.45)
        value = rng.uniform(0.8, 0.97)
        c0 = np.array(_hsv(hue, sat, value), dtype=float)
        c1 = np.array(_hsv(hue + rng.uniform(-0.06, 0.06), sat, value - rng.uniform(0.08, 0.25)), dtype=float)
        angle = rng.uniform(0, 2 * np.pi)
        yy, xx = np.mgrid[0:h, 0:w]
        t = yy * math.cos(angle) + xx * math.sin(angle)
        t = (t - t.min()) / (t.max() - t.min())
        pixels = c0 + t[..., None] * (c1 - c0)
    else:
        hue = _hue(hair) + rng.uniform(0.4, 0.6)  # away from the hair colour
        base = np.array(_hsv(hue, rng.uniform(0.08, 0.25), rng.uniform(0.78, 0.95)), dtype=float)
        pixels = base + _pattern(rng, size)[..., None] * base * 0.08
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8), "RGB")


def _pattern(rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Low-contrast pattern in [-1, 1]: fine noise, dots or stripes."""
    w, h = size
    yy, xx = np.mgrid[0:h, 0:w]
    choice = rng.integers(3)
    if choice == 0:
        return np.clip(rng.normal(0, 0.5, (h, w)), -1, 1)
    period = rng.uniform(6, 12)
    if choice == 1:
        dx = (xx + period / 2) % period - period / 2
        dy = (yy + period / 2) % period - period / 2
        return np.where(dx**2 + dy**2 < (period / 4) ** 2, -1.0, 0.0)
    angle = rng.uniform(0, np.pi)
    return np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * np.pi / period)


# ---------------------------------------------------------------------------
# style "photo": photo-like human faces
#
# The photo side of image-to-image translation (photo -> anime).  What sets it apart from the
# illustrators is what a photo has and a drawing lacks: realistic proportions (eyes at half the head's
# height and a fifth of its width), natural colours, light and shadow instead of lines, grain and a
# little lens blur.  Shapes are still drawn flat with the _Figure machinery, but each group of them on
# its own layer, so that numpy can light every layer by its own surface model and composite them.

# back to front; "lid", "white", "iris" and "detail" hold the eyes and the mouth (the parts that
# ``clarity`` fades), "head" the skin of the face with ears and brows
_PHOTO_LAYERS = ("back", "body", "head", "lid", "white", "iris", "detail", "front")
_PHOTO_PAD = 0.2  # head units kept free around the figure when placing it: room for the softening blur
_SOFT_BLUR = (0.45, 0.65)  # range of the lens blur's sigma, pixels (a kernel of radius 2 px)


@dataclass(frozen=True)
class _PhotoLook:
    """One person's random choices; lengths in head units (head half-width 1, eyes near y = 0.1)."""

    skin: Color
    hair: Color
    iris: Color
    lips: Color
    top: Color
    cut: str  # "short" | "bob" | "long" | "tied" (pulled back, with a bun)
    hair_length: float  # lowest point of the back hair
    curtains: bool  # hair falling in front, beside the face
    fringe: str  # "none" | "swept" | "straight"
    parting: float  # x of the parting
    tilt: float
    eye_y: float
    eye_spacing: float  # x of the eye centres
    eye_size: float  # half-width of an eye
    nose_y: float  # height of the nose tip
    mouth_y: float
    mouth_width: float  # half-width
    lips_full: float
    chin: float  # length of the lower face
    jaw: float  # how much the lower face narrows towards the chin
    neck: float  # half-width
    shoulders: float  # half-width
    neckline: str  # "crew" | "v" | "collar"
    light: float  # horizontal position of the key light, -1 (left) .. 1 (right); it is always above
    ambient: float  # brightness of surfaces turned away from the light
    grain: float  # std of the sensor noise, 8-bit levels
    blur: float  # sigma of the lens blur, pixels
    warmth: float  # white balance: > 0 warmer, < 0 cooler


def _photo_look(rng: np.random.Generator, st: _Style) -> _PhotoLook:
    skin = st.pick(rng, st.skin, 6)
    cut = _choose(rng, ("short", "bob", "long", "tied"), (0.25, 0.25, 0.35, 0.15))
    length = {"short": (0.0, 0.3), "bob": (0.8, 1.2), "long": (1.9, 2.6), "tied": (-0.1, 0.1)}[cut]
    eye_y = rng.uniform(0.04, 0.14)
    chin = rng.uniform(1.28, 1.42)
    nose_y = eye_y + rng.uniform(0.5, 0.58)
    return _PhotoLook(
        skin=skin,
        hair=st.pick(rng, st.hair, 8),
        iris=st.pick(rng, st.eyes, 10),
        lips=_mix(skin, st.pick(rng, st.accents, 8), rng.uniform(0.4, 0.6)),
        top=st.pick(rng, st.clothes, 10),
        cut=cut,
        hair_length=rng.uniform(*length),
        curtains=bool(cut in ("bob", "long") and rng.random() < 0.6),
        fringe="none" if cut == "tied" else _choose(rng, ("none", "swept", "straight"), (0.4, 0.4, 0.2)),
        parting=rng.uniform(-0.45, 0.45),
        tilt=rng.uniform(-0.12, 0.12),
        eye_y=eye_y,
        eye_spacing=rng.uniform(0.39, 0.44),
        eye_size=rng.uniform(0.17, 0.2) * st.eye_scale,
        nose_y=nose_y,
        mouth_y=nose_y + (chin - nose_y) * rng.uniform(0.3, 0.38),
        mouth_width=rng.uniform(0.3, 0.37),
        lips_full=rng.uniform(0.8, 1.25),
        chin=chin,
        jaw=rng.uniform(0.2, 0.35),
        neck=rng.uniform(0.42, 0.52),
        shoulders=rng.uniform(1.55, 1.85),
        neckline=_choose(rng, ("crew", "v", "collar")),
        light=rng.uniform(-1.0, 1.0),
        ambient=rng.uniform(0.42, 0.6),
        grain=rng.uniform(2.0, 4.5),
        blur=rng.uniform(*_SOFT_BLUR),
        warmth=rng.uniform(-0.04, 0.04),
    )


def _smooth(pts, rounds: int = 3) -> np.ndarray:
    """Chaikin corner cutting of a closed polygon: a smooth outline through a few control points."""
    pts = np.asarray(pts, dtype=float)
    for _ in range(rounds):
        nxt = np.roll(pts, -1, axis=0)
        pts = np.stack([0.75 * pts + 0.25 * nxt, 0.25 * pts + 0.75 * nxt], axis=1).reshape(-1, 2)
    return pts


# -- shapes (flat colour; the light comes later)


def _natural_back_hair(fig, rng, look) -> None:
    """The hair's mass behind the head: a dome over the skull, for longer cuts falling down the sides."""
    rx, ry = rng.uniform(1.1, 1.2), rng.uniform(1.3, 1.4)
    dome = _arc(0, -0.1, rx, ry, np.pi, 2 * np.pi, 9)  # left -> over the top -> right
    length = look.hair_length
    if length < 0.5:  # short or tied: the dome closes just below the ears
        hem = [(rx * 0.95, length), (0.0, length + 0.12), (-rx * 0.95, length)]
    else:
        flare = rng.uniform(0.05, 0.3) * min(length, 2.0)
        xs = np.linspace(rx + flare, -rx - flare, 6)
        hem = [(rx + flare * 0.6, length * 0.55)]
        hem += [(x, length - 0.12 * (x / (rx + flare)) ** 2 + rng.uniform(-0.06, 0.06)) for x in xs]
        hem += [(-rx - flare * 0.6, length * 0.55)]
    fig.polygon(_smooth(np.concatenate([dome, hem])), _shade(look.hair, 0.95))
    if look.cut == "tied":
        side = 1.0 if look.parting > 0 else -1.0
        fig.ellipse(side * 0.35, -1.3, 0.38, 0.32, look.hair)


def _hairline(rng, look) -> list[tuple[float, float]]:
    """Lower edge of the front hair across the forehead, right temple to left temple."""
    p = look.parting
    if look.fringe == "straight":  # bangs cut straight above the brows
        cut = rng.uniform(-0.42, -0.32)
        return [(0.92, -0.25), (0.7, cut), (0.25, cut + rng.uniform(-0.03, 0.03)), (-0.25, cut), (-0.7, cut),
                (-0.92, -0.25)]
    if look.fringe == "swept":  # swept from the parting over the far side of the forehead
        far = -1.0 if p > 0 else 1.0
        dip = rng.uniform(-0.42, -0.3)
        right = [(0.92, -0.2), (0.72, -0.52), (p + 0.08, -0.68)] if far < 0 else [(0.92, dip + 0.12), (0.6, dip)]
        left = [(-0.6, dip), (-0.92, dip + 0.12)] if far < 0 else [(p - 0.08, -0.68), (-0.72, -0.52), (-0.92, -0.2)]
        return right + [(p, -0.7)] + left
    return [(0.92, -0.15), (0.8, -0.48), (0.45, -0.64), (p, -0.7), (-0.45, -0.64), (-0.8, -0.48), (-0.92, -0.15)]


def _natural_front_hair(fig, rng, look) -> None:
    """Hair over the skull down to the hairline; hair falling in front beside the face for some cuts."""
    rx, ry = 1.1, 1.32
    top = _arc(0, -0.1, rx, ry, np.pi, 2 * np.pi, 11)  # left temple -> over the top -> right temple
    temple = look.eye_y - 0.02
    if look.curtains:  # down the outside of the face, up its side; never nearer the middle than 0.84
        end = min(look.hair_length, 2.0)
        spread = rng.uniform(0.0, 0.15)
        right = [(rx + 0.04, 0.4), (rx + 0.1 + spread, end - 0.2), (1.0 + spread, end), (0.92, 0.8), (0.85, 0.2)]
    else:
        right = [(rx, temple), (0.96, temple)]
    pts = np.concatenate([top, right, _hairline(rng, look), _mirror(np.array(right))[::-1]])
    fig.polygon(_smooth(pts), look.hair)


def _photo_head(fig, look) -> None:
    """Ears (for cuts that leave them free), then the face: a skull taller than wide, a narrowing jaw."""
    if look.cut in ("short", "tied"):
        for side in (-1, 1):
            fig.ellipse(side * 0.98, look.eye_y + 0.24, 0.12, 0.23, _shade(look.skin, 0.93))
    t = np.linspace(0, 2 * np.pi, 72, endpoint=False)
    c, s = np.cos(t), np.sin(t)
    lower = s > 0
    x = np.where(lower, np.sign(c) * np.abs(c) ** 0.85 * (1 - look.jaw * s**2), c)
    y = np.where(lower, s * look.chin, s * 1.2)
    fig.polygon(np.stack([x, y], axis=1), look.skin, part="face")


def _photo_brows(fig, look) -> None:
    """Tapered brows, thick near the nose, a little darker than the hair (not a part: clarity keeps them)."""
    colour = _mix(look.skin, _shade(look.hair, 0.75), 0.7)
    for side in (-1, 1):
        x0, w, y = side * look.eye_spacing, look.eye_size, look.eye_y
        t = np.linspace(0, 1, 9)
        xs = x0 + side * w * (-1.05 + 2.2 * t)
        ys = y - 0.2 - 0.04 * np.sin(np.pi * t**0.8)
        half = 0.036 * (1 - 0.55 * t)
        fig.polygon(np.concatenate([np.stack([xs, ys - half], 1), np.stack([xs, ys + half], 1)[::-1]]), colour)


def _photo_eye(fig, rng, side, look) -> None:
    """Almond eye: lid shading around it, the white, iris and pupil (clipped to the white), lash line."""
    part = "left_eye" if side < 0 else "right_eye"
    cx, cy, w = side * look.eye_spacing, look.eye_y, look.eye_size
    h = 0.36 * w
    inner, outer = np.array([cx - side * w, cy + 0.01]), np.array([cx + side * w, cy - 0.012])
    t = np.linspace(0, 1, 12)[:, None]
    line = inner + t * (outer - inner)
    upper = line - [0.0, 1.15 * h] * np.sin(np.pi * t**0.8)  # highest nearer the nose
    lower = line + [0.0, 0.8 * h] * np.sin(np.pi * t**1.25)  # lowest nearer the temple
    with fig.on("lid"):  # the socket and lid fold, darker towards the eye
        for k, f in enumerate((0.95, 0.9, 0.85)):
            fig.ellipse(cx, cy - 0.3 * h, w * (1.25 - 0.08 * k), h * (2.2 - 0.35 * k), _shade(look.skin, f), part=part)
    with fig.on("white"):
        fig.polygon(np.concatenate([upper, lower[::-1][1:-1]]), _mix(_shade(look.skin, 0.8), (235, 230, 228), 0.6),
                    part=part)
    gaze = rng.uniform(-0.12, 0.12) * w
    r, iy = 0.46 * w, cy - 0.1 * h
    with fig.on("iris"):
        fig.ellipse(cx + gaze, iy, r, r, _shade(look.iris, 0.6), part=part)  # darker limbal ring
        fig.ellipse(cx + gaze, iy, 0.8 * r, 0.8 * r, look.iris, part=part)
        fig.ellipse(cx + gaze, iy, 0.36 * r, 0.36 * r, (24, 18, 18), part=part)
        # a catchlight, small: a photo's eye has no anime gloss
        fig.ellipse(cx + gaze + 0.3 * r * look.light, iy - 0.3 * r, 0.12 * r, 0.12 * r,
                    _mix(look.iris, WHITE, 0.55), part=part)
    with fig.on("detail"):
        lash = _mix(_shade(look.skin, 0.45), _shade(look.hair, 0.6), 0.4)
        fig.line(upper, lash, 0.026, part)
        fig.line(lower[2:-2], _shade(look.skin, 0.72), 0.012, part)


def _photo_lips(fig, look) -> None:
    """Upper lip with a cupid's bow (in shade), fuller lower lip, a darker line where they meet."""
    my, mw = look.mouth_y, look.mouth_width
    upper_h, lower_h = 0.06 * look.lips_full, 0.085 * look.lips_full
    x = np.linspace(-mw, mw, 21)
    u = x / mw
    meet = my + 0.01 * (1 - u**2)
    top = my - upper_h * (1 - u**2) ** 0.7 * (1 - 0.3 * np.exp(-((x / 0.05) ** 2)))
    bottom = my + lower_h * (1 - u**2) ** 0.55
    with fig.on("detail"):
        fig.polygon(np.concatenate([np.stack([x, top], 1), np.stack([x, meet], 1)[::-1]]), _shade(look.lips, 0.85),
                    part="mouth")
        fig.polygon(np.concatenate([np.stack([x, meet], 1), np.stack([x, bottom], 1)[::-1]]), look.lips,
                    part="mouth")
        fig.ellipse(0.0, my + 0.45 * lower_h, 0.35 * mw, 0.22 * lower_h, _mix(look.lips, WHITE, 0.12), part="mouth")
        fig.line(np.stack([x, meet], 1), _shade(look.lips, 0.6), 0.016, "mouth")


def _photo_bust(fig, rng, look) -> None:
    """Neck and shoulders in a plain top with a crew, V or shirt-collar neckline."""
    nw = look.neck
    fig.polygon([(-nw, 0.6), (nw, 0.6), (nw + 0.06, 2.1), (-nw - 0.06, 2.1)], look.skin)
    top, w, bottom = 1.5 + rng.uniform(0.0, 0.1), look.shoulders, rng.uniform(2.25, 2.45)
    depth = top + {"crew": 0.28, "v": 0.6, "collar": 0.38}[look.neckline] + rng.uniform(-0.05, 0.05)
    xs = np.linspace(0.0, nw + 0.08, 7)
    if look.neckline == "v":
        neckline = np.stack([xs, depth - (depth - top) * xs / xs[-1]], axis=1)
    else:
        neckline = np.stack([xs, depth - (depth - top) * (xs / xs[-1]) ** 2], axis=1)
    right = np.concatenate([neckline, [(0.95, top + 0.16), (w - 0.25, top + 0.3), (w, top + 0.6), (w + 0.02, bottom)]])
    fig.polygon(_mirror(right)[::-1].tolist() + right.tolist(), look.top)
    if look.neckline == "collar":
        collar = _mix(look.top, WHITE, 0.25)
        for side in (-1, 1):
            fig.polygon([(side * (nw + 0.1), top - 0.06), (side * 0.04, depth + 0.04), (side * (nw + 0.3), top + 0.3)],
                        collar)


def _photo_figure(rng, look) -> _Figure:
    """Every shape of the picture, each on its layer; the head (with its hair) tilted about the neck."""
    fig = _Figure()
    with fig.turned(look.tilt, _NECK), fig.on("back"):
        _natural_back_hair(fig, rng, look)
    with fig.on("body"):
        _photo_bust(fig, rng, look)
    with fig.turned(look.tilt, _NECK):
        with fig.on("head"):
            _photo_head(fig, look)
            _photo_brows(fig, look)
        for side in (-1, 1):
            _photo_eye(fig, rng, side, look)
        _photo_lips(fig, look)
        with fig.on("front"):
            _natural_front_hair(fig, rng, look)
    return fig


# -- light: each layer's brightness from a rough surface model, lit from above at one side


def _blur(a: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur over the first two axes, kernel cut at 3 sigma; nothing outside the array."""
    r = max(1, math.ceil(3 * sigma))
    k = np.exp(-0.5 * (np.arange(-r, r + 1) / sigma) ** 2)
    k /= k.sum()
    for _ in range(2):  # along axis 0, then (transposed) along axis 1
        padded = np.pad(a, [(r, r)] + [(0, 0)] * (a.ndim - 1))
        a = sum(weight * padded[i:i + a.shape[0]] for i, weight in enumerate(k)).swapaxes(0, 1)
    return a


def _shifted(a: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """``a`` moved by (dx, dy) pixels (either sign), zeros where it came from outside."""
    out = np.zeros_like(a)
    h, w = a.shape[:2]
    to_y, to_x = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    out[to_y, to_x] = a[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)]
    return out


def _grid(size: tuple[int, int], place: _Placement, tilt: float) -> tuple[np.ndarray, np.ndarray]:
    """Head-unit coordinates of each pixel centre, in the frame of a figure part turned by ``tilt`` about the neck."""
    w, h = size
    px, py = np.meshgrid(np.arange(w, dtype=np.float32) + 0.5, np.arange(h, dtype=np.float32) + 0.5)
    x, y = (px - place.offset[0]) / place.scale, (py - place.offset[1]) / place.scale - _NECK[1]
    c, s = math.cos(tilt), math.sin(tilt)
    return c * x + s * y, -s * x + c * y + _NECK[1]


def _blob(x, y, s) -> np.ndarray:
    return np.exp(-(x**2 + y**2) / s**2)


def _lambert(nx, ny, nz, look) -> np.ndarray:
    """Brightness of a surface with normal (nx, ny, nz) (y down, z to the camera); 1 where it faces the camera."""
    light = np.array([0.55 * look.light, -0.45, 0.7])
    light /= np.linalg.norm(light)
    lit = np.clip(nx * light[0] + ny * light[1] + nz * light[2], 0.0, 1.0)
    return 0.95 * (look.ambient + (1 - look.ambient) * lit) / (look.ambient + (1 - look.ambient) * light[2])


def _relief(height: np.ndarray, step: float, look) -> np.ndarray:
    """Lambert brightness of the surface z = height (head units; ``step`` = head units per pixel)."""
    gy, gx = np.gradient(height, step)
    norm = np.sqrt(1 + gx**2 + gy**2)
    return _lambert(-gx / norm, -gy / norm, 1 / norm, look)


def _face_light(x, y, step, look) -> np.ndarray:
    """Brightness of the face: a rounded face with brow ridge, cheekbones, eye sockets and a nose.

    The nose is only a bump in this surface: it shows as a lit side, a shaded side and a shadow under
    the tip, as in a photo, with no line.  Nostrils are two soft dark spots.
    """
    r2 = x**2 + ((y - 0.15) / 1.35) ** 2
    h = 0.7 * (1 - np.minimum(r2, 1.3))
    along = (y - look.eye_y) / (look.nose_y - look.eye_y)  # 0 between the eyes, 1 at the tip
    bridge = np.clip(along, 0.0, 1.0)
    under_tip = np.exp(-(((y - look.nose_y) / 0.05) ** 2))  # the nose ends just below its tip
    ridge = np.where(along < 0, 0.0, np.where(along > 1, under_tip, bridge**0.8))
    h += 0.12 * ridge * np.exp(-((x / (0.06 + 0.05 * bridge)) ** 2))  # wider towards the tip
    h += 0.05 * _blob(x, y - look.nose_y + 0.02, 0.09)
    for side in (-1, 1):
        h += 0.03 * _blob(x - side * 0.1, y - look.nose_y, 0.06)  # the wings of the nose
        h += 0.04 * _blob(x - side * 0.5, y - look.eye_y - 0.32, 0.22)  # cheekbone
        h -= 0.035 * _blob(x - side * look.eye_spacing, y - look.eye_y, 0.16)  # eye socket
    h += 0.025 * np.exp(-(((y - look.eye_y + 0.2) / 0.07) ** 2)) * np.exp(-((x / 0.75) ** 4))  # brow ridge
    h += 0.03 * _blob(x, y - look.chin + 0.2, 0.18)  # chin
    light = _relief(h, step, look)
    for side in (-1, 1):  # nostrils
        light *= 1 - 0.45 * _blob(x - side * 0.075, (y - look.nose_y - 0.045) * 1.6, 0.032)
    return light


def _hair_light(x, y, look, rng) -> tuple[np.ndarray, np.ndarray]:
    """(factor, added sheen) of the hair: round over the crown, hanging straight below it, with strands."""
    nx = np.clip(x / 1.3, -0.97, 0.97)
    ny = np.clip(np.minimum(y + 0.1, 0.0) / 1.4, -0.97, 0.0)
    nz = np.sqrt(np.clip(1 - nx**2 - ny**2, 0.05, 1.0))
    # strands fan out from above the head; across them the brightness varies a little
    across = 3.0 * np.arctan2(x, y + 3.0)
    freq, phase, amp = rng.uniform(6, 24, 8), rng.uniform(0, 2 * np.pi, 8), rng.uniform(0.3, 1.0, 8)
    strands = sum(a * np.sin(2 * np.pi * f * across + p) for f, p, a in zip(freq, phase, amp)) / np.sqrt(
        0.5 * np.sum(amp**2))
    r = np.sqrt((x / 1.15) ** 2 + ((y + 0.1) / 1.3) ** 2)
    # a band of sheen round the crown, brighter on the side of the light
    sheen = np.exp(-(((r - 0.72) / 0.09) ** 2)) * (y < 0.0) * (1 + 0.3 * strands) * (1 + 0.4 * look.light * np.sign(x))
    return _lambert(nx, ny, nz, look) * (1 + 0.07 * strands), 0.1 * np.clip(sheen, 0, None)


def _body_light(x, y, look) -> np.ndarray:
    """Neck and shoulders as upright cylinders (the neck narrow, the torso wide)."""
    radius = np.where(y < 1.55, look.neck + 0.1, look.shoulders + 0.15)
    nx = np.clip(x / radius, -0.95, 0.95)
    ny = np.where(y < 1.55, 0.0, -0.25)  # the top of the shoulders faces up a little
    return _lambert(nx, ny, np.sqrt(1 - nx**2 - ny**2), look) * np.where(y < 1.55, 0.9, 1.0)


# -- layers to picture


def _premultiplied(layer: Image.Image) -> np.ndarray:
    """Premultiplied float RGBA in [0, 1] (float32: the photo style's layers are its main cost)."""
    a = np.asarray(layer, dtype=np.float32) / 255
    return np.concatenate([a[..., :3] * a[..., 3:], a[..., 3:]], axis=-1)


def _over(top: np.ndarray, bottom: np.ndarray) -> np.ndarray:
    """Porter-Duff "over" of premultiplied RGBA arrays."""
    return top + bottom * (1 - top[..., 3:])


def _lit(layer: np.ndarray, factor: np.ndarray, add: np.ndarray | float = 0.0) -> np.ndarray:
    """Multiply a premultiplied layer's colour by ``factor`` (per pixel, or per pixel and channel) and add light.

    Shadows get warmer (red fades slowest), as light scattered under skin and through hair does.
    """
    f = np.maximum(factor, 1e-6)
    if f.ndim == 2:
        log = np.log(f)
        f = np.stack([np.exp(0.85 * log), f, np.exp(1.12 * log)], axis=-1)
    add = np.asarray(add)[..., None] if np.ndim(add) == 2 else add
    return np.concatenate([layer[..., :3] * f + add * layer[..., 3:], layer[..., 3:]], axis=-1)


def _cast_shadow(caster: np.ndarray, dx: float, dy: float, sigma: float) -> np.ndarray:
    """Soft shadow (0..1) of an alpha mask moved by (dx, dy) pixels and blurred."""
    return _blur(_shifted(caster, int(round(dx)), int(round(dy))), max(sigma, 0.5))


def _photo_character(rng: np.random.Generator, st: _Style, size: tuple[int, int],
                     clarity: float) -> tuple[Image.Image, dict[str, list[int]], Color]:
    """A photo-like face's RGBA layer, its part boxes and its hair colour.

    Eyes and mouth are composited with opacity ``clarity`` and cut to their boxes after the lens blur,
    so a clarity changes nothing outside those boxes; nothing random depends on it.
    """
    look = _photo_look(rng, st)
    fig = _photo_figure(rng, look)
    place = _place(fig.bounds() + np.array([-1, -1, 1, 1]) * _PHOTO_PAD, size, rng)
    parts = {p: place.box(fig.bounds(p), size) for p in _PARTS}
    layers = {name: _premultiplied(_render(fig, size, place, name)) for name in _PHOTO_LAYERS}
    base, features, front = _light(layers, look, place, rng)
    inside = np.zeros(features.shape[:2], dtype=np.float32)
    for name in ("left_eye", "right_eye", "mouth"):
        x0, y0, x1, y1 = parts[name]
        inside[y0:y1, x0:x1] = 1.0
    features = _blur(features, look.blur) * (inside * clarity)[..., None]
    picture = _over(_blur(front, look.blur), _over(features, _blur(base, look.blur)))
    return _develop(picture, look, rng), parts, look.hair


def _light(layers: dict[str, np.ndarray], look: _PhotoLook, place: _Placement,
           rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lit layers, composited into three: what lies behind the eyes and mouth, the eyes and mouth, the front hair.

    The hair casts a soft shadow on the forehead, head and hair one on the neck; they fall away from the light.
    """
    h, w = layers["head"].shape[:2]
    step, unit = 1 / place.scale, place.scale  # head units per pixel, pixels per head unit
    hx, hy = _grid((w, h), place, look.tilt)
    bx, by = _grid((w, h), place, 0.0)
    hair, sheen = _hair_light(hx, hy, look, rng)
    front_alpha = layers["front"][..., 3]
    away = -look.light * 0.05 * unit
    face = _face_light(hx, hy, step, look) * (1 - 0.3 * _cast_shadow(front_alpha, away, 0.05 * unit, 0.12 * unit))
    chin = np.maximum(layers["head"][..., 3], front_alpha)
    body = _body_light(bx, by, look) * (1 - 0.45 * _cast_shadow(chin, away, 0.15 * unit, 0.15 * unit))
    back = _lit(layers["back"], hair * 0.72, sheen * 0.5)  # the hair behind the head is in its shade
    base = _over(_lit(layers["head"], face), _over(_lit(layers["body"], body), back))
    iris = layers["iris"] * layers["white"][..., 3:]  # only where the white of the eye shows
    features = _over(layers["detail"], _over(iris, _over(layers["white"], layers["lid"])))
    return base, _lit(features, face), _lit(layers["front"], hair, sheen)


def _develop(picture: np.ndarray, look, rng) -> Image.Image:
    """Premultiplied float RGBA to an 8-bit RGBA image, with the white balance and sensor grain of a photo."""
    alpha = picture[..., 3:]
    rgb = np.where(alpha > 0, picture[..., :3] / np.maximum(alpha, 1e-6), 0.0)
    rgb = rgb * np.array([1 + look.warmth, 1.0, 1 - look.warmth])
    h, w = alpha.shape[:2]
    grain = rng.normal(0.0, look.grain / 255, (h, w, 1)) + rng.normal(0.0, 0.4 * look.grain / 255, (h, w, 3))
    rgba = np.concatenate([np.where(alpha > 0, rgb + grain, 0.0), alpha], axis=-1)
    return Image.fromarray(np.round(np.clip(rgba, 0.0, 1.0) * 255).astype(np.uint8))


def _photo_background(kind: str, size: tuple[int, int], rng: np.random.Generator, hair: Color) -> Image.Image | None:
    """As for the illustrators, except that "texture" is an out-of-focus room: soft blobs of muted colour, grain."""
    if kind != "texture":
        return _background(kind, size, rng, hair)
    w, h = size
    cols, rows = (int(v) for v in rng.integers(3, 6, size=2))
    base = np.array(_hsv(rng.random(), rng.uniform(0.08, 0.3), rng.uniform(0.45, 0.9)), dtype=float)
    blobs = base * (1 + rng.normal(0.0, 0.15, (rows, cols, 1))) + rng.normal(0.0, 10.0, (rows, cols, 3))
    room = Image.fromarray(np.clip(np.round(blobs), 0, 255).astype(np.uint8)).resize(size, Image.Resampling.BICUBIC)
    pixels = np.asarray(room, dtype=float) + rng.normal(0.0, 1.5, (h, w, 1))
    return Image.fromarray(np.clip(np.round(pixels), 0, 255).astype(np.uint8))


# ---------------------------------------------------------------------------
# samples


@dataclass(frozen=True)
class _Sample:
    """A generated image together with the layers it was composed of."""

    image: SyntheticImage
    character: Image.Image  # RGBA
    backdrop: Image.Image | None  # RGB, None when transparent
    hair: Color = (0, 0, 0)


def _group_key(seed: int, kind: str, style: str, variant: str) -> int:
    return zlib.crc32(f"{seed}|{kind}|{style}|{variant}".encode())


def _backdrop_kind(key: int, index: int) -> str:
    """Each block of five consecutive images uses every entry of ``_BACKGROUND_CYCLE`` once, shuffled:
    exactly 40% plain and 20% each of the others, in no fixed pattern."""
    block, slot = divmod(index, len(_BACKGROUND_CYCLE))
    order = np.random.default_rng([key, block]).permutation(len(_BACKGROUND_CYCLE))
    return _BACKGROUND_CYCLE[int(order[slot])]


def _size(kind: str, rng: np.random.Generator) -> tuple[int, int]:
    if kind == "face":
        lo, hi = _FACE_SIDE
        return int(rng.integers(lo, hi + 1)), int(rng.integers(lo, hi + 1))
    (wlo, whi), (hlo, hhi) = _BODY_SIZE
    return int(rng.integers(wlo, whi + 1)), int(rng.integers(hlo, hhi + 1))


def _sample(kind: str, style: str, variant: str, key: int, index: int, attempt: int,
            clarity: float | tuple[float, float] | None) -> _Sample:
    """Attempt ``attempt`` at image ``index`` of a group.

    The clarity is drawn even when given, so a given clarity changes nothing but eyes and mouth.  A
    (lo, hi) range maps the drawn value linearly onto it (same rank order as the default draw).
    """
    rng = np.random.default_rng([key, index, attempt])
    size = _size(kind, rng)
    drawn = rng.uniform(*_CLARITY_RANGE)
    if clarity is None:
        clarity = drawn
    elif isinstance(clarity, tuple):
        lo, hi = clarity
        clarity = lo + (hi - lo) * (drawn - _CLARITY_RANGE[0]) / (_CLARITY_RANGE[1] - _CLARITY_RANGE[0])
    else:
        clarity = float(clarity)
    background = _backdrop_kind(key, index)
    st = _style(style, variant)
    if style == "photo":
        character, parts, hair = _photo_character(rng, st, size, clarity)
        backdrop = _photo_background(background, size, rng, hair)
    else:
        character, parts, hair = _drawn_character(rng, kind, st, size, clarity)
        backdrop = _background(background, size, rng, hair)
    if backdrop is None:
        image = character
    else:
        image = Image.alpha_composite(backdrop.convert("RGBA"), character).convert("RGB")
    name = f"{kind}-{style}-{variant}-{index:04d}"
    return _Sample(SyntheticImage(name, image, background, parts, clarity), character, backdrop, hair)


def _skin(character: Image.Image, parts: dict[str, list[int]]) -> Color:
    """The character's skin colour: the median of a small patch of the cheek, below the left eye."""
    x0, _, x1, y1 = parts["left_eye"]
    my0 = parts["mouth"][1]
    cx, cy = (x0 + x1) // 2, (y1 + my0) // 2
    patch = np.asarray(character)[max(0, cy - 2) : cy + 3, max(0, cx - 2) : cx + 3, :3].reshape(-1, 3)
    return tuple(int(v) for v in np.median(patch, axis=0))


def _frame_cut(character: Image.Image) -> tuple[int, int, int, int]:
    """The crop of ``cut_by_frame``: a third of the figure off the left, a tenth off the top, a fifth
    off the bottom (x0, y0, x1, y1 in the picture)."""
    x0, y0, x1, y1 = character.getchannel("A").getbbox()
    return x0 + (x1 - x0) // 3, y0 + (y1 - y0) // 10, character.width, y1 - (y1 - y0) // 5


def _with_hazard(sample: _Sample, hazard: str) -> SyntheticImage:
    """The cutout failure cases the gate must catch, from an image's own layers: the character on a
    plain background of its own skin (``skin_background``) or hair (``hair_background``) colour, or
    its picture cropped so that the frame cuts the figure on three sides (``cut_by_frame``,
    :func:`_frame_cut`).  The part boxes are dropped (a crop moves them); ``background`` names the hazard."""
    img, char = sample.image, sample.character
    if hazard == "cut_by_frame":
        picture = img.image.crop(_frame_cut(char))
    else:
        colour = _skin(char, img.parts) if hazard == "skin_background" else sample.hair
        picture = Image.alpha_composite(Image.new("RGBA", char.size, (*colour, 255)), char).convert("RGB")
    return replace(img, name=f"{img.name}-{hazard}", image=picture, background=hazard, parts={})


def hazard_cases(kind: str, style: str, n: int, seed: int) -> Iterator[tuple[SyntheticImage, np.ndarray]]:
    """``n`` cutout failure cases (the hazards in turn, as ``generate(..., hazard="mixed")``), each with
    the true character mask (bool, in the hazard image's frame): what a cutout should have kept."""
    _check(kind, style, "early", n, seed, None)
    for i, sample in enumerate(_samples(kind, style, "early", n, seed, None)):
        hazard = HAZARDS[i % len(HAZARDS)]
        case = _with_hazard(sample, hazard)
        alpha = sample.character.getchannel("A")
        if hazard == "cut_by_frame":
            alpha = alpha.crop(_frame_cut(sample.character))
        yield case, np.asarray(alpha) > 127


def _drawn_character(rng: np.random.Generator, kind: str, st: _Style, size: tuple[int, int],
                     clarity: float) -> tuple[Image.Image, dict[str, list[int]], Color]:
    """An illustrator's (style a or b) character layer, its part boxes and its hair colour."""
    look = _look(rng, st, kind)
    fig = (_face_figure if kind == "face" else _body_figure)(rng, st, look, clarity)
    whole = fig.bounds()
    place = _place(whole, size, rng)
    character = _render(fig, size, place)
    parts = {p: place.box(fig.bounds(p), size) for p in _PARTS}
    if kind == "body":
        parts["body"] = place.box(whole, size)
    return character, parts, look.hair


def _fingerprint(image: Image.Image) -> np.ndarray:
    """(phash, colorhash) of the image composited onto black, each packed into a 64-bit integer."""
    if image.mode == "RGBA":
        image = Image.alpha_composite(Image.new("RGBA", image.size, (0, 0, 0, 255)), image).convert("RGB")
    hashes = (imagehash.phash(image, hash_size=8).hash, imagehash.colorhash(image, binbits=3).hash)
    return np.array([int.from_bytes(np.packbits(h.ravel()).tobytes(), "big") for h in hashes], dtype=np.uint64)


@dataclass
class _Distinct:
    """Fingerprints of a group's accepted images; refuses near-duplicates of any of them."""

    seen: np.ndarray = field(default_factory=lambda: np.zeros((0, 2), dtype=np.uint64))

    def accept(self, image: Image.Image) -> bool:
        mark = _fingerprint(image)
        bits = np.bitwise_count(self.seen ^ mark)
        if np.any((bits[:, 0] <= _NEAR_PHASH) & (bits[:, 1] <= _NEAR_COLORHASH)):
            return False
        self.seen = np.vstack([self.seen, mark])
        return True


def _samples(kind: str, style: str, variant: str, n: int, seed: int,
             parts_clarity: float | tuple[float, float] | None) -> Iterator[_Sample]:  # fmt: skip
    """The group's first ``n`` samples.

    An attempt that nearly duplicates an earlier image of the group (judged on the normal
    clarity mix) is redrawn, so image i depends on images 0..i-1 but never on ``n``.
    """
    key = _group_key(seed, kind, style, variant)
    distinct = _Distinct()
    for index in range(n):
        attempt = 0
        sample = _sample(kind, style, variant, key, index, attempt, None)
        while not distinct.accept(sample.image.image):
            attempt += 1
            sample = _sample(kind, style, variant, key, index, attempt, None)
        if parts_clarity is not None:
            sample = _sample(kind, style, variant, key, index, attempt, parts_clarity)
        yield sample


def _check(kind: str, style: str, variant: str, n: int, seed: int, parts_clarity) -> None:
    for label, value, allowed in (("kind", kind, KINDS), ("style", style, STYLES), ("variant", variant, VARIANTS)):
        if value not in allowed:
            raise ValueError(f"unknown {label} {value!r}; expected one of {', '.join(allowed)}")
    if style == "photo" and kind != "face":
        raise ValueError(f"style 'photo' draws faces only (kind 'face'), not kind {kind!r}; "
                         "kind 'body' exists for styles a and b")
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        raise ValueError(f"n must be a non-negative integer, got {n!r}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed must be an integer, got {seed!r}")
    if isinstance(parts_clarity, tuple):
        if len(parts_clarity) != 2 or not 0.0 <= parts_clarity[0] <= parts_clarity[1] <= 1.0:
            raise ValueError(f"a parts_clarity range must be (lo, hi) with 0 <= lo <= hi <= 1, got {parts_clarity!r}")
    elif parts_clarity is not None and not 0.0 <= parts_clarity <= 1.0:
        raise ValueError(f"parts_clarity must be in [0, 1], a (lo, hi) range or None, got {parts_clarity!r}")


def generate(
    kind: str, style: str, variant: str, n: int, seed: int, parts_clarity: float | tuple[float, float] | None = None,
    hazard: str | None = None,
) -> Iterator[SyntheticImage]:
    """Yield the first ``n`` images of one (kind, style, variant) group.

    Image i depends on (seed, kind, style, variant, i) only, never on ``n``, and is no
    near-duplicate of an earlier image of the group.  ``parts_clarity`` fixes how visibly eyes
    and mouth are drawn (0 absent, 1 bold); None draws it per image uniformly from [0.3, 1.0], and a
    (lo, hi) tuple uniformly from [lo, hi].  ``hazard`` turns each image into a case cutout gets
    wrong (one of :data:`HAZARDS`; ``mixed`` takes them in turn), for the cutout gate's tests and demo.
    Arguments are checked at call time, images are drawn lazily.
    """
    _check(kind, style, variant, n, seed, parts_clarity)
    if hazard is not None and hazard not in (*HAZARDS, "mixed"):
        raise ValueError(f"unknown hazard {hazard!r}; expected one of {', '.join((*HAZARDS, 'mixed'))}")
    samples = _samples(kind, style, variant, n, seed, parts_clarity)
    if hazard is None:
        return (sample.image for sample in samples)
    return (_with_hazard(sample, HAZARDS[i % len(HAZARDS)] if hazard == "mixed" else hazard) for i, sample in enumerate(samples))
