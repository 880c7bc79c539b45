"""Bar charts: BD-rate per channel order and metric, and TSP solver tour cost / run time.

BD-rates are percentages against an anchor order, negative = fewer bits for the same
quality; None/NaN (BD-rate refused, e.g. a non-monotone curve) is drawn as "n/a". An entry
``"METRIC_ci": [lo, hi]`` beside a value (a study summary's bootstrap interval) is drawn as
an error bar on that value's bar.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ._checks import as_number
from ._png import new_figure, plain_text, save_png

__all__ = ["METRIC_LABELS", "tour_cost_table", "bd_rate_figure", "tour_cost_figure", "bd_rate_bars", "tour_cost_bars"]

METRIC_LABELS = {"feature_psnr": "feature PSNR", "task": "task score"}


def tour_cost_table(results: Sequence[Mapping] | Mapping[str, Any]) -> list[dict]:
    """Normalize solver benchmark results and add each tour's gap to the best one of its size.

    Accepts a list of dicts ``{"solver", "n", "cost", "seconds", ...}`` or a dict
    ``solver -> (cost, seconds)`` / ``solver -> {"cost", "seconds"}`` / ``solver -> cost``
    (one problem size, ``n`` = None). Repeated (solver, n) entries are averaged. Returns one
    dict per (solver, n): ``solver``, ``n``, ``cost``, ``seconds`` (None if unknown),
    ``repeats`` and ``gap_percent`` = 100 * (cost / best cost at that n - 1).
    """
    records: list[dict] = []
    if isinstance(results, Mapping):
        for solver, value in results.items():
            if isinstance(value, Mapping):
                cost, seconds = value.get("cost"), value.get("seconds")
                n = value.get("n")
            elif isinstance(value, (tuple, list)):
                if len(value) != 2:
                    raise ValueError(f"results[{solver!r}] must be (cost, seconds), got {value!r}")
                cost, seconds = value
                n = None
            else:
                cost, seconds, n = value, None, None
            records.append({"solver": solver, "n": n, "cost": cost, "seconds": seconds})
    elif isinstance(results, Sequence) and not isinstance(results, (str, bytes)):
        for i, r in enumerate(results):
            if not isinstance(r, Mapping) or "solver" not in r or "cost" not in r:
                raise ValueError(f"results[{i}] must be a dict with at least 'solver' and 'cost', got {r!r}")
            records.append({"solver": r["solver"], "n": r.get("n"), "cost": r["cost"], "seconds": r.get("seconds")})
    else:
        raise ValueError(f"results must be a list of dicts or a dict solver -> (cost, seconds), got {type(results).__name__}")
    if not records:
        raise ValueError("results are empty; run at least one solver before plotting")

    grouped: dict[tuple, dict] = {}
    for r in records:
        where = f"solver {r['solver']!r}" + (f" at n={r['n']}" if r["n"] is not None else "")
        cost = as_number(r["cost"], f"cost of {where}", allow_none=False)
        if cost is None or cost <= 0:
            raise ValueError(f"cost of {where} is {r['cost']!r}; tour costs must be positive to compare them relative to the best")
        seconds = as_number(r["seconds"], f"seconds of {where}")
        if seconds is not None and seconds < 0:
            raise ValueError(f"seconds of {where} is {seconds}; run times cannot be negative")
        if r["n"] is not None and (isinstance(r["n"], bool) or not isinstance(r["n"], numbers.Integral)):
            raise ValueError(f"n of {where} must be an integer problem size or None, got {r['n']!r}")
        key = (str(r["solver"]), None if r["n"] is None else int(r["n"]))
        g = grouped.setdefault(key, {"costs": [], "seconds": []})
        g["costs"].append(cost)
        if seconds is not None:
            g["seconds"].append(seconds)

    best: dict[Any, float] = {}
    for (solver, n), g in grouped.items():
        best[n] = min(best.get(n, math.inf), float(np.mean(g["costs"])))
    table = []
    for (solver, n), g in grouped.items():
        cost = float(np.mean(g["costs"]))
        table.append({
            "solver": solver,
            "n": n,
            "cost": cost,
            "seconds": float(np.mean(g["seconds"])) if g["seconds"] else None,
            "repeats": len(g["costs"]),
            "gap_percent": 100.0 * (cost / best[n] - 1.0),
        })
    return table


def _fmt_percent(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f}%"


CI_SUFFIX = "_ci"


def _interval(value: Any, where: str) -> tuple[float, float] | None:
    """``[lo, hi]`` of an interval entry (None/absent: no error bar)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"{where} must be [low, high] (an interval in %), got {value!r}")
    lo, hi = (as_number(v, where) for v in value)
    if lo is None or hi is None:
        return None
    if lo > hi:
        raise ValueError(f"{where} = {list(value)!r}: the low end is above the high end")
    return lo, hi


