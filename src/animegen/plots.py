"""Figures for people: training curves (matplotlib's Agg backend, so reruns give the same bytes), sample
grids and the memorisation audit (Pillow)."""

from __future__ import annotations

import io
import math
import textwrap
import warnings
from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

AUDIT_SCALE = 128  # audit tiles are enlarged to at least this many pixels (nearest neighbour) for people


def ema(values: Sequence[float], coefficient: float = 0.9) -> np.ndarray:
    """Exponential moving average ``s_t = c * s_{t-1} + (1 - c) * x_t``, started at the first value
    (study B smooths its FID-over-training curve this way, c = 0.9)."""
    out = np.empty(len(values), dtype=np.float64)
    for i, v in enumerate(values):
        out[i] = v if i == 0 else coefficient * out[i - 1] + (1.0 - coefficient) * v
    return out


def training_curves_png(history: list[dict], title: str, smoothing: float = 0.9,
                        legend: str = "mean per log interval") -> bytes:
    """One panel per key of ``history`` (rows ``{"step": s, "<loss>": v, ...}``): the logged values
    (thin, labelled ``legend``) and their EMA (thick, coefficient ``smoothing``).  Returns PNG bytes."""
    import matplotlib  # noqa: PLC0415

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415
    from matplotlib.ticker import EngFormatter, MaxNLocator  # noqa: PLC0415

    keys = sorted({k for row in history for k in row if k != "step"})
    width = 3.2 * max(1, len(keys))
    # constrained layout makes room for the (wrapped) title, which tight_layout would cut at the edges
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(width, 2.6), squeeze=False, layout="constrained")
    for ax, key in zip(axes[0], keys):
        rows = [r for r in history if key in r]
        steps = [r["step"] for r in rows]
        values = [r[key] for r in rows]
        ax.plot(steps, values, lw=0.8, alpha=0.5, label=legend)
        ax.plot(steps, ema(values, smoothing), lw=1.8, label=f"EMA {smoothing}")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))  # steps run to 6 digits: few, short labels
        ax.xaxis.set_major_formatter(EngFormatter(sep=""))  # 150000 -> 150k
        ax.tick_params(labelsize=7)
    if not keys:
        axes[0][0].text(0.5, 0.5, "no curve points", ha="center", va="center")
    else:
        axes[0][0].legend(fontsize=7)
    # wrapped at ~13 characters per inch, then narrower until the rendered title fits (long words are broken)
    chars, renderer = max(20, int(width * 13)), fig.canvas.get_renderer()
    while True:
        text = fig.suptitle(textwrap.fill(title, width=chars), fontsize=10)
        # a text's extent needs a renderer, not a draw of the whole figure (the layout does not change it)
        if text.get_window_extent(renderer).width <= 0.96 * fig.bbox.width or chars <= 10:
            break
        chars = int(chars * 0.9)
    problems = layout_problems(fig)
    if problems:  # a figure for people: say so loudly, but never fail the stage that made it
        warnings.warn(f"{title!r}: {'; '.join(problems)}", FigureLayoutWarning, stacklevel=2)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()


class FigureLayoutWarning(UserWarning):
    """A figure cuts text at its edges or overlaps tick labels (the test suite turns it into an error)."""


def layout_problems(fig) -> list[str]:
    """Each title, axis (its drawn tick labels and label) or legend that the rendered figure cuts at its
    edges, and each axis whose tick labels overlap, at the size and resolution it is saved with."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    canvas = fig.bbox
    texts = [("the title", fig._suptitle)] if fig._suptitle is not None else []
    for ax in fig.axes:
        texts += [(f"panel {ax.get_title()!r} title", ax.title), (f"panel {ax.get_title()!r} legend", ax.get_legend()),
                  (f"panel {ax.get_title()!r} x axis", ax.xaxis), (f"panel {ax.get_title()!r} y axis", ax.yaxis)]  # fmt: skip
    cut = []
    for name, artist in texts:
        if artist is None or not artist.get_visible() or (hasattr(artist, "get_text") and not artist.get_text()):
            continue
        # an axis's tight box holds the tick labels it draws and its label (not the ticks beyond its limits)
        box = artist.get_tightbbox(renderer) if hasattr(artist, "get_ticklabels") else artist.get_window_extent(renderer)
        if box is None:
            continue
        if box.x0 < canvas.x0 - 0.5 or box.y0 < canvas.y0 - 0.5 or box.x1 > canvas.x1 + 0.5 or box.y1 > canvas.y1 + 0.5:
            cut.append(name)
    problems = [f"figure of {canvas.width:.0f}x{canvas.height:.0f} px cuts {', '.join(cut)} at its edges"] if cut else []
    for ax in fig.axes:
        for axis in (ax.xaxis, ax.yaxis):
            drawn = [t.label1 for t in axis._update_ticks() if t.label1.get_visible() and t.label1.get_text()]
            boxes = sorted((lbl.get_window_extent(renderer) for lbl in drawn), key=lambda b: (b.x0, b.y0))
            if any(a.overlaps(b) for a, b in zip(boxes, boxes[1:])):
                problems.append(f"panel {ax.get_title()!r}: its {axis.axis_name} tick labels overlap")
    return problems


def _text_width(texts: Sequence[str]) -> int:
    """Pixels the longest of ``texts`` takes in Pillow's default font (what the grids write with)."""
    draw = ImageDraw.Draw(Image.new("RGB", (1, 1)))
    return int(math.ceil(max((draw.textlength(t) for t in texts), default=0)))


