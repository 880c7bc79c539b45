"""Distance heat maps: a channel distance matrix with rows and columns in identity and in learned orders.

A good open-path order puts low-distance (similar) channels next to each other, which
shows as a dark band along the diagonal; each panel's title gives the order's path cost
(:func:`reorder.path_cost`, the sum of distances between neighbours in the order).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from reorder import path_cost, validate_order

from ._checks import check_distance, named_orders
from ._png import new_figure, panel_cols, plain_text, save_png

__all__ = ["permuted", "similarity_figure", "similarity_heatmap"]


def permuted(distance: Any, order: Any) -> np.ndarray:
    """Distance matrix with rows and columns in ``order``: ``out[i, j] = d[order[i], order[j]]``."""
    d = check_distance(distance)
    o = validate_order(order, d.shape[0], source="order")
    return d[np.ix_(o, o)]


def similarity_figure(
    distance: Any,
    orders: Mapping[str, Any] | None = None,
    title: str = "",
    label: str = "distance between channels (low = similar)",
    cmap: str = "viridis",
):
    """Figure of the distance matrix in identity order and in every given order (see :func:`similarity_heatmap`)."""
    d = check_distance(distance)
    c = d.shape[0]
    named = named_orders(orders, c)
    off = d[~np.eye(c, dtype=bool)]
    if off.size:
        vmin, vmax = np.percentile(off, [1, 99])
    else:
        vmin, vmax = float(d.min()), float(d.max())
    if vmax <= vmin:
        vmin, vmax = vmin - 0.5, vmax + 0.5
    n = len(named)
    pc = panel_cols(n)
    pr = math.ceil(n / pc)
    fig = new_figure(3.9 * pc + 1.0, 3.9 * pr + 0.7)
    axes = fig.subplots(pr, pc, squeeze=False)
    im = None
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        name, order = named[i]
        im = ax.imshow(
            d[np.ix_(order, order)], cmap=cmap, vmin=vmin, vmax=vmax,
            interpolation="nearest" if c <= 300 else "antialiased",
        )
        shown = "identity (original order)" if name == "identity" else plain_text(name)
        ax.set_title(f"{shown}\nneighbour distance sum {path_cost(d, order):.4g}", fontsize=10)
        ax.set_xlabel("channel position in this order", fontsize=8)
        ax.set_ylabel("channel position in this order", fontsize=8)
        ax.tick_params(labelsize=7)
    fig.suptitle(
        title or f"Calibration distances between {c} channels, rows and columns in each order",
        fontsize=11,
    )
    cb = fig.colorbar(im, ax=axes.ravel().tolist(), shrink=0.75, pad=0.01)
    cb.set_label(f"{label}; scale clipped to 1st-99th percentile", fontsize=8)
    return fig


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
    return save_png(similarity_figure(distance, orders, title, label, cmap), path)
