"""Figures for channel-order studies: mosaics, distance heat maps, BD-rate and solver bars.

Each plot comes in two forms. ``*_figure(...)`` builds and returns a matplotlib
:class:`~matplotlib.figure.Figure` (for notebooks and for tests that inspect what was
drawn); the path-taking function (``channel_mosaic``, ``mosaic_comparison``,
``similarity_heatmap``, ``bd_rate_bars``, ``tour_cost_bars``) draws the same figure and
writes it as a PNG atomically (temporary file in the target folder, then ``os.replace``),
so a reader never sees half a file. Figures are drawn on their own Agg canvas without
pyplot: nothing here changes the process-wide matplotlib backend or leaves figures open.

Only :func:`figures_from_study` reads a study folder; everything else takes its data as
arguments. RD curves are drawn by :func:`eval.report.plot_rd_curves` and not repeated here.

Conventions (see the project spec): features are ``[C, H, W]`` float arrays; an order is a
permutation of ``0..C-1`` with ``order[k]`` = original channel shown at position ``k``;
BD-rates are percentages, negative = fewer bits for the same quality.
"""

from __future__ import annotations

import io
import json
import logging
import math
import numbers
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from eval.io import atomic_write_bytes

__all__ = [
    "mosaic_grid",
    "normalize_channels",
    "mosaic_array",
    "permuted",
    "path_cost",
    "tour_cost_table",
    "mosaic_figure",
    "mosaic_comparison_figure",
    "similarity_figure",
    "bd_rate_figure",
    "tour_cost_figure",
    "channel_mosaic",
    "mosaic_comparison",
    "similarity_heatmap",
    "bd_rate_bars",
    "tour_cost_bars",
    "figures_from_study",
]

logger = logging.getLogger(__name__)

NORMALIZATIONS = ("per_channel", "global")
METRIC_LABELS = {"feature_psnr": "feature PSNR", "task": "task score"}
_DPI = 150
_ANNOTATE_MAX_CHANNELS = 256


# --------------------------------------------------------------------------- validation


def _check_features(features: Any) -> np.ndarray:
    """Return ``features`` as a float64 ``[C, H, W]`` array or raise a ValueError saying why not."""
    arr = np.asarray(features)
    if arr.ndim != 3:
        raise ValueError(
            f"features must be one image's [C, H, W] array, got shape {arr.shape}; "
            "pass a single image (e.g. batch[0]) rather than a batch or a single channel"
        )
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"features must be a real numeric array, got dtype {arr.dtype}")
    if 0 in arr.shape:
        raise ValueError(f"features have an empty dimension (shape {arr.shape}); nothing to draw")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"features contain {int(bad.sum())} NaN/Inf values (first in channel {first}); "
            "replace or drop them before plotting"
        )
    return arr


def _check_order(order: Any, n_channels: int, name: str = "order") -> np.ndarray:
    """Validate that ``order`` is a permutation of ``0..n_channels-1``; return it as int64.

    The message names the first problem found and what a valid order looks like, so a
    wrong order file is easy to find.
    """
    arr = np.asarray(order)
    want = f"each channel 0..{n_channels - 1} must appear exactly once"
    if arr.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D sequence of channel indices, got shape {arr.shape}")
    if arr.size and not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name}: channel indices must be integers, got dtype {arr.dtype}")
    arr = arr.astype(np.int64, copy=False)
    if arr.size != n_channels:
        raise ValueError(f"{name}: has {arr.size} entries but the data have {n_channels} channels; {want}")
    outside = np.flatnonzero((arr < 0) | (arr >= n_channels))
    if outside.size:
        k = int(outside[0])
        raise ValueError(f"{name}: index {int(arr[k])} at position {k} is outside 0..{n_channels - 1}; {want}")
    seen: dict[int, int] = {}
    for k, c in enumerate(arr.tolist()):
        if c in seen:
            raise ValueError(f"{name}: index {c} appears twice (positions {seen[c]} and {k}); {want}")
        seen[c] = k
    return arr