def tile(images: np.ndarray, pad: int = 2) -> Image.Image:
    """uint8 images (N, H, W, 3) in a near-square grid on black, ``pad`` pixels apart."""
    n, h, w, _ = images.shape
    cols = math.ceil(math.sqrt(n))
    rows = math.ceil(n / cols)
    canvas = np.zeros((rows * (h + pad) + pad, cols * (w + pad) + pad, 3), np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, cols)
        canvas[pad + r * (h + pad) : pad + r * (h + pad) + h, pad + c * (w + pad) : pad + c * (w + pad) + w] = img
    return Image.fromarray(canvas, "RGB")


def columns_grid(columns: Sequence[np.ndarray], headers: Sequence[str], labels: Sequence[str] | None = None) -> Image.Image:
    """Rows of images side by side (column k is ``columns[k]``, uint8 (N, H, W, 3)), enlarged to at least
    :data:`AUDIT_SCALE` px (nearest neighbour), a header over each column and a label under each row:
    a translator's input | output | reconstruction."""
    n, h, w = columns[0].shape[:3]
    k = max(1, -(-AUDIT_SCALE // h))
    th, tw, head, label, gap = h * k, w * k, 16, 14 if labels else 0, 6
    width = max(len(columns) * (tw + gap) + gap, 2 * gap + _text_width(labels or []))  # a long id widens the grid
    canvas = Image.new("RGB", (width, head + n * (th + label + gap) + gap), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for c, text in enumerate(headers):
        draw.text((gap + c * (tw + gap), 2), text, fill=(0, 0, 0))
    for r in range(n):
        y = head + r * (th + label + gap)
        for c, col in enumerate(columns):
            canvas.paste(Image.fromarray(col[r], "RGB").resize((tw, th), Image.NEAREST), (gap + c * (tw + gap), y))
        if labels:
            draw.text((gap, y + th + 1), labels[r], fill=(60, 60, 60))
    return canvas


def audit_image(samples: np.ndarray, names: list[str], train: np.ndarray, ids: list[str], mae, count: int) -> Image.Image:
    """Rows of [sample | nearest training image] for the ``count`` samples closest to the training set,
    with the distances written under each row (``mae``: :class:`animegen.metrics.mae.MAEResult`)."""
    order = np.argsort(mae.d1, kind="stable")[:count]
    h, w = samples.shape[1:3]
    k = max(1, -(-AUDIT_SCALE // h))
    th, tw, label = h * k, w * k, 26
    texts = [(f"sample {names[i]} | nearest train {ids[mae.nearest_index[i]]}",
              f"MAE {mae.d1[i]:.1f}  2nd nearest {mae.d2[i]:.1f}  ratio {mae.ratio[i]:.2f}") for i in order]  # fmt: skip
    width = max(2 * tw + 12, 300, 8 + _text_width([t for pair in texts for t in pair]))
    canvas = Image.new("RGB", (width, len(order) * (th + label + 6) + 4), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    for row, i in enumerate(order):
        y = 4 + row * (th + label + 6)
        for col, img in enumerate((samples[i], train[mae.nearest_index[i]])):
            canvas.paste(Image.fromarray(img).resize((tw, th), Image.Resampling.NEAREST), (4 + col * (tw + 4), y))
        draw.text((4, y + th + 1), texts[row][0], fill=(0, 0, 0))
        draw.text((4, y + th + 13), texts[row][1], fill=(0, 0, 0))
    return canvas
