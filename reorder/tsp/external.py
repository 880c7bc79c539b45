"""Solvers from other packages: LKH (elkai), fast_tsp and networkx (python-tsp's are in :mod:`~reorder.tsp.pytsp`).

Closed-tour solvers get the dummy node of :func:`reorder.tsp.base._with_dummy`; the
networkx approximations cannot take it, so their tour is cut at its longest edge.
"""

from __future__ import annotations

import numpy as np

from .base import (
    _FAST_TSP_MAX_INT,
    _LKH_MAX_INT,
    TSP_SOLVERS,
    SolverUnavailableError,
    _cut_tour,
    _scale_to_int,
    _tour_to_path,
    _with_dummy,
    needs,
)

# --------------------------------------------------------------------------------------------- LKH (elkai)


def lkh_params(seed: int, time_budget: float | None = None, runs: int = 1,
               max_trials: int | None = None, initial_period: int | None = None) -> str:
    """The LKH parameter block used by ``lkh`` (RUNS, SEED, trials, ascent length, time limit)."""
    lines = [f"RUNS = {int(runs)}", f"SEED = {int(seed) + 1}"]  # LKH's SEED = 0 would mean 'from the clock'
    if max_trials is not None:
        lines.append(f"MAX_TRIALS = {int(max_trials)}")
    if initial_period is not None:
        lines.append(f"INITIAL_PERIOD = {int(initial_period)}")
    if time_budget is not None:
        lines.append(f"TIME_LIMIT = {float(time_budget):.3f}")
    lines.append("PROBLEM_FILE = :stdin:")
    return "\n".join(lines) + "\n"


def _lkh(D, start, seed, time_budget, runs: int = 1, max_trials: int | None = None,
         initial_period: int | None = None):
    try:
        from elkai import _elkai
    except ImportError:
        raise SolverUnavailableError("solver 'lkh' needs elkai; install it with `pip install elkai`") from None
    n = D.shape[0]
    # dummy at half the largest distance, not 0: a zero-cost star makes LKH's ascent several times slower
    Di = _with_dummy(_scale_to_int(D, _LKH_MAX_INT), start, base=_LKH_MAX_INT // 2)
    N = n + 1
    header = (f"TYPE : TSP\nDIMENSION : {N}\nEDGE_WEIGHT_TYPE : EXPLICIT\n"
              "EDGE_WEIGHT_FORMAT : FULL_MATRIX\nEDGE_WEIGHT_SECTION\n")
    body = "\n".join(" ".join(map(str, row)) for row in Di.tolist())
    params = lkh_params(seed, time_budget, runs, max_trials, initial_period)
    tour = [t - 1 for t in _elkai.solve_problem(params, header + body + "\nEOF\n")]  # LKH is 1-based
    return _tour_to_path(tour, n)


# --------------------------------------------------------------------------------------------- fast_tsp


def fast_tsp_budget(n: int) -> float:
    """Default fast_tsp time budget in seconds: 0.3 + n / 300 (1.2 s at 256, 7.1 s at 2048), at most 8 s.

    Measured on real 2048-channel 1 - r matrices: 4.3 s left up to 0.48% on the table,
    7 s stayed within about 0.2% of the best path LKH found in 650 s.
    """
    return float(min(8.0, 0.3 + n / 300.0))


def _fast_tsp(D, start, seed, time_budget, candidates: str = "alpha"):
    """fast_tsp's local search on an integer copy of D (uint16: scaled to 0..65535, see :func:`_scale_to_int`).

    ``candidates="alpha"`` (LKH-style alpha-nearness neighbour lists) was clearly better
    than the default "auto" on real feature matrices at n = 2048 (0.12-0.14% vs 0.28-0.48%).
    """
    try:
        import fast_tsp
    except ImportError:
        raise SolverUnavailableError("solver 'fast_tsp' needs fast-tsp; install it with `pip install fast-tsp`") from None
    n = D.shape[0]
    top = _FAST_TSP_MAX_INT if start is None else (_FAST_TSP_MAX_INT - 1) // 2
    Di = _with_dummy(_scale_to_int(D, top), start)
    budget = fast_tsp_budget(n) if time_budget is None else float(time_budget)
    tour = fast_tsp.find_tour(Di, budget, 1, candidates)
    return _tour_to_path(tour, n)


# --------------------------------------------------------------------------------------------- networkx


def _networkx(kind: str):
    def solve(D, start, seed, time_budget):
        try:
            import networkx as nx
            from networkx.algorithms import approximation as approx
        except ImportError:
            raise SolverUnavailableError(f"solver '{kind}' needs networkx; `pip install networkx`") from None
        n = D.shape[0]
        G = nx.Graph()
        G.add_nodes_from(range(n))
        iu, ju = np.triu_indices(n, 1)
        G.add_weighted_edges_from(zip(iu.tolist(), ju.tolist(), D[iu, ju].tolist()))
        if kind == "christofides":
            tour = approx.christofides(G, weight="weight")
        else:
            first = start if start is not None else int(np.argmax(D.sum(axis=1)))
            tour = approx.greedy_tsp(G, weight="weight", source=first)
        return _cut_tour(tour, D, start)

    return solve


# --------------------------------------------------------------------------------------------- registrations


@TSP_SOLVERS.register("lkh", "elkai")
@needs("elkai")
def lkh(D, start, seed, time_budget):
    """LKH-2 through elkai: one run, LKH's default trials and ascent."""
    return _lkh(D, start, seed, time_budget)


@TSP_SOLVERS.register("fast_tsp", "fasttsp", "fast-tsp")
@needs("fast_tsp")
def fast_tsp(D, start, seed, time_budget):
    """fast_tsp's local search (alpha candidates, :func:`fast_tsp_budget` seconds by default)."""
    return _fast_tsp(D, start, seed, time_budget)


for _kind in ("christofides", "greedy"):
    TSP_SOLVERS.register(_kind)(needs("networkx")(_networkx(_kind)))
