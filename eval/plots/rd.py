"""Rate-distortion curves: bpp against feature PSNR (and task score), one line per channel order.

Takes curve objects as :class:`eval.analysis.curves.Curve` has them (any object with
``setup`` (a dict with ``"order"``), ``qp``, ``bpp``, ``feature_psnr``, ``task`` and
``label``); the anchor order is drawn in black with its QPs marked.
"""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any, Sequence

from ._png import new_figure, plain_text, save_png

__all__ = ["rd_curves_figure", "plot_rd_curves"]

_RD_DPI = 120


def rd_curves_figure(curves: Sequence[Any], anchor: str = "identity", task_label: str = "task score", title: str = ""):
    """Figure with bpp vs feature PSNR and, when any curve has task scores, bpp vs task score."""
    curves = list(curves)
    has_task = any(c.task for c in curves)
    fig = new_figure(11 if has_task else 6, 4.2, dpi=_RD_DPI, layout="tight")
    axes = fig.subplots(1, 2 if has_task else 1, squeeze=False)
    panels = [("feature_psnr", "feature PSNR (dB)")] + ([("task", task_label)] if has_task else [])
    for ax, (metric, ylabel) in zip(axes[0], panels):
        for c in curves:
            ys = getattr(c, metric)
            if not ys:
                continue
            is_anchor = c.setup["order"] == anchor
            ax.plot(
                c.bpp, ys, marker="o", lw=2.6 if is_anchor else 1.4, color="black" if is_anchor else None,
                label=plain_text(c.label) + (" (anchor)" if is_anchor else ""), zorder=3 if is_anchor else 2,
            )
            if is_anchor:
                for qp, x, y in zip(c.qp, c.bpp, ys):
                    ax.annotate(f"QP{qp}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        ax.set_xlabel("bits per input pixel (bpp)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(title or "Rate-distortion per channel order", 100)), fontsize=10)
    return fig


def plot_rd_curves(curves: Sequence[Any], path: str | Path, anchor: str = "identity", task_label: str = "task score",
                   title: str = "") -> Path:
    """Write :func:`rd_curves_figure` as a PNG (atomically); return the path."""
    return save_png(rd_curves_figure(curves, anchor, task_label, title), path, dpi=_RD_DPI)
