"""The ``default`` solver: exact for small problems, LKH up to 1024 nodes, fast_tsp above."""

from __future__ import annotations

from .base import TSP_SOLVERS, _orient
from .exact import _held_karp
from .external import _fast_tsp, _lkh
from .heuristics import _two_opt_pass

DEFAULT_EXACT_N = 12
"""``default`` solves problems up to this size exactly."""

DEFAULT_LKH_MAX_N = 1024
"""``default`` uses LKH up to this size and fast_tsp with a time budget above it (see :func:`_default`)."""


def _default(D, start, seed, time_budget):
    """Exact up to 12 nodes; LKH (one run, short ascent, 50 trials) up to 1024; fast_tsp with a time budget above.

    Measured on this 2-core machine (``python -m studies.bench_tsp``): LKH with these
    settings is deterministic given ``seed`` and was within 0.03% of the best known path on
    every test matrix at n = 144 and 256 (0.1-0.4 s) and 1024 (1.5-1.8 s), but it takes
    10-40 s at n = 2048, where fast_tsp (alpha candidates, 7 s budget) stays within about 0.2%. A final 2-opt pass on the float distances removes what the
    integer rounding of both solvers may leave. Above 1024 channels the result depends on
    fast_tsp's timed search, so it is reproducible in quality but not bit for bit: use
    ``solver="lkh"`` where exact reproducibility matters more than time.
    """
    n = D.shape[0]
    if n <= DEFAULT_EXACT_N:
        return _held_karp(D, start), "exact"
    if n <= DEFAULT_LKH_MAX_N:
        p = _lkh(D, start, seed, time_budget, runs=1, max_trials=min(n, 50), initial_period=max(10, min(50, n // 2)))
        name = "lkh"
    else:
        p = _fast_tsp(D, start, seed, time_budget)
        name = "fast_tsp"
    p = _orient(p, start)
    for _ in range(3):  # polish: batches of 2-opt moves on the exact float distances
        p, moved = _two_opt_pass(D, p, fixed_start=start is not None)
        if not moved:
            break
    return p, name


@TSP_SOLVERS.register("default")
def default(D, start, seed, time_budget):
    """:func:`_default`, labelled ``default(<solver it used>)`` in :attr:`PathResult.solver`."""
    path, inner = _default(D, start, seed, time_budget)
    return path, f"default({inner})"
