"""QPs chosen per quantizer so that its RD curve spans the anchor's quality range.

Why: at the same QPs two quantizers land on different quality ranges (a 10-bit mu-law
quantizer at QP 22-37 spans 27-37.5 dB feature PSNR where the paper's global log 8-bit one
spans 29-43 dB), so a BD-rate between them would rest on the sliver both curves cover. MPEG's
anchors pick their rate points per sequence for the same reason. :func:`match_qps` picks, for
one quantizer, the lowest and highest QP that bracket the anchor's range on every matched
metric (feature PSNR and the task score by default), and spreads the study's number of rate
points evenly between them.

How: quality falls roughly linearly with the QP over the usual range (0.3-1 dB per QP step for
feature PSNR; steeper at low QPs). The search codes (``probe``) the anchor's two end QPs, draws a
line per metric through the two probes nearest each end (at most ``max_jump`` QPs beyond them: a
far extrapolation lands on needlessly low, slow QPs), and probes the QPs the lines predict for the
anchor's best and worst quality; an end that still falls short moves ``step`` QPs further per
round, up to ``max_rounds``; an end reached with room to spare is then tightened (``tighten``
times) to the QP interpolated between the two probes that bracket the crossing. Probes are real cells: the caller codes the images with the
anchor order (identity) and every probed QP stays in the results store, so the chosen end
points cost nothing more. Everything probed is returned (``probes``) and recorded by the
study; a range that cannot be bracketed within the codec's QPs is reported in ``reached``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Mapping, Sequence

import numpy as np

__all__ = ["QPMatch", "match_qps", "spread_qps", "quality_range"]

Probe = Callable[[Sequence[int]], Mapping[int, Mapping[str, float]]]


@dataclass
class QPMatch:
    """The outcome of :func:`match_qps` (what ``summary.json`` records under ``qp_match``)."""

    qps: list[int]
    targets: dict  # metric -> [lo, hi] of the anchor
    probes: dict = field(default_factory=dict)  # qp -> {metric: quality}
    reached: dict = field(default_factory=dict)  # "high"/"low" -> whether the end QP brackets every metric
    rounds: int = 0

    def as_dict(self) -> dict:
        return {"qps": list(self.qps), "targets": {m: list(v) for m, v in self.targets.items()},
                "probes": {str(q): dict(v) for q, v in sorted(self.probes.items())},
                "reached": dict(self.reached), "rounds": self.rounds}


def quality_range(points: Mapping[int, Mapping[str, float]], metrics: Sequence[str]) -> dict:
    """``{metric: (lo, hi)}`` over the quality values of ``points`` (``{qp: {metric: value}}``)."""
    out = {}
    for m in metrics:
        values = [float(p[m]) for p in points.values() if p.get(m) is not None and math.isfinite(float(p[m]))]
        if not values:
            raise ValueError(f"the anchor has no {m} values to match QPs to; check that its cells finished")
        out[m] = (min(values), max(values))
    return out


def spread_qps(lo: int, hi: int, n: int) -> list[int]:
    """``n`` integer QPs from ``lo`` to ``hi`` (both included), evenly spread; fewer when the span is short."""
    if hi < lo:
        lo, hi = hi, lo
    if n <= 1 or hi == lo:
        return [int(lo)] if n <= 1 or hi == lo else [int(lo), int(hi)]
    return sorted({int(round(lo + (hi - lo) * i / (n - 1))) for i in range(n)})


def _fit(points: Mapping[int, Mapping[str, float]], metric: str) -> tuple[float, float] | None:
    """Least-squares line ``quality = a * qp + b`` through the finite points (None with fewer than 2 QPs)."""
    xs = [q for q, p in points.items() if p.get(metric) is not None and math.isfinite(float(p[metric]))]
    if len(set(xs)) < 2:
        return None
    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray([float(points[q][metric]) for q in xs], dtype=np.float64)
    a, b = np.polyfit(x, y, 1)
    return float(a), float(b)


def _covers(points, qp: int, metric: str, target: float, high: bool) -> bool:
    v = points.get(qp, {}).get(metric)
    if v is None or not math.isfinite(float(v)):
        return False
    return float(v) >= target if high else float(v) <= target


def _bracket(points, targets, high: bool) -> int | None:
    """The QP between the probes that bracket the crossing of an end (interpolated), or None when tight.

    ``high``: the best-quality end (largest QP still reaching every ``hi``); else the worst-quality end
    (smallest QP at or below every ``lo``). Quality is interpolated linearly between the two probes.
    """
    def ok(q):
        return all(_covers(points, q, m, t[1] if high else t[0], high) for m, t in targets.items())

    good = [q for q in points if ok(q)]
    if not good:
        return None
    end = max(good) if high else min(good)
    beyond = [q for q in points if (q > end if high else q < end) and not ok(q)]
    if not beyond:
        return None
    other = min(beyond) if high else max(beyond)
    if abs(other - end) <= 1:
        return None
    crossings = []
    for m, (lo, hi) in targets.items():
        a, b = float(points[end][m]), float(points[other][m])
        target = hi if high else lo
        if a == b:
            continue
        x = end + (target - a) * (other - end) / (b - a)
        crossings.append(math.floor(x) if high else math.ceil(x))
    if not crossings:
        return None
    q = min(crossings) if high else max(crossings)
    if (q <= end) if high else (q >= end):  # the crossing lies at the end already probed: tight
        return None
    q = min(q, other - 1) if high else max(q, other + 1)
    return None if q in points else q


def match_qps(probe: Probe, targets: Mapping[str, tuple[float, float]], start_qps: Sequence[int],
              qp_range: tuple[int, int] = (0, 63), n_points: int | None = None, step: int = 2,
              max_rounds: int = 6, tighten: int = 2, max_jump: int = 12) -> QPMatch:
    """QPs whose RD points span ``targets`` (``{metric: (lo, hi)}``, the anchor's range) on every metric.

    ``probe(qps)`` codes the anchor order at the given QPs and returns ``{qp: {metric: quality}}``
    (higher is better for every metric). ``start_qps``: the anchor's QPs (their ends are probed
    first; their count is the default ``n_points``). Returns a :class:`QPMatch`; its ``qps`` run
    from the largest probed QP whose quality reaches every target's ``hi`` to the smallest probed
    QP whose quality is at most every target's ``lo`` (the probed extremes where a target stays
    out of reach within ``qp_range`` or ``max_rounds``; ``reached`` says so).
    """
    if not targets:
        raise ValueError("no quality range to match QPs to; give at least one metric")
    start = sorted({int(q) for q in start_qps})
    if not start:
        raise ValueError("no start QPs; give the anchor's QPs")
    qmin, qmax = int(qp_range[0]), int(qp_range[1])
    n_points = int(n_points or len(start))
    points: dict[int, dict] = {}

    def run(qps):
        todo = sorted({min(qmax, max(qmin, int(q))) for q in qps} - set(points))
        if todo:
            got = probe(todo)
            for q in todo:
                points[q] = dict(got.get(q, {}))

    run([start[0], start[-1]])
    lo_qp, hi_qp = start[0], start[-1]  # lo_qp: the high-quality end (small QP)

    def reaches(qp: int, high: bool) -> bool:
        return all(_covers(points, qp, m, t[1] if high else t[0], high) for m, t in targets.items())

    def guess(high: bool) -> int | None:
        """The QP the secant through the two probes nearest that end predicts for the anchor's best
        (``high``) or worst quality, at most ``max_jump`` QPs beyond the probes."""
        near = sorted(points)[:2] if high else sorted(points)[-2:]
        found = []
        for m, (lo, hi) in targets.items():
            line = _fit({q: points[q] for q in near}, m)
            if line and line[0] < 0:
                x = ((hi if high else lo) - line[1]) / line[0]
                found.append(math.floor(x) if high else math.ceil(x))
        if not found:
            return None
        return max(min(found), min(points) - max_jump) if high else min(max(found), max(points) + max_jump)

    rounds = 0
    for rounds in range(1, max_rounds + 1):
        want = []
        if not reaches(lo_qp, True):
            g = guess(True)
            lo_qp = max(qmin, g if g is not None and g < lo_qp else lo_qp - step)
            want.append(lo_qp)
        if not reaches(hi_qp, False):
            g = guess(False)
            hi_qp = min(qmax, g if g is not None and g > hi_qp else hi_qp + step)
            want.append(hi_qp)
        if not want:
            break
        before = set(points)
        run(want)
        if set(points) == before:  # clamped at the codec's QP range: nothing new to try
            break
    # tighten: an end reached with room to spare (e.g. the start QPs overshoot, or quality is far from linear
    # in the QP) moves towards the crossing, interpolated between the two probes that bracket it
    for _ in range(tighten):
        want = [q for q in (_bracket(points, targets, True), _bracket(points, targets, False)) if q is not None]
        if not want:
            break
        run(want)
    reached = {"high": any(reaches(q, True) for q in points), "low": any(reaches(q, False) for q in points)}
    # the end points: the largest QP still reaching every hi, the smallest QP reaching below every lo
    highs = [q for q in points if all(_covers(points, q, m, t[1], True) for m, t in targets.items())]
    lows = [q for q in points if all(_covers(points, q, m, t[0], False) for m, t in targets.items())]
    lo_end = max(highs) if highs else min(points)
    hi_end = min(lows) if lows else max(points)
    if hi_end < lo_end:
        lo_end, hi_end = hi_end, lo_end
    return QPMatch(qps=spread_qps(lo_end, hi_end, n_points), targets={m: tuple(v) for m, v in targets.items()},
                   probes=points, reached=reached, rounds=rounds)
