"""Channel importance: what the task loses per channel, and where an order puts the channels that matter.

Left panel: each channel's task loss when it alone is coded at the structure's largest QP offset
(:mod:`eval.pipeline.importance`), sorted from most to least important, on a log axis; a second
series (the gradient estimate) is drawn beside it when given. Right panel (when ``estimate`` is
given): the estimate against the measurement per channel, with their Spearman correlation.
``orders`` (name -> order) and ``qp_offsets`` (per position) add a strip per order below the bars:
the QP offset of the position each channel sits at in that order, so one sees whether the
channels at the left (the important ones) sit at low-QP positions.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from reorder import validate_order

from ._png import new_figure, plain_text, save_png

__all__ = ["importance_figure", "plot_importance", "position_loss_figure", "plot_position_loss"]


def _vector(values: Any, what: str, n: int | None = None) -> np.ndarray:
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 1 or v.size == 0 or not np.isfinite(v).all() or (v < 0).any():
        raise ValueError(f"{what} must be a non-empty vector of finite values >= 0")
    if n is not None and v.size != n:
        raise ValueError(f"{what} has {v.size} entries for {n} channels")
    return v


def importance_figure(importance: Any, estimate: Any = None, orders: Mapping[str, Any] | None = None,
                      qp_offsets: Any = None, title: str = "", label: str = "task loss (mean KL per window, nats)"):
    """The figure of the module docstring (a matplotlib Figure on its own Agg canvas)."""
    imp = _vector(importance, "importance")
    n = imp.size
    est = None if estimate is None else _vector(estimate, "estimate", n)
    orders = dict(orders or {})
    if orders and qp_offsets is None:
        raise ValueError("orders are drawn by the QP offset of each channel's position: pass qp_offsets too")
    off = None if qp_offsets is None else np.asarray(qp_offsets, dtype=np.float64)
    if off is not None and off.shape != (n,):
        raise ValueError(f"qp_offsets has shape {off.shape}; give one offset per position ({n})")
    rank = np.argsort(-imp, kind="stable")
    strips = len(orders)
    fig = new_figure(11.0 if est is not None else 8.0, 3.6 + 0.35 * strips)
    grid = fig.add_gridspec(1 + (strips > 0), 2 if est is not None else 1,
                            height_ratios=[3.0, 0.35 * strips] if strips else [1.0],
                            width_ratios=[2.2, 1.0] if est is not None else [1.0])
    ax = fig.add_subplot(grid[0, 0])
    x = np.arange(n)
    floor = max(imp[imp > 0].min() if (imp > 0).any() else 1e-12, 1e-12) / 10
    ax.bar(x, np.maximum(imp[rank], floor), width=1.0, color="tab:blue", label="measured (one channel perturbed)")
    if est is not None:
        ax.plot(x, np.maximum(est[rank], floor), ".", ms=3, color="tab:orange", label="gradient estimate")
    ax.set_yscale("log")
    ax.set_xlim(-0.5, n - 0.5)
    ax.set_ylabel(plain_text(label))
    ax.set_xlabel("channels, most important first")
    ax.legend(loc="upper right", fontsize=8)
    share = np.cumsum(imp[rank]) / max(imp.sum(), 1e-300)
    k10 = int(np.searchsorted(share, 0.5)) + 1
    ax.set_title(plain_text(title or f"channel importance: the top {k10} of {n} channels carry half the loss"),
                 fontsize=10)
    if strips:
        sax = fig.add_subplot(grid[1, 0], sharex=ax)
        rows = []
        for name, order in orders.items():
            o = validate_order(order, n, source=f"order {name!r}")
            pos = np.argsort(o)
            rows.append(off[pos][rank])
        im = sax.imshow(np.array(rows), aspect="auto", cmap="RdYlGn_r", interpolation="nearest",
                        extent=(-0.5, n - 0.5, strips - 0.5, -0.5))
        sax.set_yticks(range(strips), [plain_text(k) for k in orders], fontsize=8)
        sax.set_xlabel("channels, most important first: QP offset of the position each order gives them")
        fig.colorbar(im, ax=sax, label="QP offset", fraction=0.03, pad=0.01)
    if est is not None:
        from scipy.stats import spearmanr

        bx = fig.add_subplot(grid[:, 1])
        ok = (imp > 0) & (est > 0)
        bx.loglog(imp[ok], est[ok], ".", ms=4)
        lo, hi = min(imp[ok].min(), est[ok].min()), max(imp[ok].max(), est[ok].max())
        bx.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        bx.set_xlabel("measured")
        bx.set_ylabel("gradient estimate")
        bx.set_title(f"per channel, Spearman {spearmanr(imp, est)[0]:.3f}", fontsize=10)
    return fig


def plot_importance(path: str | Path, importance: Any, estimate: Any = None, orders: Mapping[str, Any] | None = None,
                    qp_offsets: Any = None, title: str = "", **kwargs) -> Path:
    """Draw :func:`importance_figure` and write it as a PNG to ``path``."""
    return save_png(importance_figure(importance, estimate, orders, qp_offsets, title, **kwargs), path)


def position_loss_figure(offsets: Any, code_mse: Any, variance: Any, model=None, title: str = ""):
    """What a channel loses at each QP offset, from measured samples (one per channel and position coded).

    Left: the mean code MSE per offset (bars) against the squared-step law ``2 ** (o / 3)`` scaled to
    the largest offset (line). Right: each sample's MSE relative to its channel's variance against the
    offset, with the fitted :class:`reorder.position_loss.PositionLoss` (``model``) drawn for channels
    of low, median and high variance.
    """
    off = np.asarray(offsets, dtype=np.float64)
    mse = np.asarray(code_mse, dtype=np.float64)
    var = np.asarray(variance, dtype=np.float64)
    if not (off.shape == mse.shape == var.shape) or off.ndim != 1 or off.size == 0:
        raise ValueError("offsets, code_mse and variance must be equal-length non-empty vectors (one per sample)")
    levels = np.unique(off)
    fig = new_figure(10.0, 3.8)
    ax, bx = fig.subplots(1, 2)
    means = np.array([mse[off == o].mean() for o in levels])
    ax.bar([f"{o:+g}" for o in levels], means, color="tab:blue", label="measured (mean over channels and images)")
    law = means[-1] * 2.0 ** ((levels - levels[-1]) / 3.0)
    ax.plot([f"{o:+g}" for o in levels], law, "k.--", label="2^(offset/3), the squared step")
    ax.set_xlabel("QP offset of the position")
    ax.set_ylabel("code MSE")
    ax.legend(fontsize=8)
    rel = mse / np.maximum(var, 1e-12)
    jitter = np.random.default_rng(0).uniform(-0.25, 0.25, off.size)
    bx.semilogy(off + jitter, np.maximum(rel, 1e-6), ".", ms=2, alpha=0.3, color="tab:gray", label="samples")
    if model is not None:
        grid = np.linspace(levels.min(), levels.max(), 60)
        v = model.variance
        for q, colour in ((5, "tab:green"), (50, "tab:orange"), (95, "tab:red")):
            c = int(np.argsort(v)[int(q / 100 * (v.size - 1))])
            bx.semilogy(grid, model.mse(grid)[c] / max(v[c], 1e-12), color=colour, lw=1.5,
                        label=f"model, channel variance {v[c]:.0f} (p{q})")
    bx.set_xlabel("QP offset of the position")
    bx.set_ylabel("code MSE / channel variance")
    bx.legend(fontsize=7)
    fig.suptitle(plain_text(title or "what a channel loses at each position"), fontsize=10)
    return fig


def plot_position_loss(path: str | Path, offsets: Any, code_mse: Any, variance: Any, model=None, title: str = "") -> Path:
    """Draw :func:`position_loss_figure` and write it as a PNG to ``path``."""
    return save_png(position_loss_figure(offsets, code_mse, variance, model, title), path)
