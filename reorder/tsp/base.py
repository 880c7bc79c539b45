"""What every TSP solver module shares: the registry, errors, results and the matrix helpers.

A solver is a function ``solve(D, start, seed, time_budget)`` returning an open path over
all nodes (or ``(path, label)`` when it wants :attr:`PathResult.solver` to say more, as
``default`` does, or ``(path, label, timed_out)`` when a hard time limit stopped it and the
path is a fallback, as python-tsp's solvers do). It joins :data:`TSP_SOLVERS` with the registry decorator where it is
defined, and with :func:`needs` when it imports an optional package::

    @TSP_SOLVERS.register("lkh", "elkai")
    @needs("elkai")
    def lkh(D, start, seed, time_budget): ...

Solver names are spelled with underscores (``two_opt``), as results record them; the
registry also accepts dashes and the aliases given at registration.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

import numpy as np

from codec.registry import Registry

EXACT_MAX_N = 13
"""Largest problem the Held-Karp solver accepts (2**13 * 13 * 13 steps, well under a second)."""

_LKH_MAX_INT = 1_000_000  # LKH multiplies costs by PRECISION=100 internally: keep them far below 2**31 / 100
_FAST_TSP_MAX_INT = 65_535  # fast_tsp stores distances as uint16


class SolverUnavailableError(ImportError):
    """The solver's package is not installed (or too old)."""


@dataclass(frozen=True)
class PathResult:
    """An open path over all nodes, its cost under the original float distances, the solver and its wall time.

    ``timed_out`` is True when the solver was stopped at its hard time limit and ``path`` is
    the fallback it returned instead of its own answer (python-tsp's solvers, see
    :mod:`reorder.tsp.pytsp`); ``solver`` then says which fallback.
    """

    path: np.ndarray
    cost: float
    solver: str
    seconds: float
    timed_out: bool = False


TSP_SOLVERS = Registry("TSP solver", package="reorder.tsp")
"""Every open-path solver, filled by ``@TSP_SOLVERS.register(name, *aliases)`` in the modules of :mod:`reorder.tsp`."""


def needs(*modules: str, check: Callable[[], object] | None = None) -> Callable:
    """Mark a solver as needing optional ``modules`` (and ``check()`` not raising SolverUnavailableError).

    :func:`reorder.tsp.available_solvers` lists only the solvers whose needs are met.
    """
    def mark(fn):
        fn.needs = modules
        fn.check = check
        return fn
    return mark


def is_available(solver: Callable) -> bool:
    """Whether the packages a registered solver needs are importable here (see :func:`needs`)."""
    for mod in getattr(solver, "needs", ()):
        try:
            importlib.import_module(mod)
        except ImportError:
            return False
    check = getattr(solver, "check", None)
    if check is not None:
        try:
            check()
        except SolverUnavailableError:
            return False
    return True


# --------------------------------------------------------------------------------------------- helpers


def check_distance_matrix(D) -> np.ndarray:
    """Return ``D`` as a symmetric float64 matrix with zero diagonal, or raise ValueError saying what is wrong."""
    try:
        D = np.asarray(D, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"distance matrix must be numeric ({exc})") from None
    if D.ndim != 2 or D.shape[0] != D.shape[1]:
        raise ValueError(f"distance matrix must be square, got shape {D.shape}")
    if D.shape[0] == 0:
        raise ValueError("distance matrix is empty; need at least one channel")
    if not np.all(np.isfinite(D)):
        i, j = np.argwhere(~np.isfinite(D))[0]
        raise ValueError(f"distance matrix has a non-finite entry at ({i}, {j}); fix the similarity statistics")
    off = D[~np.eye(D.shape[0], dtype=bool)]
    if off.size and off.min() < 0:
        i, j = np.argwhere((D < 0) & ~np.eye(D.shape[0], dtype=bool))[0]
        raise ValueError(f"distance matrix has a negative entry {D[i, j]:.3g} at ({i}, {j}); distances must be >= 0")
    asym = np.abs(D - D.T).max()
    if asym > 1e-9 * max(1.0, np.abs(D).max()):
        raise ValueError(
            f"distance matrix is not symmetric (max |D - D.T| = {asym:.3g}); symmetrise it, e.g. (D + D.T) / 2"
        )
    D = (D + D.T) / 2.0
    np.fill_diagonal(D, 0.0)
    return D


