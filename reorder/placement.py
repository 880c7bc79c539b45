"""Where each channel sits in a tiled mosaic: the grid, its neighbours, and orders that place similar channels
next to each other.

Tiled packing (:class:`codec.packing.TiledPacking`) lays the channels of an order out row by row: position
``k`` of the order becomes tile ``(k // cols, k % cols)`` of mosaic ``k // per_frame``. So an order *is* a
placement, and what a codec can exploit is no longer the sequence of channels but the tiles that touch:

* intra prediction works from the tiles to the left and above, so similar 4-neighbours help;
* with several mosaics per image (``per_frame``), inter prediction works from the tile at the same position
  of the previous (and other reference) mosaics.

This module holds that geometry and a placement objective, and knows no model:

* :func:`mosaic_grid`: (rows, cols) of each mosaic, the packing's own rule (:func:`codec.packing.mpeg_grid`
  from the channel count alone unless ``cols`` is given).
* :func:`snake`: a path (a TSP order) laid out as a boustrophedon through each mosaic: row-major tiling of the
  returned order shows the path running left to right, then right to left, so consecutive channels of the
  path stay 4-neighbours across row ends too.
* :func:`placement_graph`: the weighted position graph: 4-neighbour edges inside each mosaic (weight
  ``spatial``) and same-position edges between consecutive mosaics (weight ``temporal``).
* :class:`PlacementCost`: ``cost(order) = sum over edges (a, b) of w_ab * D[order[a], order[b]]``, a quadratic
  assignment objective, with O(P) vectorised swap deltas.
* :func:`improve_placement`: best-improvement swaps from a start order, then seeded kicks (iterated local
  search) within a count and a time budget; the cost never rises.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from codec.packing import mpeg_grid

from .permutation import validate_order

__all__ = ["mosaic_grid", "snake", "snake_positions", "placement_graph", "PlacementCost", "improve_placement",
           "PlacementResult", "chains_start", "grid_cost_summary"]


def mosaic_grid(n: int, cols: int | None = None, per_frame: int | None = None) -> tuple[int, int]:
    """(rows, cols) of each mosaic of ``per_frame`` (default all ``n``) channels.

    ``cols`` given: ``ceil(k / cols)`` rows of ``cols`` (what ``TiledPacking(cols=..)`` makes); else the MPEG
    anchors' exact factor grid for square or wide tiles (``TiledPacking(grid="mpeg")`` for tiles with h <= w).
    """
    n = int(n)
    if n < 1:
        raise ValueError(f"a mosaic needs at least one channel, got {n}")
    k = min(int(per_frame or n), n)
    if k < 1:
        raise ValueError(f"per_frame={per_frame!r}; use a positive integer or None")
    if cols is None:
        return mpeg_grid(k)
    if isinstance(cols, bool) or int(cols) != cols or cols < 1:
        raise ValueError(f"cols={cols!r}; use a positive integer or None")
    cols = min(int(cols), k)
    return -(-k // cols), cols


def _mosaic_sizes(n: int, per_frame: int | None) -> list[int]:
    k = min(int(per_frame or n), n)
    return [min(k, n - start) for start in range(0, n, k)]


def snake_positions(k: int, cols: int) -> np.ndarray:
    """Row-major tile index of the ``s``-th step of a boustrophedon through ``k`` tiles of a ``cols``-wide grid.

    Even rows run left to right, odd rows right to left. A last, partial row (only its first tiles exist in
    row-major packing) is run from the end its predecessor finished at.
    """
    pos = []
    for r in range(-(-k // cols)):
        m = min(cols, k - r * cols)
        cells = list(range(r * cols, r * cols + m))
        pos.extend(cells if r % 2 == 0 else cells[::-1])
    return np.asarray(pos, dtype=np.int64)


def snake(path, cols: int, per_frame: int | None = None) -> np.ndarray:
    """The order whose row-major tiling shows ``path`` as a snake through each mosaic.

    Mosaic ``f`` holds ``path[f*k:(f+1)*k]`` (``k = per_frame``, default all); inside it the path's ``s``-th
    channel goes to the tile :func:`snake_positions` gives. Returns an int64 permutation (``order[k]`` = the
    channel at position ``k``).
    """
    path = np.asarray(path, dtype=np.int64)
    n = path.size
    out = np.empty(n, dtype=np.int64)
    _, c = mosaic_grid(n, cols, per_frame)  # every mosaic has the first one's grid (a last one may be partial)
    start = 0
    for size in _mosaic_sizes(n, per_frame):
        out[start + snake_positions(size, c)] = path[start:start + size]
        start += size
    return out


def placement_graph(n: int, cols: int | None = None, per_frame: int | None = None, spatial: float = 1.0,
                    temporal: float = 0.0) -> np.ndarray:
    """Symmetric [n, n] weights between order positions: 4-neighbour tiles of a mosaic get ``spatial``, the tiles
    at the same (row, col) of consecutive mosaics ``temporal``."""
    n = int(n)
    rows, c = mosaic_grid(n, cols, per_frame)
    k = min(int(per_frame or n), n)
    W = np.zeros((n, n))
    for f0 in range(0, n, k):
        size = min(k, n - f0)
        for t in range(size):
            r, col = divmod(t, c)
            if col + 1 < c and t + 1 < size:
                W[f0 + t, f0 + t + 1] = W[f0 + t + 1, f0 + t] = spatial
            if t + c < size:
                W[f0 + t, f0 + t + c] = W[f0 + t + c, f0 + t] = spatial
            if f0 + k + t < n:
                W[f0 + t, f0 + k + t] = W[f0 + k + t, f0 + t] = temporal
    return W


class PlacementCost:
    """``cost(order) = sum over position pairs a < b of W[a, b] * D[order[a], order[b]]``.

    ``D``: a symmetric channel distance matrix (e.g. 1 - Pearson r); ``W``: position weights from
    :func:`placement_graph`. :meth:`swap_deltas` gives the cost change of swapping position ``p`` with every
    position at once, from the table ``A[x, q] = sum_r W[q, r] * D[x, order[r]]`` (the cost of putting channel
    ``x`` at ``q`` next to the current neighbours), which :meth:`swap` keeps up to date.
    """

    def __init__(self, D: np.ndarray, W: np.ndarray):
        D = np.asarray(D, dtype=np.float64)
        W = np.asarray(W, dtype=np.float64)
        if D.ndim != 2 or D.shape[0] != D.shape[1] or W.shape != D.shape:
            raise ValueError(f"distance matrix {D.shape} and position weights {W.shape} must both be [n, n]")
        if not np.allclose(W, W.T):
            raise ValueError("position weights must be symmetric")
        self.D, self.W = D, W

    def __call__(self, order) -> float:
        o = np.asarray(order)
        return float(0.5 * np.sum(self.W * self.D[np.ix_(o, o)]))

    def table(self, order: np.ndarray) -> np.ndarray:
        return self.D[:, order] @ self.W

    def swap_deltas(self, order: np.ndarray, A: np.ndarray, p: int) -> np.ndarray:
        """Cost change of swapping position ``p`` with each position (0 for ``p`` itself)."""
        op = order[p]
        pos = np.arange(order.size)
        d = A[order, p] - A[op, p] + A[op, :] - A[order, pos] + 2.0 * self.W[p] * self.D[op, order]
        d[p] = 0.0
        return d

    def swap(self, order: np.ndarray, A: np.ndarray, p: int, j: int) -> None:
        """Swap the channels at positions ``p`` and ``j`` in ``order`` and update ``A`` in place."""
        dw = self.W[p] - self.W[j]
        idx = np.flatnonzero(dw)
        if idx.size:
            A[:, idx] += np.outer(self.D[:, order[j]] - self.D[:, order[p]], dw[idx])
        order[p], order[j] = order[j], order[p]


@dataclass
class PlacementResult:
    order: np.ndarray
    cost: float
    initial_cost: float
    passes: int
    moves: int
    kicks: int
    seconds: float
    timed_out: bool


def _descend(cost: PlacementCost, order: np.ndarray, A: np.ndarray, rng, deadline) -> tuple[int, int, bool]:
    """Best-improvement swaps, positions in a seeded order, until a pass improves nothing (or time runs out)."""
    passes = moves = 0
    while True:
        improved = False
        for p in rng.permutation(order.size):
            if deadline is not None and time.perf_counter() > deadline:
                return passes, moves, True
            d = cost.swap_deltas(order, A, int(p))
            j = int(np.argmin(d))
            if d[j] < -1e-12:
                cost.swap(order, A, int(p), j)
                moves += 1
                improved = True
        passes += 1
        if not improved:
            return passes, moves, False


def improve_placement(cost: PlacementCost, start, kicks: int = 100, kick_size: int = 3, seed: int = 0,
                      time_budget: float | None = 60.0) -> PlacementResult:
    """Lower ``cost`` from ``start``: swap descent to a local optimum, then ``kicks`` times perturb the best order
    by ``kick_size`` random swaps and descend again, keeping the result when it is better.

    Deterministic for a ``seed`` unless ``time_budget`` (seconds, checked between moves) cuts it short
    (``timed_out``); the returned cost is never above the start's.
    """
    t0 = time.perf_counter()
    deadline = None if time_budget is None else t0 + float(time_budget)
    best = validate_order(start, cost.D.shape[0], source="placement start").copy()
    n = best.size
    rng = np.random.default_rng(seed)
    initial = cost(best)
    A = cost.table(best)
    passes, moves, timed_out = _descend(cost, best, A, rng, deadline)
    best_cost = cost(best)
    done = 0
    while done < kicks and not timed_out and n > 2:
        trial = best.copy()
        for _ in range(kick_size):
            i, j = rng.choice(n, size=2, replace=False)
            trial[i], trial[j] = trial[j], trial[i]
        At = cost.table(trial)
        p, m, timed_out = _descend(cost, trial, At, rng, deadline)
        passes, moves, done = passes + p, moves + m, done + 1
        value = cost(trial)
        if value < best_cost - 1e-12:
            best, best_cost = trial, value
    return PlacementResult(best, cost(best), initial, passes, moves, done, time.perf_counter() - t0, timed_out)


def chains_start(path, cols: int | None = None, per_frame: int | None = None) -> np.ndarray:
    """A start for several mosaics per image: the path cut into one chain per tile position, the chains laid out
    as a snake, each chain running through the mosaics at its position.

    Tile position ``g`` of mosaic ``f`` gets the ``f``-th channel of its chain, so the channel a mosaic shows at
    a position follows the one the previous mosaic showed there on the path (inter prediction), and chains that
    are neighbours on the path are neighbours in the mosaic (intra prediction).
    """
    path = np.asarray(path, dtype=np.int64)
    n = path.size
    sizes = _mosaic_sizes(n, per_frame)
    k = sizes[0]
    _, c = mosaic_grid(n, cols, per_frame)
    counts = np.array([sum(1 for s in sizes if g < s) for g in range(k)])  # mosaics holding tile g
    order = np.empty(n, dtype=np.int64)
    at = 0
    for g in snake_positions(k, c):
        chain = path[at:at + counts[g]]
        at += counts[g]
        order[np.arange(counts[g]) * k + g] = chain
    return order


def grid_cost_summary(D: np.ndarray, order, cols: int | None = None, per_frame: int | None = None) -> dict:
    """Summed 4-neighbour and same-position distances of ``order`` (for reports: smaller is more alike)."""
    n = len(order)
    spatial = PlacementCost(D, placement_graph(n, cols, per_frame, 1.0, 0.0))(order)
    temporal = PlacementCost(D, placement_graph(n, cols, per_frame, 0.0, 1.0))(order) if per_frame else 0.0
    return {"neighbour_cost": spatial, "temporal_cost": temporal}

