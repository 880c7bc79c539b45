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

__all__ = ["Curve", "build_curves", "bd_between", "curve_overlap", "bd_table", "format_table", "SETUP_COLUMNS",
           "MATCH_COLUMNS", "MIN_OVERLAP", "QUALITY_METRICS", "group_rows", "aggregate_point", "task_stats", "row_bits", "per_image_bd"]

SETUP_COLUMNS = ("order", "quantizer", "packing", "codec")
MATCH_COLUMNS = ("quantizer", "packing", "codec")  # an order is compared with the anchor coded the same way
MIN_OVERLAP = 0.8  # below this share of the anchor's quality range a BD-rate gets a warning
#: the quality axes of an RD curve, each with its own BD-rate: feature PSNR and the task score
QUALITY_METRICS = ("feature_psnr", "task")


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


def task_stats(row: dict) -> dict:
    """A row's per-image task statistics as a dict (results.csv holds them as JSON text)."""
    stats = row["task_stats"]
    return stats if isinstance(stats, dict) else json.loads(stats)


def row_bits(row: dict) -> int:
    """The bits a row's image costs: the bitstream plus any side information signalled for it.

    ``side_bits`` is 0 for a fixed order and a fixed quantizer that the decoder knows
    beforehand; an order or quantizer chosen per image (or per stream) and sent with it
    fills it with the real count, and bpp then includes it.
    """
    return int(row["bits"]) + int(row.get("side_bits") or 0)


def group_rows(rows: Iterable[dict], setup_columns: Sequence[str] = SETUP_COLUMNS,
               images: Iterable[str] | None = None) -> tuple[dict, set]:
    """Finished rows as ``{setup key: {qp: {image_id: row}}}`` (one row per image) and the expected image set."""
    rows = [r for r in rows if r.get("status", "ok") == "ok"]
    expected = set(images) if images is not None else {r["image_id"] for r in rows}
    groups: dict[tuple, dict[int, dict[str, dict]]] = defaultdict(lambda: defaultdict(dict))
    for r in rows:
        if r["image_id"] not in expected:
            continue
        groups[tuple(r.get(c) for c in setup_columns)][int(r["qp"])][r["image_id"]] = r
    return groups, expected


def aggregate_point(chosen: Sequence[dict], task=None, stats: Sequence[dict] | None = None) -> tuple[float, float, float | None]:
    """One RD point from the rows of its images: ``(bpp, feature PSNR, task score or None)``.

    bpp is the total of the images' bits (side bits included, :func:`row_bits`) over the total
    of their pixels, feature PSNR the mean over images, the task score ``task.aggregate`` of the
    per-image statistics (``stats`` when given, else the rows' own). A row listed twice counts
    twice (the bootstrap relies on that).
    """
    bpp = sum(row_bits(r) for r in chosen) / sum(r["pixels"] for r in chosen)
    psnr = float(np.mean([r["feature_psnr"] for r in chosen]))
    score = None
    if task is not None:
        score = float(task.aggregate(list(stats) if stats is not None else [task_stats(r) for r in chosen]))
    return bpp, psnr, score


def build_curves(rows: Iterable[dict], task=None, setup_columns: Sequence[str] = SETUP_COLUMNS, images: Iterable[str] | None = None) -> list[Curve]:
    """Group finished rows into curves, one per distinct setup (``setup_columns``).

    ``task`` is the model's :class:`~eval.models.base.TaskMetric` used to aggregate the
    per-image task statistics; without it the task curve is left empty. ``images`` is the
    expected image set (default: every image seen in the rows).
    """
    groups, expected = group_rows(rows, setup_columns, images)
    curves = []
    for setup_key, by_qp in groups.items():
        curve = Curve(setup=dict(zip(setup_columns, setup_key)), n_images=len(expected))
        for qp in sorted(by_qp):
            per_image = by_qp[qp]
            missing = len(expected - set(per_image))
            if missing:
                curve.missing[qp] = missing
                continue
            bpp, psnr, score = aggregate_point(list(per_image.values()), task)
            curve.qp.append(qp)
            curve.bpp.append(bpp)
            curve.feature_psnr.append(psnr)
            if score is not None:
                curve.task.append(score)
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


