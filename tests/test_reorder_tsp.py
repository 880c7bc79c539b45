"""Open-path TSP solvers: exactness on small problems, start option, determinism, errors."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reorder.tsp import (
    EXACT_MAX_N,
    available_solvers,
    local_search,
    path_cost,
    solve_path,
)
from reorder.tsp.heuristics import _two_opt_pass


def random_matrix(n, seed, kind="uniform"):
    rng = np.random.default_rng(seed)
    if kind == "points":
        P = rng.random((n, 2))
        return np.sqrt(((P[:, None] - P[None]) ** 2).sum(-1))
    A = rng.random((n, n))
    D = A + A.T
    np.fill_diagonal(D, 0)
    return D


def brute_force(D, start=None):
    n = len(D)
    nodes = [i for i in range(n) if i != start]
    best = np.inf
    for perm in itertools.permutations(nodes):
        p = (start,) + perm if start is not None else perm
        best = min(best, sum(D[p[k], p[k + 1]] for k in range(n - 1)))
    return best


HEURISTICS = [s for s in available_solvers() if s not in ("default", "exact")]


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 7), seed=st.integers(0, 10_000), use_start=st.booleans(), kind=st.sampled_from(["uniform", "points"]))
def test_exact_matches_brute_force(n, seed, use_start, kind):
    D = random_matrix(n, seed, kind)
    start = seed % n if use_start else None
    res = solve_path(D, "exact", start=start)
    assert sorted(res.path.tolist()) == list(range(n))
    assert res.cost == pytest.approx(brute_force(D, start), abs=1e-12)
    assert res.cost == pytest.approx(path_cost(D, res.path))
    if start is not None:
        assert res.path[0] == start


@pytest.mark.parametrize("solver", HEURISTICS)
@pytest.mark.parametrize("seed", [0, 1])
def test_heuristics_never_beat_the_optimum_and_respect_start(solver, seed):
    n = 9
    D = random_matrix(n, 100 + seed, "points" if seed else "uniform")
    optimum = solve_path(D, "exact").cost
    res = solve_path(D, solver, seed=seed, time_budget=2.0)
    assert sorted(res.path.tolist()) == list(range(n))
    assert res.cost >= optimum - 1e-9
    assert res.cost == pytest.approx(path_cost(D, res.path))
    start = 4
    res_s = solve_path(D, solver, start=start, seed=seed, time_budget=2.0)
    assert res_s.path[0] == start
    assert res_s.cost >= solve_path(D, "exact", start=start).cost - 1e-9


@pytest.mark.parametrize("n", [8, 12, 13])
@pytest.mark.parametrize("kind", ["uniform", "points"])
def test_default_finds_the_optimum_on_small_problems(n, kind):
    D = random_matrix(n, n, kind)
    exact = solve_path(D, "exact")
    res = solve_path(D)  # n = 13 goes through LKH (+ polish), smaller through Held-Karp
    assert res.cost == pytest.approx(exact.cost, rel=1e-9)
    assert res.solver.startswith("default(")
    for start in (0, n - 1, n // 2):
        assert solve_path(D, start=start).cost == pytest.approx(solve_path(D, "exact", start=start).cost, rel=1e-9)


@pytest.mark.parametrize("solver", ["lkh", "fast_tsp"])
def test_integer_solvers_find_the_optimum_with_and_without_start(solver):
    if solver not in available_solvers():
        pytest.skip(f"{solver} not installed")
    D = random_matrix(11, 7, "points")
    assert solve_path(D, solver).cost == pytest.approx(solve_path(D, "exact").cost, rel=1e-6)
    res = solve_path(D, solver, start=3)
    assert res.path[0] == 3
    assert res.cost == pytest.approx(solve_path(D, "exact", start=3).cost, rel=1e-6)


@pytest.mark.parametrize("solver", ["default", "lkh", "two_opt", "nearest_neighbour"])
def test_same_seed_same_path(solver):
    D = random_matrix(60, 3, "points")
    a = solve_path(D, solver, seed=5)
    b = solve_path(D, solver, seed=5)
    assert np.array_equal(a.path, b.path)


def test_start_is_respected_at_larger_n():
    D = random_matrix(80, 11, "points")
    for solver in ("default", "two_opt", "nearest_neighbour", "lkh"):
        for start in (0, 41, 79):
            res = solve_path(D, solver, start=start)
            assert res.path[0] == start, solver
            assert sorted(res.path.tolist()) == list(range(80))


def test_local_search_reaches_a_two_opt_optimum():
    D = random_matrix(40, 2, "points")
    start_path = np.random.default_rng(0).permutation(40)
    p = local_search(D, start_path)
    assert path_cost(D, p) < path_cost(D, start_path)
    _, moved = _two_opt_pass(D, p, fixed_start=False)
    assert not moved
    # brute-force check: no single segment reversal improves the path
    base = path_cost(D, p)
    for i, j in itertools.combinations(range(40), 2):
        q = p.copy()
        q[i:j + 1] = q[i:j + 1][::-1]
        assert path_cost(D, q) >= base - 1e-9


def test_path_cost_is_open():
    D = np.array([[0, 1, 5], [1, 0, 2], [5, 2, 0]], dtype=float)
    assert path_cost(D, [0, 1, 2]) == 3.0
    assert solve_path(D).cost == 3.0


def test_bad_inputs_give_clear_errors():
    D = random_matrix(5, 0)
    with pytest.raises(ValueError, match=f"at most {EXACT_MAX_N}"):
        solve_path(random_matrix(EXACT_MAX_N + 1, 0), "exact")
    with pytest.raises(ValueError, match="unknown TSP solver 'magic'.*lkh"):
        solve_path(D, "magic")
    with pytest.raises(ValueError, match="start=7 is out of range"):
        solve_path(D, start=7)
    with pytest.raises(ValueError, match="square"):
        solve_path(np.zeros((3, 4)))
    bad = D.copy()
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        solve_path(bad)
    asym = D.copy()
    asym[0, 1] += 1
    with pytest.raises(ValueError, match="not symmetric"):
        solve_path(asym)
    neg = D.copy()
    neg[0, 1] = neg[1, 0] = -1
    with pytest.raises(ValueError, match="negative"):
        solve_path(neg)


def test_tiny_problems():
    assert solve_path(np.zeros((1, 1))).path.tolist() == [0]
    for solver in HEURISTICS + ["default", "exact"]:
        res = solve_path(np.array([[0.0, 2.0], [2.0, 0.0]]), solver, start=1)
        assert res.path.tolist() == [1, 0] and res.cost == 2.0
