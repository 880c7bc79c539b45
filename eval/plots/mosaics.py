"""Channel mosaics: one image's ``[C, H, W]`` features tiled in a channel order, alone or one panel per order.

An order is a permutation of ``0..C-1`` with ``order[k]`` = original channel shown at
tile ``k`` (tiles row by row). A good order puts similar-looking channels next to each
other, which is what a video codec's prediction exploits.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from reorder import validate_order

from ._checks import check_features, check_normalize, check_percentile, named_orders
from ._png import DPI, new_figure, plain_text, save_png
from ._png import panel_cols as _panel_cols  # mosaic_comparison_figure has an argument named panel_cols

__all__ = [
    "mosaic_grid",
    "normalize_channels",
    "mosaic_array",
    "mosaic_figure",
    "mosaic_comparison_figure",
    "channel_mosaic",
    "mosaic_comparison",
]

_ANNOTATE_MAX_CHANNELS = 256


# --------------------------------------------------------------------------- arrays


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


def normalize_channels(features: Any, normalize: str = "per_channel", percentile: float = 100.0) -> np.ndarray:
    """Scale features to [0, 1] for display.

    ``per_channel``: each channel scaled on its own, so the spatial pattern of every channel
    is visible whatever its magnitude (the usual way to look at feature maps); ``global``:
    one scale for all channels, so magnitudes stay comparable across tiles. The range is
    from the ``100 - percentile`` to the ``percentile`` percentile, values outside clipped:
    100 is plain min-max; a little below (the figures use 99.5) keeps a few bright ReLU
    outliers from turning the rest of a channel black. A constant channel maps to 0.
    """
    x = check_features(features)
    check_normalize(normalize)
    percentile = check_percentile(percentile)
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
    stay thin whatever the tile size). Values are normalized to [0, 1] (see
    :func:`normalize_channels`, plain min-max by default); separator pixels and unused
    tiles are NaN so they can be drawn in a neutral colour.
    """
    x = normalize_channels(features, normalize, percentile)
    return _tile(x, order, cols, sep)


def _tile(x: np.ndarray, order: Any, cols: int | None, sep: int) -> np.ndarray:
    """Place the (already normalized) channels of ``x`` in ``order`` on the mosaic grid."""
    c, h, w = x.shape
    order = np.arange(c) if order is None else validate_order(order, c, source="order")
    rows, cols = mosaic_grid(c, h, w, cols)
    if isinstance(sep, bool) or not isinstance(sep, numbers.Integral) or sep < 0:
        raise ValueError(f"sep must be a non-negative integer number of pixels, got {sep!r}")
    out = np.full((rows * h + (rows - 1) * sep, cols * w + (cols - 1) * sep), np.nan)
    for k, ch in enumerate(order):
        r, q = divmod(k, cols)
        y0, x0 = r * (h + sep), q * (w + sep)
        out[y0 : y0 + h, x0 : x0 + w] = x[ch]
    return out


# --------------------------------------------------------------------------- drawing


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
    """Normalized channels, block-averaged when tiles would be shrunk more than 2x on screen.

    Only a display shortcut: resampling a 4000-pixel-wide mosaic at draw time costs
    seconds per panel, while averaging f x f blocks first looks the same (it is what
    antialiasing does) and leaves the figure's content otherwise unchanged.
    """
    xn = normalize_channels(x, normalize, percentile)
    c, h, w = xn.shape
    screen_px = panel_width_in * DPI / cols
    f = min(int(w // screen_px), h, w) if w > 2 * screen_px else 1
    if f <= 1:
        return xn
    hh, ww = h // f, w // f
    return xn[:, : hh * f, : ww * f].reshape(c, hh, f, ww, f).mean(axis=(2, 4))


def _draw_mosaic(ax, xn, order, cols, annotate, cmap, panel_width_in):
    """Draw one mosaic of normalized channels ``xn`` on ``ax``; return (image artist, annotated?)."""
    c, h, w = xn.shape
    order = np.arange(c, dtype=np.int64) if order is None else validate_order(order, c, source="order")
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
    x = check_features(features)
    check_normalize(normalize)
    check_percentile(percentile)
    c, h, w = x.shape
    rows, ncols = mosaic_grid(c, h, w, cols)
    aspect = (rows * h) / (ncols * w)
    width = 7.5 if aspect <= 1.2 else max(4.0, 9.0 / aspect)
    fig = new_figure(width, min(11.0, 0.9 * width * aspect + 1.0))
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
    """Figure with one mosaic per order, identity first (see :func:`mosaic_comparison`).

    Panel titles are the order names exactly as given (the identity panel reads
    ``identity (original order)``).
    """
    x = check_features(features)
    check_normalize(normalize)
    check_percentile(percentile)
    c, h, w = x.shape
    named = named_orders(orders, c)
    n = len(named)
    pc = _panel_cols(n) if panel_cols is None else max(1, min(int(panel_cols), n))
    pr = math.ceil(n / pc)
    rows, ncols = mosaic_grid(c, h, w, cols)
    aspect = (rows * h) / (ncols * w)
    panel_w = 4.6 if pc > 1 else 7.0
    fig = new_figure(panel_w * pc + 0.8, pr * (0.92 * panel_w * aspect + 0.45) + 0.5)
    axes = fig.subplots(pr, pc, squeeze=False)
    im, annotated = None, False
    xn = _display_channels(x, normalize, percentile, ncols, 0.95 * panel_w)
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        name, order = named[i]
        im, annotated = _draw_mosaic(ax, xn, order, ncols, annotate, cmap, 0.95 * panel_w)
        ax.set_title(plain_text(name) if name != "identity" else "identity (original order)", fontsize=11)
    numbers_note = "; numbers = original channel" if annotated else ""
    fig.suptitle(
        title or f"Channel mosaics of one image in each order ({c} channels, tiles row by row{numbers_note})",
        fontsize=11,
    )
    cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.6, pad=0.01)
    cb.set_label(_normalize_label(normalize, percentile), fontsize=8)
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
    return save_png(mosaic_figure(features, order, title, cols, normalize, annotate, cmap, percentile), path)


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
    return save_png(mosaic_comparison_figure(features, orders, title, cols, normalize, annotate, cmap, percentile), path)
