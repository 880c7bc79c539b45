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
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from eval.analysis.bdrate import bd_rate
from eval.analysis.tables import fmt, text_table
from eval.errors import RDCurveError

__all__ = ["Curve", "Report", "build_curves", "bd_between", "curve_overlap", "bd_table", "format_table", "SETUP_COLUMNS"]

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


def curve_overlap(anchor: Curve, test: Curve, metric: str = "feature_psnr") -> float:
    """Share of the anchor's ``metric`` range that the test curve also covers (0..1)."""
    qa, qb = getattr(anchor, metric), getattr(test, metric)
    if not qa or not qb:
        return 0.0
    lo, hi = max(min(qa), min(qb)), min(max(qa), max(qb))
    span = max(qa) - min(qa)
    return max(0.0, hi - lo) / span if span > 0 else 0.0


def bd_between(anchor: Curve | None, test: Curve | None, metric: str = "feature_psnr", method: str = "pchip", *,
               match_qps: bool = False, notes: list | None = None, label: str | None = None) -> float | None:
    """BD-rate (%) of curve ``test`` against curve ``anchor`` on ``metric`` (``feature_psnr`` or ``task``).

    The package's one curve-against-curve BD-rate: every table (study report, ablation,
    codec benchmark, tuning objective) calls it with the study's ``--bd-method``.
    ``match_qps`` keeps only the QPs both curves have (same codec, different orders); without
    it the curves are compared over their common quality range whatever their QPs (codecs
    with different QP scales). ``None`` when either curve lacks points or the BD-rate is not
    computable; the reason is appended to ``notes`` (prefixed with ``label``).
    """
    if anchor is None or test is None or not getattr(anchor, metric) or not getattr(test, metric):
        return None
    a_idx, t_idx = list(range(len(anchor.qp))), list(range(len(test.qp)))
    if match_qps:
        common = sorted(set(anchor.qp) & set(test.qp))
        a_idx = [anchor.qp.index(q) for q in common]
        t_idx = [test.qp.index(q) for q in common]
    qa, qt = getattr(anchor, metric), getattr(test, metric)
    try:
        return float(bd_rate([anchor.bpp[i] for i in a_idx], [qa[i] for i in a_idx],
                             [test.bpp[i] for i in t_idx], [qt[i] for i in t_idx], method=method))
    except RDCurveError as exc:
        if notes is not None:
            notes.append(f"{label or test.label} {metric}: {exc}")
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
            entry["bd_feature_psnr"] = bd_between(ref, c, "feature_psnr", method, match_qps=True, notes=notes)
            entry["bd_task"] = bd_between(ref, c, "task", method, match_qps=True, notes=notes)
        entry["bpp"] = dict(zip(c.qp, c.bpp))
        entry["feature_psnr"] = dict(zip(c.qp, c.feature_psnr))
        entry["task"] = dict(zip(c.qp, c.task))
        for qp, n in c.missing.items():
            notes.append(f"{c.label}: QP {qp} left out, {n} image(s) without a finished row")
        table.append(entry)
    return table, notes


def format_table(table: Sequence[dict], task_name: str = "task", columns: Sequence[str] = ("order",)) -> str:
    """Plain-text table: setup columns, BD-rates (%) and bpp per QP."""
    qps = sorted({q for t in table for q in t["bpp"]})
    head = list(columns) + ["BD feat-PSNR %", f"BD {task_name} %"] + [f"bpp@{q}" for q in qps]
    lines = []
    for t in table:
        cells = [str(t.get(c)) for c in columns] + [fmt(t["bd_feature_psnr"]), fmt(t["bd_task"])]
        cells += [fmt(t["bpp"].get(q), ".4f") for q in qps]
        lines.append(cells)
    return text_table(head, lines)


@dataclass
class Report:
    """A study's RD curves and their BD-rates against the anchor order, in memory.

    :meth:`summary` is the content of ``summary.json``; :meth:`format` the printed table;
    :meth:`bd_rates` what the BD-rate figure draws.
    """

    curves: list
    table: list
    notes: list
    anchor: str = "identity"
    method: str = "pchip"
    task_name: str = "task"

    @classmethod
    def from_rows(cls, rows: Iterable[dict], task, images: Iterable[str], anchor: str = "identity",
                  method: str = "pchip") -> "Report":
        curves = build_curves(rows, task=task, images=images)
        table, notes = bd_table(curves, anchor=anchor, method=method)
        return cls(curves, table, notes, anchor, method, getattr(task, "name", "task"))

    def bd_rates(self) -> dict:
        return {t["order"]: {"feature_psnr": t["bd_feature_psnr"], "task": t["bd_task"]} for t in self.table}

    def format(self) -> str:
        return format_table(self.table, task_name=self.task_name)

    def summary(self, extra: dict | None = None) -> dict:
        """``{"anchor", "bd_rate": {ORDER: {"feature_psnr", "task"}}, "curves", "notes", "task_metric", "bd_method", ...}``."""
        return {
            "anchor": self.anchor,
            "bd_rate": self.bd_rates(),
            "curves": [c.as_dict() for c in self.curves],
            "notes": list(self.notes),
            "task_metric": self.task_name,
            "bd_method": self.method,
            **(extra or {}),
        }
