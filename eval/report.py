"""From result rows to RD curves, BD-rates against the anchor order, tables and plots.

Aggregation follows the MPEG feature-coding conditions: at each QP, bits per pixel is the
total of all images' bitstream bits over the total of their input pixels; feature PSNR is
the mean over images; the task score is the model's own set-level aggregate (e.g. pooled KL
fidelity, or mAP over the set). A QP point is used only when every image of the set has a
finished row there, so curves never compare different image subsets.

BD-rate (negative = fewer bits for the same quality) is computed against the anchor order
(``identity``) coded with the same quantizer, packing and codec. A curve that is not
monotone or has fewer than 4 points is not silently fitted: its BD-rate is ``None`` and the
reason is kept in ``notes``.
"""

from __future__ import annotations

import json
import math
import textwrap
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from eval.bdrate import bd_rate
from eval.errors import RDCurveError

__all__ = ["Curve", "build_curves", "bd_table", "format_table", "plot_rd_curves", "summary_dict", "SETUP_COLUMNS"]

SETUP_COLUMNS = ("order", "quantizer", "packing", "codec")


@dataclass
class Curve:
    """One RD curve: an order (with its coding setup) over QPs."""

    setup: dict
    qp: list = field(default_factory=list)
    bpp: list = field(default_factory=list)
    feature_psnr: list = field(default_factory=list)
    task: list = field(default_factory=list)
    n_images: int = 0
    missing: dict = field(default_factory=dict)  # qp -> number of images without a finished row

    @property
    def label(self) -> str:
        return self.setup["order"]

    def as_dict(self) -> dict:
        return {
            "setup": self.setup,
            "qp": self.qp,
            "bpp": self.bpp,
            "feature_psnr": self.feature_psnr,
            "task": self.task,
            "n_images": self.n_images,
            "missing": self.missing,
        }