def _unsaturated(rates: Sequence[float], qualities: Sequence[float]) -> tuple[list, list]:
    """A curve without the points where its quality has saturated: when the best quality is reached at
    several rates (a task score that cannot exceed its ceiling, e.g. a detector's AP against its own
    uncoded detections reaching 1), only the cheapest of those points is kept; more bits bought
    nothing there, and two equal qualities would make the rate a non-function of quality.
    Ties below the top are left for :func:`eval.analysis.bdrate.check_curve` to refuse."""
    if not qualities:
        return list(rates), list(qualities)
    top = max(qualities)
    at_top = [i for i, q in enumerate(qualities) if q == top]
    if len(at_top) < 2:
        return list(rates), list(qualities)
    keep = min(at_top, key=lambda i: rates[i])
    idx = [i for i in range(len(rates)) if i not in at_top or i == keep]
    return [rates[i] for i in idx], [qualities[i] for i in idx]


def bd_between(anchor: Curve | None, test: Curve | None, metric: str = "feature_psnr", method: str = "pchip", *,
               match_qps: bool = False, notes: list | None = None, label: str | None = None) -> float | None:
    """BD-rate (%) of curve ``test`` against curve ``anchor`` on ``metric`` (``feature_psnr`` or ``task``).

    The package's one curve-against-curve BD-rate: every table (study report, ablation,
    codec benchmark, tuning objective) calls it with the study's ``bd_method``.
    ``match_qps`` keeps only the QPs both curves have (same codec, different orders); without
    it the curves are compared over their common quality range whatever their QPs (codecs
    with different QP scales). Points where a curve's quality has saturated are left out
    (:func:`_unsaturated`). ``None`` when either curve lacks points or the BD-rate is not
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
    ra, qa = _unsaturated([anchor.bpp[i] for i in a_idx], [qa[i] for i in a_idx])
    rt, qt = _unsaturated([test.bpp[i] for i in t_idx], [qt[i] for i in t_idx])
    try:
        return float(bd_rate(ra, qa, rt, qt, method=method))
    except RDCurveError as exc:
        if notes is not None:
            notes.append(f"{label or test.label} {metric}: {exc}")
        return None


def bd_table(curves: Sequence[Curve], anchor: str = "identity", method: str = "pchip", match_columns: Sequence[str] = MATCH_COLUMNS,
             match_qps: bool = True) -> tuple[list[dict], list[str]]:
    """BD-rate of every curve against the anchor order with the same coding setup.

    ``match_qps`` (default) compares only the QPs both curves have; ``False`` compares curves
    coded at different QPs (another quantizer, QPs matched to a quality range) over the quality
    range they share. Returns (table rows, notes). Each table row: the setup, ``bd_feature_psnr`` and
    ``bd_task`` in percent (None where not computable, reason in notes), ``overlap_feature_psnr``
    and ``overlap_task`` (:func:`curve_overlap` with the anchor, None without one) and bpp per QP.
    """
    notes: list[str] = []
    anchors = {tuple(c.setup.get(k) for k in match_columns): c for c in curves if c.setup["order"] == anchor}
    table = []
    for c in curves:
        ref = anchors.get(tuple(c.setup.get(k) for k in match_columns))
        entry = dict(c.setup)
        if ref is None:
            notes.append(f"{c.label}: no '{anchor}' curve with the same coding setup; BD-rate not computed")
            entry.update(bd_feature_psnr=None, bd_task=None, overlap_feature_psnr=None, overlap_task=None)
        else:
            entry["bd_feature_psnr"] = bd_between(ref, c, "feature_psnr", method, match_qps=match_qps, notes=notes)
            entry["bd_task"] = bd_between(ref, c, "task", method, match_qps=match_qps, notes=notes)
            for m in QUALITY_METRICS:
                entry[f"overlap_{m}"] = curve_overlap(ref, c, m) if getattr(ref, m) and getattr(c, m) else None
        entry["bpp"] = dict(zip(c.qp, c.bpp))
        entry["feature_psnr"] = dict(zip(c.qp, c.feature_psnr))
        entry["task"] = dict(zip(c.qp, c.task))
        for qp, n in c.missing.items():
            notes.append(f"{c.label}: QP {qp} left out, {n} image(s) without a finished row")
        table.append(entry)
    return table, notes


def _with_interval(value, interval) -> str:
    text = fmt(value)
    if value is not None and interval is not None:
        text += f" [{interval[0]:+.1f}, {interval[1]:+.1f}]"
    return text


def format_table(table: Sequence[dict], task_name: str = "task", columns: Sequence[str] = ("order",)) -> str:
    """Plain-text table: setup columns, BD-rates (%) with their 95 % interval where known, and bpp per QP."""
    qps = sorted({q for t in table for q in t["bpp"]})
    same_qps = len({tuple(sorted(t["bpp"])) for t in table}) <= 1
    with_ci = any(t.get("bd_feature_psnr_ci") or t.get("bd_task_ci") for t in table)
    suffix = " [95% CI]" if with_ci else ""
    head = list(columns) + [f"BD feat-PSNR %{suffix}", f"BD {task_name} %{suffix}"]
    # curves at other QPs each (quantizers compared at matched QPs): their overlap and QPs instead of bpp per QP
    head += [f"bpp@{q}" for q in qps] if same_qps else ["overlap feat/task", "QPs"]
    lines = []
    for t in table:
        cells = [str(t.get(c)) for c in columns]
        cells += [_with_interval(t["bd_feature_psnr"], t.get("bd_feature_psnr_ci")), _with_interval(t["bd_task"], t.get("bd_task_ci"))]
        if same_qps:
            cells += [fmt(t["bpp"].get(q), ".4f") for q in qps]
        else:
            cells += [f"{fmt(t.get('overlap_feature_psnr'), '.0%')} / {fmt(t.get('overlap_task'), '.0%')}",
                      " ".join(str(q) for q in sorted(t["bpp"]))]
        lines.append(cells)
    return text_table(head, lines)


def overlap_warnings(table: Sequence[dict], anchor: str = "identity", threshold: float = MIN_OVERLAP) -> list[str]:
    """One line per BD-rate whose curves overlap on less than ``threshold`` of the anchor's quality range."""
    out = []
    for t in table:
        if t.get("order") == anchor:
            continue
        for m, label in (("feature_psnr", "feature PSNR"), ("task", "task")):
            ov = t.get(f"overlap_{m}")
            if ov is not None and t.get(f"bd_{m}") is not None and ov < threshold:
                out.append(f"{t['order']} {label}: the curves overlap on {100 * ov:.0f} % of the anchor's quality range "
                           f"(< {100 * threshold:.0f} %); its BD-rate rests on a narrow common range")
    return out