def _check_distance(distance: Any) -> np.ndarray:
    arr = np.asarray(distance)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 1:
        raise ValueError(f"distance must be a square [C, C] matrix, got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"distance must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(f"distance contains {int((~np.isfinite(arr)).sum())} NaN/Inf entries; fix the similarity statistics first")
    return arr


def _check_normalize(normalize: str) -> str:
    if normalize not in NORMALIZATIONS:
        raise ValueError(f"normalize must be one of {', '.join(NORMALIZATIONS)}, got {normalize!r}")
    return normalize


def _named_orders(orders: Mapping[str, Any] | None, n_channels: int) -> list[tuple[str, np.ndarray]]:
    """Validated (name, order) pairs with the identity order first (added when absent)."""
    if orders is None:
        orders = {}
    if not isinstance(orders, Mapping):
        raise ValueError(f"orders must be a dict name -> order, got {type(orders).__name__}")
    out = [("identity", np.arange(n_channels, dtype=np.int64))]
    for name, order in orders.items():
        checked = _check_order(order, n_channels, name=f"order {name!r}")
        if name == "identity":
            out[0] = ("identity", checked)
        else:
            out.append((str(name), checked))
    return out


# --------------------------------------------------------------------------- pure helpers


def mosaic_grid(n_channels: int, height: int, width: int, cols: int | None = None) -> tuple[int, int]:
    """(rows, cols) of a mosaic of ``n_channels`` tiles of ``height`` x ``width`` pixels.

    Without ``cols`` the grid is chosen so that the whole mosaic is close to square in
    pixels (not in tiles), so wide feature maps get fewer columns.
    """
    if n_channels < 1:
        raise ValueError(f"a mosaic needs at least one channel, got {n_channels}")
    if cols is None:
        cols = int(round(math.sqrt(n_channels * height / width)))
    elif isinstance(cols, bool) or not isinstance(cols, numbers.Integral) or cols < 1:
        raise ValueError(f"cols must be a positive integer, got {cols!r}")
    cols = int(min(max(cols, 1), n_channels))
    return math.ceil(n_channels / cols), cols


def _check_percentile(percentile: float) -> float:
    if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real) or not 50.0 < float(percentile) <= 100.0:
        raise ValueError(f"percentile must be a number in (50, 100], got {percentile!r} (100 = plain min-max)")
    return float(percentile)


def normalize_channels(features: Any, normalize: str = "per_channel", percentile: float = 100.0) -> np.ndarray:
    """Scale features to [0, 1] for display.

    ``per_channel``: each channel scaled on its own, so the spatial pattern of every channel
    is visible whatever its magnitude (the usual way to look at feature maps); ``global``:
    one scale for all channels, so magnitudes stay comparable across tiles. The range is
    from the ``100 - percentile`` to the ``percentile`` percentile, values outside clipped:
    100 is plain min-max; a little below (the figures use 99.5) keeps a few bright ReLU
    outliers from turning the rest of a channel black. A constant channel maps to 0.
    """
    x = _check_features(features)
    _check_normalize(normalize)
    percentile = _check_percentile(percentile)
    axis = (1, 2) if normalize == "per_channel" else None
    if percentile == 100.0:
        lo = x.min(axis=axis, keepdims=True)
        hi = x.max(axis=axis, keepdims=True)
    else:
        lo = np.percentile(x, 100.0 - percentile, axis=axis, keepdims=True)
        hi = np.percentile(x, percentile, axis=axis, keepdims=True)
    span = hi - lo
    return np.clip((x - lo) / np.where(span > 0, span, 1.0), 0.0, 1.0)


def mosaic_array(
    features: Any,
    order: Any = None,
    cols: int | None = None,
    normalize: str = "per_channel",
    sep: int = 0,
    percentile: float = 100.0,
) -> np.ndarray:
    """The 2-D tiled image of ``features`` in ``order``: tile ``k`` shows channel ``order[k]``.

    Tiles are placed row by row, ``cols`` per row (near-square by default), with ``sep``
    pixels between them (default none: the figures draw separators as thin lines, which
    stay thin whatever the tile size). Values are normalised to [0, 1] (see
    :func:`normalize_channels`, plain min-max by default); separator pixels and unused
    tiles are NaN so they can be drawn in a neutral colour.
    """
    x = normalize_channels(features, normalize, percentile)
    return _tile(x, order, cols, sep)