def build_curves(rows: Iterable[dict], task=None, setup_columns: Sequence[str] = SETUP_COLUMNS, images: Iterable[str] | None = None) -> list[Curve]:
    """Group finished rows into curves, one per distinct setup (``setup_columns``).

    ``task`` is the model's :class:`~eval.models.base.TaskMetric` used to aggregate the
    per-image task statistics; without it the task curve is left empty. ``images`` is the
    expected image set (default: every image seen in the rows).
    """
    rows = [r for r in rows if r.get("status", "ok") == "ok"]
    expected = set(images) if images is not None else {r["image_id"] for r in rows}
    groups: dict[tuple, dict[int, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for r in rows:
        if r["image_id"] not in expected:
            continue
        groups[tuple(r.get(c) for c in setup_columns)][int(r["qp"])].append(r)
    curves = []
    for setup_key, by_qp in groups.items():
        curve = Curve(setup=dict(zip(setup_columns, setup_key)), n_images=len(expected))
        for qp in sorted(by_qp):
            per_image = {r["image_id"]: r for r in by_qp[qp]}  # one row per image
            missing = len(expected - set(per_image))
            if missing:
                curve.missing[qp] = missing
                continue
            chosen = list(per_image.values())
            curve.qp.append(qp)
            curve.bpp.append(sum(r["bits"] for r in chosen) / sum(r["pixels"] for r in chosen))
            curve.feature_psnr.append(float(np.mean([r["feature_psnr"] for r in chosen])))
            if task is not None:
                stats = [r["task_stats"] if isinstance(r["task_stats"], dict) else json.loads(r["task_stats"]) for r in chosen]
                curve.task.append(float(task.aggregate(stats)))
        curves.append(curve)
    curves.sort(key=lambda c: tuple(str(v) for v in c.setup.values()))
    return curves


def _bd(anchor: Curve, test: Curve, metric: str, method: str, notes: list, label: str):
    if not getattr(anchor, metric) or not getattr(test, metric):
        return None
    common = sorted(set(anchor.qp) & set(test.qp))
    a_idx = [anchor.qp.index(q) for q in common]
    t_idx = [test.qp.index(q) for q in common]
    try:
        return float(
            bd_rate(
                [anchor.bpp[i] for i in a_idx],
                [getattr(anchor, metric)[i] for i in a_idx],
                [test.bpp[i] for i in t_idx],
                [getattr(test, metric)[i] for i in t_idx],
                method=method,
            )
        )
    except RDCurveError as exc:
        notes.append(f"{label} {metric}: {exc}")
        return None


def bd_table(curves: Sequence[Curve], anchor: str = "identity", method: str = "pchip", match_columns: Sequence[str] = ("quantizer", "packing", "codec")) -> tuple[list[dict], list[str]]:
    """BD-rate of every curve against the anchor order with the same coding setup.

    Returns (table rows, notes). Each table row: the setup, ``bd_feature_psnr`` and
    ``bd_task`` in percent (None where not computable, reason in notes) and bpp per QP.
    """
    notes: list[str] = []
    anchors = {tuple(c.setup.get(k) for k in match_columns): c for c in curves if c.setup["order"] == anchor}
    table = []
    for c in curves:
        ref = anchors.get(tuple(c.setup.get(k) for k in match_columns))
        entry = dict(c.setup)
        if ref is None:
            notes.append(f"{c.label}: no '{anchor}' curve with the same coding setup; BD-rate not computed")
            entry.update(bd_feature_psnr=None, bd_task=None)
        else:
            entry["bd_feature_psnr"] = _bd(ref, c, "feature_psnr", method, notes, c.label)
            entry["bd_task"] = _bd(ref, c, "task", method, notes, c.label)
        entry["bpp"] = dict(zip(c.qp, c.bpp))
        entry["feature_psnr"] = dict(zip(c.qp, c.feature_psnr))
        entry["task"] = dict(zip(c.qp, c.task))
        for qp, n in c.missing.items():
            notes.append(f"{c.label}: QP {qp} left out, {n} image(s) without a finished row")
        table.append(entry)
    return table, notes


def _fmt(v, spec="+.2f"):
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    return format(v, spec)


def format_table(table: Sequence[dict], task_name: str = "task", columns: Sequence[str] = ("order",)) -> str:
    """Plain-text table: setup columns, BD-rates (%) and bpp per QP."""
    qps = sorted({q for t in table for q in t["bpp"]})
    head = list(columns) + ["BD feat-PSNR %", f"BD {task_name} %"] + [f"bpp@{q}" for q in qps]
    lines = []
    for t in table:
        cells = [str(t.get(c)) for c in columns] + [_fmt(t["bd_feature_psnr"]), _fmt(t["bd_task"])]
        cells += [_fmt(t["bpp"].get(q), ".4f") for q in qps]
        lines.append(cells)
    widths = [max(len(h), *(len(r[i]) for r in lines)) if lines else len(h) for i, h in enumerate(head)]
    out = ["  ".join(h.ljust(w) for h, w in zip(head, widths))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in lines]
    return "\n".join(out)


def summary_dict(table: Sequence[dict], anchor: str, notes: Sequence[str], curves: Sequence[Curve], extra: dict | None = None) -> dict:
    """The ``summary.json`` content: ``{"anchor", "bd_rate": {ORDER: {"feature_psnr", "task"}}, ...}``."""
    return {
        "anchor": anchor,
        "bd_rate": {t["order"]: {"feature_psnr": t["bd_feature_psnr"], "task": t["bd_task"]} for t in table},
        "curves": [c.as_dict() for c in curves],
        "notes": list(notes),
        **(extra or {}),
    }


def plot_rd_curves(curves: Sequence[Curve], path: str | Path, anchor: str = "identity", task_label: str = "task score", title: str = "") -> Path:
    """Two panels: bpp vs feature PSNR and bpp vs task score, one line per order, anchor in black."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    has_task = any(c.task for c in curves)
    fig, axes = plt.subplots(1, 2 if has_task else 1, figsize=(11 if has_task else 6, 4.2), squeeze=False)
    panels = [("feature_psnr", "feature PSNR (dB)")] + ([("task", task_label)] if has_task else [])
    for ax, (metric, ylabel) in zip(axes[0], panels):
        for c in curves:
            ys = getattr(c, metric)
            if not ys:
                continue
            is_anchor = c.setup["order"] == anchor
            ax.plot(
                c.bpp, ys, marker="o", lw=2.6 if is_anchor else 1.4, color="black" if is_anchor else None,
                label=c.label + (" (anchor)" if is_anchor else ""), zorder=3 if is_anchor else 2,
            )
            for qp, x, y in zip(c.qp, c.bpp, ys):
                if is_anchor:
                    ax.annotate(f"QP{qp}", (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7)
        ax.set_xlabel("bits per input pixel (bpp)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(title or "Rate-distortion per channel order", 100)), fontsize=10)
    fig.tight_layout()
    import io

    from eval.io import atomic_write_bytes

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
