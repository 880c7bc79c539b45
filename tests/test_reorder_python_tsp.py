"""python-tsp's solvers in reorder.tsp: open paths, the exact optimum as a floor, the hard time limit.

Needs python-tsp 0.5.0 (installed by ``python -m eval.install``); the unavailable-solver test runs without it.
"""

import importlib.util
import sys

import numpy as np
import pytest

from reorder.tsp import (
    EXACT_MAX_N,
    SolverUnavailableError,
    available_solvers,
    path_cost,
    python_tsp_budget,
    solve_path,
)
from reorder.tsp.pytsp import PYTHON_TSP_SOLVERS, run_python_tsp

NAMES = [f"python_tsp_{name}" for name in PYTHON_TSP_SOLVERS]

needs_python_tsp = pytest.mark.skipif(importlib.util.find_spec("python_tsp") is None,
                                      reason="python-tsp is not installed (run: python -m eval.install)")


def random_matrix(n, seed, kind="uniform"):
    rng = np.random.default_rng(seed)
    if kind == "points":
        P = rng.random((n, 2))
        return np.sqrt(((P[:, None] - P[None]) ** 2).sum(-1))
    A = rng.random((n, n))
    D = A + A.T
    np.fill_diagonal(D, 0)
    return D


def test_without_python_tsp_the_solvers_report_unavailable(monkeypatch):
    for mod in ("python_tsp", "python_tsp.exact", "python_tsp.heuristics"):
        monkeypatch.setitem(sys.modules, mod, None)  # makes the import raise ImportError
    assert not set(NAMES) & set(available_solvers())
    with pytest.raises(SolverUnavailableError, match="python -m eval.install"):
        solve_path(random_matrix(8, 0), "python_tsp_lin_kernighan")


@needs_python_tsp
def test_all_python_tsp_solvers_are_registered_and_available():
    assert set(NAMES) <= set(available_solvers())
    assert solve_path(random_matrix(6, 0), "python_tsp_exact").solver == "python_tsp_dynamic_programming"


@needs_python_tsp
@pytest.mark.parametrize("solver", NAMES)
@pytest.mark.parametrize("n, seed, kind, start", [(7, 1, "uniform", None), (10, 2, "points", None),
                                                  (11, 3, "uniform", 5)])
def test_valid_open_paths_never_below_the_optimum(solver, n, seed, kind, start):
    D = random_matrix(n, seed, kind)
    optimum = solve_path(D, "exact", start=start).cost
    res = solve_path(D, solver, start=start, seed=seed, time_budget=60.0)
    assert sorted(res.path.tolist()) == list(range(n))
    assert res.cost == pytest.approx(path_cost(D, res.path))
    assert res.cost >= optimum - 1e-9
    if start is not None:
        assert res.path[0] == start
    assert not res.timed_out and res.solver == solver
    if solver == "python_tsp_dynamic_programming":
        assert res.cost == pytest.approx(optimum, rel=1e-12)


@needs_python_tsp
def test_lin_kernighan_that_never_returns_is_stopped_at_its_budget():
    # With float distances python-tsp's Lin-Kernighan loops forever on this 20-node matrix
    # (rounding drift in its incremental tour length; the solvers normally get integers).
    D = random_matrix(20, 1)
    path, label, timed_out = run_python_tsp("lin_kernighan", D, None, 0, 1.0, integer=False)
    assert timed_out and "timed out" in label
    assert sorted(path.tolist()) == list(range(20))
    nn = solve_path(D, "nearest_neighbour", seed=0)  # the start of its search, and the fallback
    assert path_cost(D, path) <= nn.cost + 1e-12


@needs_python_tsp
def test_slow_solver_with_a_tiny_budget_returns_a_marked_fallback():
    D = random_matrix(400, 5)
    res = solve_path(D, "python_tsp_lin_kernighan", seed=0, time_budget=0.3)
    assert res.timed_out
    assert res.solver.startswith("python_tsp_lin_kernighan(timed out: ")
    assert sorted(res.path.tolist()) == list(range(400))
    assert res.cost <= solve_path(D, "nearest_neighbour", seed=0).cost + 1e-9
    res = solve_path(D, "python_tsp_record_to_record", start=7, seed=0, time_budget=0.3)
    assert res.timed_out and res.path[0] == 7 and sorted(res.path.tolist()) == list(range(400))


def test_exact_size_limit_and_default_budget():
    with pytest.raises(ValueError, match=f"at most {EXACT_MAX_N}"):
        solve_path(random_matrix(EXACT_MAX_N + 1, 0), "python_tsp_dynamic_programming")
    assert python_tsp_budget(256) == pytest.approx(17.8)
    assert python_tsp_budget(100_000) == 60.0