def per_image_bd(rows: Iterable[dict], task=None, images: Iterable[str] | None = None, anchor: str = "identity",
                 method: str = "pchip", setup_columns: Sequence[str] = SETUP_COLUMNS,
                 match_columns: Sequence[str] = MATCH_COLUMNS, match_qps: bool = True) -> list[dict]:
    """BD-rate of every order against the anchor on each test image alone (one row per image x curve).

    Rows: ``image_id``, the setup columns, ``bd_feature_psnr``, ``bd_task`` (None where not
    computable, reason in ``note``), ``overlap_feature_psnr``, ``overlap_task``.
    """
    rows = [r for r in rows if r.get("status", "ok") == "ok"]
    expected = sorted(set(images) if images is not None else {r["image_id"] for r in rows})
    out = []
    for image in expected:
        mine = [r for r in rows if r["image_id"] == image]
        table, notes = bd_table(build_curves(mine, task=task, setup_columns=setup_columns, images=[image]),
                                anchor=anchor, method=method, match_columns=match_columns, match_qps=match_qps)
        for t in table:
            about = [n for n in notes if n.startswith(f"{t['order']} ") or n.startswith(f"{t['order']}:")]
            out.append({"image_id": image, **{c: t.get(c) for c in setup_columns},
                        "bd_feature_psnr": t["bd_feature_psnr"], "bd_task": t["bd_task"],
                        "overlap_feature_psnr": t.get("overlap_feature_psnr"), "overlap_task": t.get("overlap_task"),
                        "note": "; ".join(about)})
    return out
