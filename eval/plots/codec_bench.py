"""Codec benchmark scatter: BD-rate and ordering gain of each codec configuration over encoder CPU time.

Takes the rows of the codec benchmark table (``eval.analysis.codec_bench``): dicts with
``config``, ``packing``, ``status``, ``enc_cpu_s``, ``bd_ref_feature_psnr`` and
``gain`` (``{order: {"feature_psnr": %}}``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from ._png import new_figure, plain_text, save_png

__all__ = ["bd_cpu_figure", "bd_cpu_scatter"]


def _short(text: str, limit: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def bd_cpu_figure(table: Sequence[dict], reference: str | None, order: str = "tsp-correlation", title: str = ""):
    """Two panels over encoder CPU seconds (log x): BD-rate vs the reference, and the ordering gain.

    One point per finished configuration, labelled; failed ones are listed under the axes.
    """
    import matplotlib
    from matplotlib.ticker import FuncFormatter, NullFormatter

    fig = new_figure(11.0, 4.6)
    axes = fig.subplots(1, 2)
    done = [t for t in table if t["enc_cpu_s"] is not None]
    failed = [t for t in table if t["status"].startswith("failed")]
    panels = [
        (axes[0], lambda t: t["bd_ref_feature_psnr"], f"BD-rate vs {plain_text(reference)} (%, feature PSNR)"),
        (axes[1], lambda t: t["gain"].get(order, {}).get("feature_psnr"), f"ordering gain: {plain_text(order)} vs identity (%)"),
    ]
    colors = matplotlib.colormaps["tab10"]
    color_of = {t["config"]: colors(i % 10) for i, t in enumerate(done)}
    cpus = [t["enc_cpu_s"] for t in done if t["enc_cpu_s"] > 0]
    for ax, value, ylabel in panels:
        for t in done:
            y = value(t)
            if y is None or t["enc_cpu_s"] <= 0:
                continue
            is_ref = t["config"] == reference
            ax.scatter([t["enc_cpu_s"]], [y], s=64 if is_ref else 36, color="black" if is_ref else color_of[t["config"]],
                       zorder=3, marker="o" if t["packing"] == "temporal" else "s")
            packing = "" if t["packing"] == "temporal" or "@" in t["config"] else f" @{t['packing']}"
            ax.annotate(plain_text(t["config"]) + (" (ref)" if is_ref else "") + plain_text(packing),
                        (t["enc_cpu_s"], y), textcoords="offset points", xytext=(5, 4), fontsize=7)
        ax.set_xscale("log")
        if cpus:
            ax.set_xlim(min(cpus) / 1.6, max(cpus) * 3.0)  # room for the labels right of the points
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        ax.xaxis.set_minor_formatter(NullFormatter())
        ax.set_xlabel("encoder CPU seconds per image and QP point (log)")
        ax.set_ylabel(ylabel)
        ax.axhline(0.0, color="0.5", lw=0.8)
        ax.grid(alpha=0.3, which="both")
    if failed:
        fig.supxlabel("failed: " + "; ".join(plain_text(f"{t['config']} ({_short(t['status'][8:], 70)})") for t in failed),
                      fontsize=7, color="firebrick")
    fig.suptitle(title or "Codec benchmark: bits vs CPU time, and the ordering gain each codec measures")
    return fig


def bd_cpu_scatter(table: Sequence[dict], path: str | Path, reference: str | None, order: str = "tsp-correlation",
                   title: str = "") -> Path:
    """Write :func:`bd_cpu_figure` as a PNG (atomically); return the path."""
    return save_png(bd_cpu_figure(table, reference, order, title), path)