def bd_rate_figure(
    bd: Mapping[str, Mapping[str, Any]],
    anchor: str = "identity",
    title: str = "",
    metric_labels: Mapping[str, str] | None = None,
):
    """Figure of grouped horizontal BD-rate bars with their intervals as error bars (see :func:`bd_rate_bars`)."""
    if not isinstance(bd, Mapping):
        raise ValueError(f"bd must be a dict order -> {{'feature_psnr': x, 'task': y}}, got {type(bd).__name__}")
    labels = {**METRIC_LABELS, **(metric_labels or {})}
    metrics: list[str] = []
    rows: list[tuple[str, dict]] = []
    intervals: dict[str, dict] = {}
    for name, entry in bd.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"bd[{name!r}] must be a dict metric -> BD-rate (%), got {entry!r}")
        values = {m: as_number(v, f"bd[{name!r}][{m!r}]") for m, v in entry.items() if not str(m).endswith(CI_SUFFIX)}
        intervals[str(name)] = {str(m)[: -len(CI_SUFFIX)]: _interval(v, f"bd[{name!r}][{m!r}]")
                                for m, v in entry.items() if str(m).endswith(CI_SUFFIX)}
        for m in values:
            if m not in metrics:
                metrics.append(m)
        if name != anchor:
            rows.append((str(name), values))
    metrics.sort(key=lambda m: (list(METRIC_LABELS).index(m) if m in METRIC_LABELS else len(METRIC_LABELS), m))

    fig = new_figure(7.5, 1.3 + 0.32 * max(1, len(rows)) * max(1, len(metrics)) + 0.25 * len(rows))
    ax = fig.add_subplot()
    ax.set_title(title or f"BD-rate of each channel order against '{plain_text(anchor)}'", fontsize=11)
    ax.set_xlabel(f"BD-rate vs {plain_text(anchor)} (%): negative = bits saved at the same quality", fontsize=9)
    if not rows or not metrics:
        ax.text(0.5, 0.5, f"no orders other than the anchor '{plain_text(anchor)}' to compare",
                ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return fig

    import matplotlib
    from matplotlib.patches import Patch

    colors = matplotlib.colormaps["tab10"]
    height = 0.8 / len(metrics)
    present = [v for _, vals in rows for v in vals.values() if v is not None]
    for name, vals in rows:
        for m, ci in intervals.get(name, {}).items():
            if ci is not None and vals.get(m) is not None:
                present.extend(ci)
    lo, hi = min([0.0, *present]), max([0.0, *present])
    span = (hi - lo) or 1.0
    any_ci = False
    for j, m in enumerate(metrics):
        ys, xs, err_y, err_x, err = [], [], [], [], []
        for i, (name, vals) in enumerate(rows):
            y = i - 0.4 + height * (j + 0.5)
            v = vals.get(m)
            if v is None:
                ax.text(0.01 * span, y, "n/a", ha="left", va="center", fontsize=8, color="0.45", style="italic")
                continue
            ys.append(y)
            xs.append(v)
            ci = intervals.get(name, {}).get(m)
            label = _fmt_percent(v)
            end = v
            if ci is not None:
                err_y.append(y)
                err_x.append(v)
                err.append((max(0.0, v - ci[0]), max(0.0, ci[1] - v)))
                label += f" [{ci[0]:+.1f}, {ci[1]:+.1f}]"
                end = ci[1] if v >= 0 else ci[0]
            ax.text(end + (0.01 if v >= 0 else -0.01) * span, y, label, ha="left" if v >= 0 else "right", va="center", fontsize=8)
        ax.barh(ys, xs, height=height * 0.92, color=colors(j % 10))
        if err:
            any_ci = True
            ax.errorbar(err_x, err_y, xerr=np.array(err).T, fmt="none", ecolor="black", elinewidth=1.0, capsize=3)
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlim(lo - (0.45 if any_ci else 0.2) * span, hi + (0.45 if any_ci else 0.2) * span)
    ax.set_yticks(range(len(rows)), [plain_text(name) for name, _ in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first order on top
    ax.grid(axis="x", alpha=0.3)
    handles = [Patch(color=colors(j % 10), label=plain_text(labels.get(m, m))) for j, m in enumerate(metrics)]
    if any_ci:
        from matplotlib.lines import Line2D

        handles.append(Line2D([], [], color="black", marker="|", markersize=8, lw=1.0, label="95 % interval (bootstrap)"))
    fig.legend(handles=handles, title="quality measure", loc="outside lower center", ncols=len(handles), fontsize=8, title_fontsize=8)
    return fig


def tour_cost_figure(results: Sequence[Mapping] | Mapping[str, Any], title: str = ""):
    """Figure of tour cost above the best and run time per solver and size (see :func:`tour_cost_bars`)."""
    table = tour_cost_table(results)
    solvers = list(dict.fromkeys(r["solver"] for r in table))
    sizes = sorted({r["n"] for r in table}, key=lambda n: (n is None, n or 0))
    by_key = {(r["solver"], r["n"]): r for r in table}
    best_cost = {n: min(r["cost"] for r in table if r["n"] == n) for n in sizes}

    import matplotlib
    from matplotlib.transforms import blended_transform_factory

    colors = matplotlib.colormaps["tab10"]
    width = min(0.8 / len(solvers), 0.22)
    fig = new_figure(min(16.0, max(9.0, 2.5 + len(sizes) * len(solvers) * 0.45)), 4.8)
    ax_gap, ax_time = fig.subplots(1, 2)
    max_gap = max(r["gap_percent"] for r in table) or 1.0
    times = [r["seconds"] for r in table if r["seconds"] is not None]
    for j, s in enumerate(solvers):
        for i, n in enumerate(sizes):
            x = i + width * (j - (len(solvers) - 1) / 2)
            r = by_key.get((s, n))
            for ax, key in ((ax_gap, "gap_percent"), (ax_time, "seconds")):
                v = None if r is None else r[key]
                if v is None:
                    ax.text(x, 0.01, "n/a", ha="center", va="bottom", rotation=90, fontsize=7, color="0.45",
                            transform=blended_transform_factory(ax.transData, ax.transAxes))
                    continue
                if key == "seconds":
                    ax.bar(x, max(v, 1e-6), width=width * 0.92, color=colors(j % 10))
                    ax.text(x, max(v, 1e-6) * 1.08, f"{v:.3g} s", ha="center", va="bottom", rotation=90, fontsize=7)
                else:
                    ax.bar(x, v, width=width * 0.92, color=colors(j % 10), label=plain_text(s) if i == 0 else None)
                    ax.text(x, v + 0.02 * max_gap, "best" if v == 0 else f"+{v:.3g}", ha="center", va="bottom", rotation=90, fontsize=7)
    ticks = [("size not given" if n is None else f"n = {n}") + f"\nbest cost {best_cost[n]:.5g}" for n in sizes]
    for ax in (ax_gap, ax_time):
        ax.set_xticks(range(len(sizes)), ticks, fontsize=8)
        ax.set_xlim(-0.6, len(sizes) - 0.4)
        ax.grid(axis="y", alpha=0.3)
    ax_gap.set_ylim(0, max_gap * 1.35)
    ax_gap.set_ylabel("tour cost above the best found at this n (%)", fontsize=9)
    ax_gap.set_title("Tour quality (0 = best)", fontsize=10)
    ax_time.set_yscale("log")
    if times:
        ax_time.set_ylim(max(min(times), 1e-6) / 3, max(times) * 8)
    ax_time.set_ylabel("wall time per solve (s, log scale)", fontsize=9)
    ax_time.set_title("Solver time", fontsize=10)
    fig.legend(*ax_gap.get_legend_handles_labels(), loc="outside right center", title="solver", fontsize=8, title_fontsize=8)
    fig.suptitle(title or "TSP solvers: tour cost relative to the best and time, per problem size", fontsize=11)
    return fig


def bd_rate_bars(
    bd: Mapping[str, Mapping[str, Any]],
    path: str | Path,
    anchor: str = "identity",
    title: str = "",
    metric_labels: Mapping[str, str] | None = None,
) -> Path:
    """Write grouped horizontal bars of BD-rate (%) per order and quality metric.

    ``bd`` is ``{order: {"feature_psnr": x, "task": y}}`` (a study summary's ``bd_rate``), optionally
    with ``"feature_psnr_ci": [lo, hi]`` / ``"task_ci": [lo, hi]`` drawn as error bars (and printed
    beside the value). The anchor itself is left out (0 by definition); None/NaN values (BD-rate
    refused, e.g. a non-monotone curve) are drawn as "n/a" rather than as a zero bar.
    """
    return save_png(bd_rate_figure(bd, anchor, title, metric_labels), path)


def tour_cost_bars(results: Sequence[Mapping] | Mapping[str, Any], path: str | Path, title: str = "") -> Path:
    """Write TSP solver comparison: tour cost above the best per size (%) and run time (log).

    ``results`` as accepted by :func:`tour_cost_table`.
    """
    return save_png(tour_cost_figure(results, title), path)
