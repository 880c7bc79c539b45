"""Open-path travelling-salesman solvers behind one interface.

A channel order is a Hamiltonian *path* (the first and last channels are not
neighbours in the video), so every solver here minimises the open path cost
``sum(D[p[k], p[k+1]])``. Closed-tour solvers (LKH, fast_tsp, python-tsp) get an
extra "dummy" node whose distance to every channel is the same constant: a tour
through it is a path plus that constant twice, so an optimal tour is an optimal
path. ``start=k`` is enforced the same way, with the dummy near k only (see
:func:`reorder.tsp.base._with_dummy`). The networkx approximations cannot take the
dummy (their spanning tree would become a star around it), so their closed tour is
cut at its longest edge instead.

    res = solve_path(D)                      # "default": exact for n <= 12, else LKH / fast_tsp
    res.path, res.cost, res.solver, res.seconds

Solvers (``SOLVERS``): ``exact`` (Held-Karp, n <= 13), ``nearest_neighbour``,
``two_opt`` (2-opt + Or-opt local search in numpy from a nearest-neighbour path),
``lkh`` (LKH-2 through elkai), ``fast_tsp``, ``christofides`` and ``greedy`` (networkx),
python-tsp 0.5.0's ``python_tsp_dynamic_programming`` (n <= 13), ``python_tsp_local_search``,
``python_tsp_simulated_annealing``, ``python_tsp_lin_kernighan`` and
``python_tsp_record_to_record``, and ``default``. python-tsp's solvers run in a worker
process killed at their time budget; a call stopped there returns a fallback path with
``res.timed_out`` set (see :mod:`~reorder.tsp.pytsp`).

Modules: :mod:`~reorder.tsp.base` (registry, results, matrix helpers),
:mod:`~reorder.tsp.exact`, :mod:`~reorder.tsp.heuristics` (the package's own numpy
heuristics), :mod:`~reorder.tsp.external` (other packages' solvers),
:mod:`~reorder.tsp.pytsp` (python-tsp's, under a hard time limit) and
:mod:`~reorder.tsp.default`. Each solver registers itself in :data:`TSP_SOLVERS`, so a
new solver is one new module here.
"""

from __future__ import annotations

import time

import numpy as np

from .base import (
    EXACT_MAX_N,
    TSP_SOLVERS,
    PathResult,
    SolverUnavailableError,
    _check_start,
    _orient,
    check_distance_matrix,
    is_available,
    path_cost,
)
from .exact import _brute_force, _held_karp  # noqa: I001  (import order is SOLVERS order)
from .heuristics import local_search
from .external import fast_tsp_budget, lkh_params
from .pytsp import HARD_LIMIT_MARGIN, python_tsp_budget
from .default import DEFAULT_EXACT_N, DEFAULT_LKH_MAX_N

__all__ = [
    "SOLVERS", "TSP_SOLVERS", "PathResult", "SolverUnavailableError", "available_solvers", "canonical_solver",
    "check_distance_matrix", "local_search", "path_cost", "solve_path", "lkh_params", "fast_tsp_budget",
    "EXACT_MAX_N", "DEFAULT_EXACT_N", "DEFAULT_LKH_MAX_N", "python_tsp_budget", "HARD_LIMIT_MARGIN",
]


def _solver_names() -> tuple[str, ...]:
    """Registered solver names as results spell them (underscores), ``default`` first."""
    return tuple(sorted((n.replace("-", "_") for n in TSP_SOLVERS.names()), key=lambda n: n != "default"))


SOLVERS: tuple[str, ...] = _solver_names()
"""Every solver name :func:`solve_path` understands (some need optional packages: see :func:`available_solvers`)."""


def canonical_solver(name: str) -> str:
    """Resolve aliases (``nn``, ``2opt``, ``elkai``, ``fast-tsp``...) and check the name; raises ValueError."""
    names = _solver_names()
    if name in TSP_SOLVERS:
        fn = TSP_SOLVERS.get(name)
        return next(s for s in names if TSP_SOLVERS.get(s) is fn)
    raise ValueError(f"unknown TSP solver {name!r}; valid solvers: {', '.join(names)}")


def available_solvers() -> list[str]:
    """Solver names whose packages are importable here (the rest raise SolverUnavailableError)."""
    return [name for name in _solver_names() if is_available(TSP_SOLVERS.get(name))]


def solve_path(D, solver: str = "default", start: int | None = None, seed: int = 0,
               time_budget: float | None = None) -> PathResult:
    """Shortest open Hamiltonian path through all nodes of the symmetric distance matrix ``D``.

    ``start=k`` makes the path begin at node k. ``seed`` makes randomised solvers
    reproducible. ``time_budget`` (seconds) bounds the search of the solvers that
    take one (lkh, fast_tsp, two_opt, python-tsp); ``None`` uses each solver's own
    default. For python-tsp's solvers it is a hard limit (:func:`python_tsp_budget` when
    None): the call returns within ``time_budget + HARD_LIMIT_MARGIN`` seconds, with
    ``timed_out=True`` and a fallback path when the solver had not finished. Without
    ``start``, the path is oriented to begin at its smaller end node,
    so equal paths compare equal. Raises ValueError for a bad matrix, solver or start,
    and :class:`SolverUnavailableError` when the solver's package is missing.
    """
    name = canonical_solver(solver)
    D = check_distance_matrix(D)
    n = D.shape[0]
    start = _check_start(start, n)
    if time_budget is not None and not (float(time_budget) > 0):
        raise ValueError(f"time_budget must be a positive number of seconds or None, got {time_budget!r}")
    t0 = time.perf_counter()
    used = name
    timed_out = False
    if name == "exact" and n > EXACT_MAX_N:
        _held_karp(D, start)  # raises the size error
    if n <= 3:
        path = _brute_force(D, start)  # every solver agrees; LKH and fast_tsp need a few nodes
    else:
        path = TSP_SOLVERS.get(name)(D, start, seed, time_budget)
        if isinstance(path, tuple):  # (path, label[, timed_out]): the solver names what it did (``default(lkh)``)
            path, used, *flag = path
            timed_out = bool(flag[0]) if flag else False
    path = _orient(np.asarray(path, dtype=np.int64), start)
    if start is not None and path[0] != start:  # pragma: no cover - _orient guarantees it
        raise RuntimeError(f"solver {name} did not honour start={start}")
    if path.size != n or np.unique(path).size != n:  # pragma: no cover - guards solver wrappers
        raise RuntimeError(f"solver {name} returned an invalid path")
    seconds = time.perf_counter() - t0
    return PathResult(path=path, cost=path_cost(D, path), solver=used, seconds=seconds, timed_out=timed_out)