def _tile(x: np.ndarray, order: Any, cols: int | None, sep: int) -> np.ndarray:
    """Place the (already normalised) channels of ``x`` in ``order`` on the mosaic grid."""
    c, h, w = x.shape
    order = np.arange(c) if order is None else _check_order(order, c)
    rows, cols = mosaic_grid(c, h, w, cols)
    if isinstance(sep, bool) or not isinstance(sep, numbers.Integral) or sep < 0:
        raise ValueError(f"sep must be a non-negative integer number of pixels, got {sep!r}")
    out = np.full((rows * h + (rows - 1) * sep, cols * w + (cols - 1) * sep), np.nan)
    for k, ch in enumerate(order):
        r, q = divmod(k, cols)
        y0, x0 = r * (h + sep), q * (w + sep)
        out[y0 : y0 + h, x0 : x0 + w] = x[ch]
    return out


def permuted(distance: Any, order: Any) -> np.ndarray:
    """Distance matrix with rows and columns in ``order``: ``out[i, j] = d[order[i], order[j]]``."""
    d = _check_distance(distance)
    o = _check_order(order, d.shape[0])
    return d[np.ix_(o, o)]


def path_cost(distance: Any, order: Any) -> float:
    """Sum of distances between channels that are neighbours in ``order`` (the TSP path cost)."""
    d = _check_distance(distance)
    o = _check_order(order, d.shape[0])
    return float(d[o[:-1], o[1:]].sum())


def _as_number(value: Any, where: str, allow_none: bool = True) -> float | None:
    """A finite float, or None for None/NaN; anything else is a ValueError naming ``where``."""
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{where} is missing; expected a number")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where} is {value!r}; expected a number or None")
    v = float(value)
    if math.isnan(v):
        return None
    if math.isinf(v):
        raise ValueError(f"{where} is {v}; expected a finite number or None")
    return v


def tour_cost_table(results: Sequence[Mapping] | Mapping[str, Any]) -> list[dict]:
    """Normalise solver benchmark results and add each tour's gap to the best one of its size.

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
        cost = _as_number(r["cost"], f"cost of {where}", allow_none=False)
        if cost is None or cost <= 0:
            raise ValueError(f"cost of {where} is {r['cost']!r}; tour costs must be positive to compare them relative to the best")
        seconds = _as_number(r["seconds"], f"seconds of {where}")
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


# --------------------------------------------------------------------------- drawing


def _new_figure(width: float, height: float):
    """A figure on its own Agg canvas (no pyplot, no global backend switch, nothing to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _save_png(fig, path: str | Path) -> Path:
    """Render ``fig`` to PNG and write it atomically to ``path``."""
    path = Path(path)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=_DPI)
    return atomic_write_bytes(path, buf.getvalue())


def _mosaic_cmap(cmap: str):
    import matplotlib

    return matplotlib.colormaps[cmap].with_extremes(bad="white")


def _annotate_tiles(ax, order: np.ndarray, shape: tuple[int, int], cols: int, fontsize: float) -> None:
    from matplotlib import patheffects

    h, w = shape
    outline = [patheffects.withStroke(linewidth=max(0.6, fontsize / 5), foreground="black")]
    for k, ch in enumerate(order.tolist()):
        r, q = divmod(k, cols)
        ax.text(
            q * w - 0.5 + 0.06 * w, r * h - 0.5 + 0.06 * h, str(ch),
            ha="left", va="top", fontsize=fontsize, color="white", path_effects=outline,
        )


