"""Figures for people (training curves), drawn with matplotlib's Agg backend so reruns give the same bytes."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np


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

    keys = sorted({k for row in history for k in row if k != "step"})
    fig, axes = plt.subplots(1, max(1, len(keys)), figsize=(3.2 * max(1, len(keys)), 2.6), squeeze=False)
    for ax, key in zip(axes[0], keys):
        rows = [r for r in history if key in r]
        steps = [r["step"] for r in rows]
        values = [r[key] for r in rows]
        ax.plot(steps, values, lw=0.8, alpha=0.5, label=legend)
        ax.plot(steps, ema(values, smoothing), lw=1.8, label=f"EMA {smoothing}")
        ax.set_title(key, fontsize=9)
        ax.set_xlabel("step", fontsize=8)
        ax.tick_params(labelsize=7)
    if not keys:
        axes[0][0].text(0.5, 0.5, "no curve points", ha="center", va="center")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, metadata={"Software": None})
    plt.close(fig)
    return buf.getvalue()