def path_cost(D, path) -> float:
    """Open path cost ``sum(D[path[k], path[k+1]])`` (no edge from the last node back to the first)."""
    D = np.asarray(D)
    p = np.asarray(path, dtype=np.int64)
    if p.size < 2:
        return 0.0
    return float(D[p[:-1], p[1:]].sum())


def _check_start(start, n: int) -> int | None:
    if start is None:
        return None
    if isinstance(start, bool) or not isinstance(start, (int, np.integer)):
        raise ValueError(f"start must be a channel index (int) or None, got {start!r}")
    if not 0 <= int(start) < n:
        raise ValueError(f"start={start} is out of range; the matrix has channels 0..{n - 1}")
    return int(start)


def _orient(path: np.ndarray, start: int | None) -> np.ndarray:
    """Fix the direction of a path: begin at ``start`` if given, else at the smaller end node."""
    path = np.asarray(path, dtype=np.int64)
    if start is not None:
        if path[0] == start:
            return path
        if path[-1] == start:
            return path[::-1].copy()
        # a heuristic left start inside the path: move it to the front (local search repairs the rest)
        return np.concatenate([[start], path[path != start]])
    return path[::-1].copy() if path[-1] < path[0] else path


def _clip_level(D: np.ndarray, max_int: int, k: int = 10, min_units: int = 1000) -> float:
    """Level above which distances are clipped before integer scaling (the largest distance if none need to be).

    Rounding matters only if typical short edges would get few integer units: when the
    median nearest-neighbour distance would be under ``min_units``, distances are clipped
    at the level that gives it ``min_units`` units, but never below any node's distance to
    its k-th nearest neighbour (so every node keeps k exactly scaled neighbours). Heavy-tailed
    MSE matrices need this; 1 - r matrices do not.
    """
    n = D.shape[0]
    top = float(D.max())
    if n <= k + 1 or top <= 0:
        return top
    off = D + np.diag(np.full(n, np.inf))
    near = np.partition(off, [0, k - 1], axis=1)
    med = float(np.median(near[:, 0]))
    if med <= 0 or med * max_int / top >= min_units:
        return top
    return float(min(top, max(med * max_int / min_units, near[:, k - 1].max())))


def _scale_to_int(D: np.ndarray, max_int: int) -> np.ndarray:
    """Round ``D`` (clipped at :func:`_clip_level`) to integers 0..max_int for the integer solvers."""
    cap = _clip_level(D, max_int)
    scale = (max_int / cap) if cap > 0 else 1.0
    return np.rint(np.minimum(D, cap) * scale).astype(np.int64)


def _with_dummy(Di: np.ndarray, start: int | None, base: int = 0) -> np.ndarray:
    """Integer matrix with an extra last node (the dummy) that turns a closed tour into an open path.

    Without ``start`` the dummy is at distance ``base`` from every node. With ``start`` it
    is at ``base`` from start and ``base + M`` from the others, ``M = 2 max(D) + 1``: moving
    start from anywhere to the front of a path raises its cost by at most ``2 max(D)``, so
    every optimal tour enters the dummy from start.
    """
    n = Di.shape[0]
    out = np.zeros((n + 1, n + 1), dtype=np.int64)
    out[:n, :n] = Di
    row = np.full(n, base, dtype=np.int64)
    if start is not None:
        row += 2 * int(Di.max()) + 1
        row[start] = base
    out[n, :n] = row
    out[:n, n] = row
    return out


def _tour_to_path(tour, dummy: int) -> np.ndarray:
    tour = [int(t) for t in tour]
    if tour and len(tour) > dummy + 1 and tour[-1] == tour[0]:
        tour = tour[:-1]
    k = tour.index(dummy)
    return np.asarray(tour[k + 1:] + tour[:k], dtype=np.int64)


def _cut_tour(tour, D: np.ndarray, start: int | None) -> np.ndarray:
    """Open a closed tour: drop its longest edge, or with ``start`` the longer edge at start."""
    t = np.asarray([int(v) for v in tour], dtype=np.int64)
    if t.size > 1 and t[-1] == t[0]:
        t = t[:-1]
    n = t.size
    nxt = np.roll(t, -1)
    w = D[t, nxt]  # w[k] = edge t[k] -> t[k+1]
    if start is None:
        k = int(np.argmax(w))
    else:
        s = int(np.flatnonzero(t == start)[0])
        k = s if w[s] >= w[(s - 1) % n] else (s - 1) % n
    return np.roll(t, -(k + 1))