def _display_channels(x: np.ndarray, normalize: str, percentile: float, cols: int, panel_width_in: float) -> np.ndarray:
    """Normalised channels, block-averaged when tiles would be shrunk more than 2x on screen.

    Only a display shortcut: resampling a 4000-pixel-wide mosaic at draw time costs
    seconds per panel, while averaging f x f blocks first looks the same (it is what
    antialiasing does) and leaves the figure's content otherwise unchanged.
    """
    xn = normalize_channels(x, normalize, percentile)
    c, h, w = xn.shape
    screen_px = panel_width_in * _DPI / cols
    f = min(int(w // screen_px), h, w) if w > 2 * screen_px else 1
    if f <= 1:
        return xn
    hh, ww = h // f, w // f
    return xn[:, : hh * f, : ww * f].reshape(c, hh, f, ww, f).mean(axis=(2, 4))


def _draw_mosaic(ax, xn, order, cols, annotate, cmap, panel_width_in):
    """Draw one mosaic of normalised channels ``xn`` on ``ax``; return (image artist, annotated?)."""
    c, h, w = xn.shape
    order = np.arange(c, dtype=np.int64) if order is None else _check_order(order, c)
    rows, cols = mosaic_grid(c, h, w, cols)
    tiled = _tile(xn, order, cols, 0)
    im = ax.imshow(tiled, cmap=_mosaic_cmap(cmap), vmin=0.0, vmax=1.0, interpolation="antialiased")
    # separators as lines (constant thin width in the figure, whatever the tile size)
    lw = 0.8 if cols <= 8 else 0.5
    ax.vlines([q * w - 0.5 for q in range(1, cols)], -0.5, rows * h - 0.5, colors="white", linewidths=lw)
    ax.hlines([r * h - 0.5 for r in range(1, rows)], -0.5, cols * w - 0.5, colors="white", linewidths=lw)
    ax.set_xticks([])
    ax.set_yticks([])
    tile_points = panel_width_in * 72.0 / cols
    fontsize = min(7.0, 0.28 * tile_points)
    if annotate is None:
        annotate = c <= _ANNOTATE_MAX_CHANNELS and fontsize >= 3.5
    if annotate:
        _annotate_tiles(ax, order, (h, w), cols, max(fontsize, 3.0))
    return im, bool(annotate)


def _panel_cols(n_panels: int) -> int:
    """Panels per row: all in one row up to 3, 2 x 2 for 4, then rows of 3."""
    return 2 if n_panels == 4 else min(n_panels, 3)


def _normalize_label(normalize: str, percentile: float) -> str:
    where = "per channel" if normalize == "per_channel" else "over all channels"
    if percentile == 100.0:
        return f"activation, min-max scaled {where}"
    return f"activation scaled {where} ({100 - percentile:g}-{percentile:g} percentile)"


def mosaic_figure(
    features: Any,
    order: Any = None,
    title: str = "",
    cols: int | None = None,
    normalize: str = "per_channel",
    annotate: bool | None = None,
    cmap: str = "viridis",
    percentile: float = 99.5,
):
    """Figure of one mosaic (see :func:`channel_mosaic`)."""
    x = _check_features(features)
    _check_normalize(normalize)
    _check_percentile(percentile)
    c, h, w = x.shape
    rows, ncols = mosaic_grid(c, h, w, cols)
    aspect = (rows * h) / (ncols * w)
    width = 7.5 if aspect <= 1.2 else max(4.0, 9.0 / aspect)
    fig = _new_figure(width, min(11.0, 0.9 * width * aspect + 1.0))
    ax = fig.add_subplot()
    xn = _display_channels(x, normalize, percentile, ncols, 0.85 * width)
    im, annotated = _draw_mosaic(ax, xn, order, ncols, annotate, cmap, 0.85 * width)
    ax.set_title(title or f"{c} channels in {'the given' if order is not None else 'original (identity)'} order")
    ax.set_xlabel("tiles row by row in order" + ("; numbers = original channel index" if annotated else ""), fontsize=8)
    cb = fig.colorbar(im, ax=ax, shrink=0.8, pad=0.01)
    cb.set_label(_normalize_label(normalize, percentile), fontsize=8)
    return fig


def mosaic_comparison_figure(
    features: Any,
    orders: Mapping[str, Any],
    title: str = "",
    cols: int | None = None,
    normalize: str = "per_channel",
    annotate: bool | None = None,
    cmap: str = "viridis",
    percentile: float = 99.5,
    panel_cols: int | None = None,
):
    """Figure with one mosaic per order, identity first (see :func:`mosaic_comparison`)."""
    x = _check_features(features)
    _check_normalize(normalize)
    _check_percentile(percentile)
    c, h, w = x.shape
    named = _named_orders(orders, c)
    n = len(named)
    pc = _panel_cols(n) if panel_cols is None else max(1, min(int(panel_cols), n))
    pr = math.ceil(n / pc)
    rows, ncols = mosaic_grid(c, h, w, cols)
    aspect = (rows * h) / (ncols * w)
    panel_w = 4.6 if pc > 1 else 7.0
    fig = _new_figure(panel_w * pc + 0.8, pr * (0.92 * panel_w * aspect + 0.45) + 0.5)
    axes = fig.subplots(pr, pc, squeeze=False)
    im = None
    xn = _display_channels(x, normalize, percentile, ncols, 0.95 * panel_w)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        name, order = named[i]
        im, annotated = _draw_mosaic(ax, xn, order, ncols, annotate, cmap, 0.95 * panel_w)
        ax.set_title(name if name != "identity" else "identity (original order)", fontsize=11)
    numbers = "; numbers = original channel" if annotated else ""
    fig.suptitle(title or f"Channel mosaics of one image in each order ({c} channels, tiles row by row{numbers})", fontsize=11)
    cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, pad=0.01)
    cb.set_label(_normalize_label(normalize, percentile), fontsize=8)
    return fig


def similarity_figure(
    distance: Any,
    orders: Mapping[str, Any] | None = None,
    title: str = "",
    label: str = "distance between channels (low = similar)",
    cmap: str = "viridis",
):
    """Figure of the distance matrix in identity order and in every given order (see :func:`similarity_heatmap`)."""
    d = _check_distance(distance)
    c = d.shape[0]
    named = _named_orders(orders, c)
    off = d[~np.eye(c, dtype=bool)]
    if off.size:
        vmin, vmax = np.percentile(off, [1, 99])
    else:
        vmin, vmax = float(d.min()), float(d.max())
    if vmax <= vmin:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    n = len(named)
    pc = _panel_cols(n)
    pr = math.ceil(n / pc)
    fig = _new_figure(3.9 * pc + 1.0, 3.9 * pr + 0.7)
    axes = fig.subplots(pr, pc, squeeze=False)
    im = None
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        name, order = named[i]
        im = ax.imshow(
            permuted(d, order), cmap=cmap, vmin=vmin, vmax=vmax,
            interpolation="nearest" if c <= 300 else "antialiased",
        )
        shown = "identity (original order)" if name == "identity" else name
        ax.set_title(f"{shown}\nneighbour distance sum {path_cost(d, order):.4g}", fontsize=10)
        ax.set_xlabel("channel position in this order", fontsize=8)
        ax.set_ylabel("channel position in this order", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(title or f"Calibration distances between {c} channels, rows and columns in each order", fontsize=11)
    cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.75, pad=0.01)
    cb.set_label(f"{label}; scale clipped to 1st-99th percentile", fontsize=8)
    return fig


def _fmt_percent(v: float | None) -> str:
    return "n/a" if v is None else f"{v:+.2f}%"


def bd_rate_figure(
    bd: Mapping[str, Mapping[str, Any]],
    anchor: str = "identity",
    title: str = "",
    metric_labels: Mapping[str, str] | None = None,
):
    """Figure of grouped horizontal BD-rate bars (see :func:`bd_rate_bars`)."""
    if not isinstance(bd, Mapping):
        raise ValueError(f"bd must be a dict order -> {{'feature_psnr': x, 'task': y}}, got {type(bd).__name__}")
    labels = {**METRIC_LABELS, **(metric_labels or {})}
    metrics: list[str] = []
    rows: list[tuple[str, dict]] = []
    for name, entry in bd.items():
        if not isinstance(entry, Mapping):
            raise ValueError(f"bd[{name!r}] must be a dict metric -> BD-rate (%), got {entry!r}")
        values = {m: _as_number(v, f"bd[{name!r}][{m!r}]") for m, v in entry.items()}
        for m in values:
            if m not in metrics:
                metrics.append(m)
        if name != anchor:
            rows.append((str(name), values))
    metrics.sort(key=lambda m: (list(METRIC_LABELS).index(m) if m in METRIC_LABELS else len(METRIC_LABELS), m))

    fig = _new_figure(7.5, 1.3 + 0.32 * max(1, len(rows)) * max(1, len(metrics)) + 0.25 * len(rows))
    ax = fig.add_subplot()
    ax.set_title(title or f"BD-rate of each channel order against '{anchor}'", fontsize=11)
    ax.set_xlabel(f"BD-rate vs {anchor} (%): negative = bits saved at the same quality", fontsize=9)
    if not rows or not metrics:
        ax.text(0.5, 0.5, f"no orders other than the anchor '{anchor}' to compare", ha="center", va="center", transform=ax.transAxes)
        ax.set_xticks([])
        ax.set_yticks([])
        return fig

    import matplotlib

    colors = matplotlib.colormaps["tab10"]
    height = 0.8 / len(metrics)
    present = [v for _, vals in rows for v in vals.values() if v is not None]
    lo, hi = min([0.0, *present]), max([0.0, *present])
    span = (hi - lo) or 1.0
    for j, m in enumerate(metrics):
        ys, xs = [], []
        for i, (name, vals) in enumerate(rows):
            y = i - 0.4 + height * (j + 0.5)
            v = vals.get(m)
            if v is None:
                ax.text(0.01 * span, y, "n/a", ha="left", va="center", fontsize=8, color="0.45", style="italic")
                continue
            ys.append(y)
            xs.append(v)
            ax.text(v + (0.01 if v >= 0 else -0.01) * span, y, _fmt_percent(v), ha="left" if v >= 0 else "right", va="center", fontsize=8)
        ax.barh(ys, xs, height=height * 0.92, color=colors(j))
    ax.axvline(0.0, color="black", lw=0.8)
    ax.set_xlim(lo - 0.2 * span, hi + 0.2 * span)
    ax.set_yticks(range(len(rows)), [name for name, _ in rows])
    ax.set_ylim(len(rows) - 0.5, -0.5)  # first order on top
    ax.grid(axis="x", alpha=0.3)
    from matplotlib.patches import Patch

    handles = [Patch(color=colors(j), label=labels.get(m, m)) for j, m in enumerate(metrics)]
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
    fig = _new_figure(min(16.0, max(9.0, 2.5 + len(sizes) * len(solvers) * 0.45)), 4.8)
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
                    ax.bar(x, v, width=width * 0.92, color=colors(j % 10), label=s if i == 0 else None)
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


# --------------------------------------------------------------------------- PNG writers


def channel_mosaic(
    features: Any,
    path: str | Path,
    order: Any = None,
    title: str = "",
    cols: int | None = None,
    normalize: str = "per_channel",
    annotate: bool | None = None,
    cmap: str = "viridis",
    percentile: float = 99.5,
) -> Path:
    """Write a near-square mosaic of the channels of one image, tile ``k`` = channel ``order[k]``.

    This is the paper's "channels as frames" picture: a good order puts similar-looking
    channels next to each other. ``annotate`` writes the original channel index in each
    tile (default: when there are at most 256 channels and the tiles are big enough to
    read it). ``percentile`` clips each channel's display range (see
    :func:`normalize_channels`). Returns the PNG path.
    """
    return _save_png(mosaic_figure(features, order, title, cols, normalize, annotate, cmap, percentile), path)


def mosaic_comparison(
    features: Any,
    orders: Mapping[str, Any],
    path: str | Path,
    title: str = "",
    cols: int | None = None,
    normalize: str = "per_channel",
    annotate: bool | None = None,
    cmap: str = "viridis",
    percentile: float = 99.5,
) -> Path:
    """Write one figure with a mosaic of the same image per order, identity first (added if absent)."""
    return _save_png(mosaic_comparison_figure(features, orders, title, cols, normalize, annotate, cmap, percentile), path)


def similarity_heatmap(
    distance: Any,
    path: str | Path,
    orders: Mapping[str, Any] | None = None,
    title: str = "",
    label: str = "distance between channels (low = similar)",
    cmap: str = "viridis",
) -> Path:
    """Write the calibration distance matrix in identity order and in each given order.

    Rows and columns are permuted together (:func:`permuted`), so a good path order shows
    a dark (low-distance) band along the diagonal. One colour scale for all panels,
    clipped to the 1st-99th percentile of off-diagonal entries so the zero diagonal does
    not wash out the contrast. Each panel title gives the order's neighbour distance sum.
    """
    return _save_png(similarity_figure(distance, orders, title, label, cmap), path)


def bd_rate_bars(
    bd: Mapping[str, Mapping[str, Any]],
    path: str | Path,
    anchor: str = "identity",
    title: str = "",
    metric_labels: Mapping[str, str] | None = None,
) -> Path:
    """Write grouped horizontal bars of BD-rate (%) per order and quality metric.

    ``bd`` is ``summary.json``'s ``bd_rate``: ``{order: {"feature_psnr": x, "task": y}}``.
    The anchor itself is left out (0 by definition); None/NaN values (BD-rate refused,
    e.g. a non-monotone curve) are drawn as "n/a" rather than as a zero bar.
    """
    return _save_png(bd_rate_figure(bd, anchor, title, metric_labels), path)


def tour_cost_bars(results: Sequence[Mapping] | Mapping[str, Any], path: str | Path, title: str = "") -> Path:
    """Write TSP solver comparison: tour cost above the best per size (%) and run time (log).

    ``results`` as accepted by :func:`tour_cost_table`.
    """
    return _save_png(tour_cost_figure(results, title), path)


# --------------------------------------------------------------------------- study folder


def _read_order_file(path: Path) -> np.ndarray:
    """An order from an ``fcm-channel-order`` JSON, a bare JSON list, or a text list of integers."""
    text = path.read_text(encoding="utf-8")
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = [int(t) for t in text.replace(",", " ").split()]
    if isinstance(data, Mapping):
        if "order" not in data:
            raise ValueError(f"{path}: JSON has no 'order' field")
        data = data["order"]
    return np.asarray(data)


def _study_order_paths(out_dir: Path, summary: Mapping | None) -> dict[str, Path]:
    """name -> order file, from ``summary['orders']`` (falling back to ``orders/NAME.json``)."""
    listed = (summary or {}).get("orders")
    if isinstance(listed, Mapping) and listed:
        paths = {}
        for name, p in listed.items():
            candidates = [Path(str(p)), out_dir / str(p), out_dir / "orders" / f"{name}.json"]
            found = next((c for c in candidates if c.is_file()), None)
            if found is None:
                logger.warning("order %r: file %s not found (nor under %s/orders); left out of the mosaics", name, p, out_dir)
            else:
                paths[str(name)] = found
        return paths
    return {p.stem: p for p in sorted((out_dir / "orders").glob("*.json"))}


def figures_from_study(
    out_dir: str | Path,
    features: Any = None,
    image_id: str | None = None,
    normalize: str = "per_channel",
) -> dict[str, Path]:
    """Draw the standard figures of a ``studies.search_order`` output folder into ``out_dir/figures``.

    Writes ``bd_rate.png`` from ``summary.json`` and, when ``features`` (one test image's
    ``[C, H, W]`` array; ``image_id`` names it in the title) is given, ``mosaics.png`` with
    that image in every saved order. Missing or unusable pieces are skipped with a logged
    warning instead of failing, so a partial run still gets the figures it can have.
    Returns ``{"bd_rate": path, "mosaics": path}`` for the figures written.
    """
    out_dir = Path(out_dir)
    fig_dir = out_dir / "figures"
    made: dict[str, Path] = {}

    summary = None
    summary_path = out_dir / "summary.json"
    try:
        summary = json.loads(summary_path.read_text(encoding="utf-8"))
        if not isinstance(summary, Mapping):
            raise ValueError("top level is not a JSON object")
    except FileNotFoundError:
        logger.warning("%s not found; bd_rate.png skipped", summary_path)
        summary = None
    except (OSError, ValueError) as exc:
        logger.warning("%s unreadable (%s); bd_rate.png skipped", summary_path, exc)
        summary = None

    if summary is not None:
        bd = summary.get("bd_rate")
        if not bd:
            logger.warning("%s has no 'bd_rate' entries; bd_rate.png skipped", summary_path)
        else:
            anchor = summary.get("anchor", "identity")
            bits = [str(summary[k]) for k in ("codec",) if isinstance(summary.get(k), str)]
            if isinstance(summary.get("test"), list):
                bits.append(f"{len(summary['test'])} test images")
            title = f"BD-rate of each channel order against '{anchor}'" + (f"\n{', '.join(bits)}" if bits else "")
            try:
                made["bd_rate"] = bd_rate_bars(bd, fig_dir / "bd_rate.png", anchor=anchor, title=title)
            except ValueError as exc:
                logger.warning("bd_rate.png skipped: %s", exc)

    if features is None:
        logger.info("no features given; mosaics.png skipped")
        return made
    try:
        x = _check_features(features)
    except ValueError as exc:
        logger.warning("mosaics.png skipped: %s", exc)
        return made
    orders: dict[str, np.ndarray] = {}
    for name, p in _study_order_paths(out_dir, summary).items():
        try:
            orders[name] = _check_order(_read_order_file(p), x.shape[0], name=f"order file {p}")
        except (OSError, ValueError) as exc:
            logger.warning("order %r left out of the mosaics: %s", name, exc)
    if not orders:
        logger.warning("no usable order files in %s; mosaics.png shows the identity order only", out_dir / "orders")
    image = f" {image_id}" if image_id else ""
    title = f"Test image{image}: {x.shape[0]} channels in each order (tiles row by row; numbers = original channel)"
    made["mosaics"] = mosaic_comparison(x, orders, fig_dir / "mosaics.png", title=title, normalize=normalize)
    return made
