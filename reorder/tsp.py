"""Open-path travelling-salesman solvers behind one interface.

A channel order is a Hamiltonian *path* (the first and last channels are not
neighbours in the video), so every solver here minimises the open path cost
``sum(D[p[k], p[k+1]])``. Closed-tour solvers (LKH, fast_tsp, python-tsp) get an
extra "dummy" node whose distance to every channel is the same constant: a tour
through it is a path plus that constant twice, so an optimal tour is an optimal
path. ``start=k`` is enforced the same way, with the dummy near k only (see
:func:`_with_dummy`). The networkx approximations cannot take the dummy (their
spanning tree would become a star around it), so their closed tour is cut at
its longest edge instead.

    res = solve_path(D)                      # "default": exact for n <= 12, else LKH / fast_tsp
    res.path, res.cost, res.solver, res.seconds

Solvers (``SOLVERS``): ``exact`` (Held-Karp, n <= 13), ``nearest_neighbour``,
``two_opt`` (2-opt + Or-opt local search in numpy from a nearest-neighbour path),
``lkh`` (LKH-2 through elkai), ``fast_tsp``, ``python_tsp_local_search``,
``python_tsp_simulated_annealing``, ``python_tsp_lin_kernighan`` (python-tsp >= 0.4
only), ``christofides`` and ``greedy`` (networkx), and ``default``.
"""

from __future__ import annotations

import itertools
import math
import random
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

EXACT_MAX_N = 13
"""Largest problem the Held-Karp solver accepts (2**13 * 13 * 13 steps, well under a second)."""

DEFAULT_EXACT_N = 12
"""``default`` solves problems up to this size exactly."""

DEFAULT_LKH_MAX_N = 1024
"""``default`` uses LKH up to this size and fast_tsp with a time budget above it (see :func:`_default`)."""

_LKH_MAX_INT = 1_000_000  # LKH multiplies costs by PRECISION=100 internally: keep them far below 2**31 / 100
_FAST_TSP_MAX_INT = 65_535  # fast_tsp stores distances as uint16


class SolverUnavailableError(ImportError):
    """The solver's package is not installed (or too old)."""


@dataclass(frozen=True)
class PathResult:
    """An open path over all nodes, its cost under the original float distances, the solver and its wall time."""

    path: np.ndarray
    cost: float
    solver: str
    seconds: float


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


# --------------------------------------------------------------------------------------------- exact


def _brute_force(D: np.ndarray, start: int | None) -> np.ndarray:
    n = D.shape[0]
    best, best_cost = None, math.inf
    rest = [i for i in range(n) if i != start] if start is not None else list(range(n))
    for perm in itertools.permutations(rest):
        p = ((start,) + perm) if start is not None else perm
        c = path_cost(D, p)
        if c < best_cost - 1e-15:
            best, best_cost = p, c
    return np.asarray(best, dtype=np.int64)


def _held_karp(D: np.ndarray, start: int | None) -> np.ndarray:
    """Exact open path by dynamic programming over subsets, vectorised per subset size.

    ``dp[mask, j]``: cheapest path visiting exactly ``mask`` and ending at j.
    """
    n = D.shape[0]
    if n > EXACT_MAX_N:
        raise ValueError(
            f"the exact solver handles at most {EXACT_MAX_N} channels (memory and time grow as 2**n), got {n}; "
            "use solver='default' or 'lkh'"
        )
    if n <= 2:
        return _orient(np.arange(n), start)
    size = 1 << n
    dp = np.full((size, n), np.inf)
    parent = np.full((size, n), -1, dtype=np.int64)
    starts = [start] if start is not None else range(n)
    for s in starts:
        dp[1 << s, s] = 0.0
    popcount = np.array([bin(m).count("1") for m in range(size)])
    bits = (np.arange(size)[:, None] >> np.arange(n)[None, :]) & 1  # [mask, node]
    for k in range(1, n):
        masks = np.flatnonzero(popcount == k)
        cur = dp[masks]  # [M, n] (inf where j not in mask)
        # cand[m, j, t] = dp[m, j] + D[j, t]
        cand = cur[:, :, None] + D[None, :, :]
        best_j = np.argmin(cand, axis=1)  # [M, n(t)]
        best = np.take_along_axis(cand, best_j[:, None, :], axis=1)[:, 0, :]
        free = bits[masks] == 0
        mi, t = np.nonzero(free & np.isfinite(best))
        new_masks = masks[mi] | (1 << t)
        vals = best[mi, t]
        # each (new_mask, t) is reached from several masks; keep the minimum deterministically
        order = np.lexsort((vals, t, new_masks))
        nm, tt, vv, jj = new_masks[order], t[order], vals[order], best_j[mi, t][order]
        first = np.ones(nm.size, dtype=bool)
        first[1:] = (nm[1:] != nm[:-1]) | (tt[1:] != tt[:-1])
        nm, tt, vv, jj = nm[first], tt[first], vv[first], jj[first]
        upd = vv < dp[nm, tt]
        dp[nm[upd], tt[upd]] = vv[upd]
        parent[nm[upd], tt[upd]] = jj[upd]
    full = size - 1
    end = int(np.argmin(dp[full]))
    path = [end]
    mask = full
    while True:
        prev = int(parent[mask, path[-1]])
        if prev < 0:
            break
        mask ^= 1 << path[-1]
        path.append(prev)
    return _orient(np.asarray(path[::-1], dtype=np.int64), start)


# --------------------------------------------------------------------------------------------- own heuristics


def _nn_from(D: np.ndarray, first: int) -> np.ndarray:
    n = D.shape[0]
    visited = np.zeros(n, dtype=bool)
    path = np.empty(n, dtype=np.int64)
    cur = first
    for k in range(n):
        path[k] = cur
        visited[cur] = True
        if k == n - 1:
            break
        row = np.where(visited, np.inf, D[cur])
        cur = int(np.argmin(row))
    return path


def _nearest_neighbour(D: np.ndarray, start: int | None, seed: int, n_starts: int = 8) -> np.ndarray:
    """Greedy nearest-neighbour path; without ``start`` the best of a few starting nodes.

    The starts are the node farthest from all others on average (a natural path end)
    plus ``n_starts - 1`` random ones drawn with ``seed``.
    """
    n = D.shape[0]
    if start is not None:
        return _nn_from(D, start)
    rng = np.random.default_rng(seed)
    cands = [int(np.argmax(D.sum(axis=1)))]
    others = np.setdiff1d(np.arange(n), cands)
    cands += [int(v) for v in rng.choice(others, size=min(n_starts - 1, others.size), replace=False)]
    paths = [_nn_from(D, s) for s in cands]
    costs = [path_cost(D, p) for p in paths]
    return paths[int(np.argmin(costs))]


def _two_opt_pass(D: np.ndarray, p: np.ndarray, fixed_start: bool, chunk: int = 256) -> tuple[np.ndarray, bool]:
    """One batch of improving 2-opt moves (segment reversals), applied where they do not overlap.

    For every i the best j is found with vectorised gathers (in row chunks to bound
    memory); improving moves are then taken best first while their position ranges
    ``[i-1, j+1]`` are disjoint, so their gains add up exactly.
    """
    n = p.size
    e = D[p[:-1], p[1:]]  # e[k] = edge k -> k+1
    best_j = np.full(n, -1, dtype=np.int64)
    best_d = np.zeros(n)
    i0 = 1 if fixed_start else 0
    jj = np.arange(n)
    pn = np.append(p[1:], p[-1])  # p[j+1] (dummy for j = n-1, masked below)
    en = np.append(e, 0.0)  # e[j] (0 for j = n-1: no right edge)
    for lo in range(i0, n - 1, chunk):
        ii = np.arange(lo, min(lo + chunk, n - 1))
        a = p[np.maximum(ii - 1, 0)]
        b = p[ii]
        left = np.where((ii > 0)[:, None], D[a][:, p] - e[np.maximum(ii - 1, 0)][:, None], 0.0)
        right = np.where(jj[None, :] < n - 1, D[b][:, pn] - en[None, :], 0.0)
        delta = left + right
        delta[jj[None, :] <= ii[:, None]] = np.inf
        j = np.argmin(delta, axis=1)
        best_j[ii] = j
        best_d[ii] = delta[np.arange(ii.size), j]
    improving = np.flatnonzero((best_j >= 0) & (best_d < -1e-12 * max(1.0, float(e.sum()))))
    if improving.size == 0:
        return p, False
    taken = np.zeros(n + 2, dtype=bool)
    p = p.copy()
    for i in improving[np.argsort(best_d[improving], kind="stable")]:
        j = int(best_j[i])
        lo_, hi_ = max(i - 1, 0), min(j + 1, n - 1)
        if taken[lo_:hi_ + 1].any():
            continue
        taken[lo_:hi_ + 1] = True
        p[i:j + 1] = p[i:j + 1][::-1]
    return p, True


def _or_opt_pass(D: np.ndarray, p: np.ndarray, fixed_start: bool, deadline: float) -> tuple[np.ndarray, bool]:
    """One sweep of Or-opt: move segments of 1-3 nodes (possibly reversed) to their best other place."""
    n = p.size
    improved = False
    i = 1 if fixed_start else 0
    tol = 1e-12 * max(1.0, path_cost(D, p))
    while i < n:
        if time.perf_counter() > deadline:
            break
        moved = False
        for L in (1, 2, 3):
            if i + L > n or L >= n - 1:
                break
            s0, s1 = p[i], p[i + L - 1]
            # gain of taking the segment out
            if i == 0:
                gain = D[s1, p[L]]
            elif i + L == n:
                gain = D[p[i - 1], s0]
            else:
                gain = D[p[i - 1], s0] + D[s1, p[i + L]] - D[p[i - 1], p[i + L]]
            if gain <= tol:
                continue
            u, v = p[:-1], p[1:]  # edge k = (p[k], p[k+1])
            fwd = D[u, s0] + D[s1, v]
            rev = D[u, s1] + D[s0, v]
            ins = np.minimum(fwd, rev) - D[u, v]
            ks = np.arange(n - 1)
            ins[(ks >= i - 1) & (ks <= i + L - 1)] = np.inf  # edges touching the segment
            k = int(np.argmin(ins))
            best = ins[k]
            where = ("edge", k)
            # ends of the path: before p[0] (not when start is fixed) and after p[-1]
            if i > 0 and not fixed_start:
                head = min(D[s1, p[0]], D[s0, p[0]])
                if head < best:
                    best, where = head, ("head", 0)
            if i + L < n:
                tail = min(D[p[-1], s0], D[p[-1], s1])
                if tail < best:
                    best, where = tail, ("tail", 0)
            if best - gain < -tol:
                seg = p[i:i + L]
                rest = np.concatenate([p[:i], p[i + L:]])
                if where[0] == "edge":
                    k = where[1]
                    u_, v_ = p[k], p[k + 1]
                    seg = seg if D[u_, s0] + D[s1, v_] <= D[u_, s1] + D[s0, v_] else seg[::-1]
                    pos = int(np.flatnonzero(rest == u_)[0]) + 1
                    p = np.concatenate([rest[:pos], seg, rest[pos:]])
                elif where[0] == "head":
                    seg = seg if D[s1, p[0]] <= D[s0, p[0]] else seg[::-1]
                    p = np.concatenate([seg, rest])
                else:
                    seg = seg if D[p[-1], s0] <= D[p[-1], s1] else seg[::-1]
                    p = np.concatenate([rest, seg])
                improved = moved = True
                break
        if not moved:
            i += 1
    return p, improved


def local_search(D: np.ndarray, path, fixed_start: bool = False, time_budget: float | None = None,
                 max_rounds: int = 1000) -> np.ndarray:
    """Improve an open path with 2-opt and Or-opt moves until neither finds a gain (or time runs out)."""
    deadline = time.perf_counter() + (time_budget if time_budget is not None else math.inf)
    p = np.asarray(path, dtype=np.int64).copy()
    if p.size < 4:
        return p
    for _ in range(max_rounds):
        while time.perf_counter() < deadline:  # 2-opt to convergence (cheap batches)
            p, moved = _two_opt_pass(D, p, fixed_start)
            if not moved:
                break
        if time.perf_counter() >= deadline:
            break
        p, moved = _or_opt_pass(D, p, fixed_start, deadline)
        if not moved:  # 2-opt had converged and Or-opt found nothing: a local optimum for both
            break
    return p


def _two_opt(D, start, seed, time_budget):
    p = _nearest_neighbour(D, start, seed)
    return local_search(D, p, fixed_start=start is not None, time_budget=time_budget)


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


# --------------------------------------------------------------------------------------------- python-tsp


def _python_tsp_function(name: str):
    try:
        from python_tsp import heuristics
    except ImportError:
        raise SolverUnavailableError(
            f"solver 'python_tsp_{name}' needs python-tsp; install it with `pip install python-tsp`"
        ) from None
    fn = getattr(heuristics, f"solve_tsp_{name}", None)
    if fn is None:
        raise SolverUnavailableError(
            f"solver 'python_tsp_{name}' needs a newer python-tsp (this one has no solve_tsp_{name}); "
            "`pip install -U python-tsp` (>= 0.4 needs networkx < 3 via tsplib95)"
        )
    return fn


def _python_tsp(name: str):
    def solve(D, start, seed, time_budget):
        fn = _python_tsp_function(name)
        n = D.shape[0]
        top = float(D.max()) or 1.0
        ext = np.zeros((n + 1, n + 1))  # the dummy is node 0: python-tsp keeps the first node of x0 first
        ext[1:, 1:] = D
        row = np.zeros(n) if start is None else np.full(n, 2 * top + 1.0)
        if start is not None:
            row[start] = 0.0
        ext[0, 1:] = ext[1:, 0] = row
        x0 = [0] + [int(v) + 1 for v in _nearest_neighbour(D, start, seed)]
        py_state, np_state = random.getstate(), np.random.get_state()
        random.seed(seed)
        np.random.seed(seed)
        try:
            kwargs = {"x0": x0}
            if time_budget is not None:
                kwargs["max_processing_time"] = float(time_budget)
            tour, _ = fn(ext, **kwargs)
        finally:
            random.setstate(py_state)
            np.random.set_state(np_state)
        return _tour_to_path([int(t) - 1 if t else n for t in tour], n)

    return solve


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


# --------------------------------------------------------------------------------------------- default


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


_SOLVERS: dict[str, Callable] = {
    "exact": lambda D, start, seed, tb: _held_karp(D, start),
    "nearest_neighbour": lambda D, start, seed, tb: _nearest_neighbour(D, start, seed),
    "two_opt": _two_opt,
    "lkh": lambda D, start, seed, tb: _lkh(D, start, seed, tb),
    "fast_tsp": _fast_tsp,
    "python_tsp_local_search": _python_tsp("local_search"),
    "python_tsp_simulated_annealing": _python_tsp("simulated_annealing"),
    "python_tsp_lin_kernighan": _python_tsp("lin_kernighan"),
    "christofides": _networkx("christofides"),
    "greedy": _networkx("greedy"),
}

SOLVERS: tuple[str, ...] = ("default",) + tuple(_SOLVERS)
"""Every solver name :func:`solve_path` understands (some need optional packages: see :func:`available_solvers`)."""

_ALIASES = {"nn": "nearest_neighbour", "nearest_neighbor": "nearest_neighbour", "2opt": "two_opt",
            "2-opt": "two_opt", "elkai": "lkh", "fasttsp": "fast_tsp", "fast-tsp": "fast_tsp",
            "held_karp": "exact"}


def canonical_solver(name: str) -> str:
    """Resolve aliases (``nn``, ``2opt``, ``elkai``, ``fast-tsp``...) and check the name; raises ValueError."""
    key = str(name).strip().lower()
    key = _ALIASES.get(key, key)
    if key not in SOLVERS:
        raise ValueError(f"unknown TSP solver {name!r}; valid solvers: {', '.join(SOLVERS)}")
    return key


def available_solvers() -> list[str]:
    """Solver names whose packages are importable here (the rest raise SolverUnavailableError)."""
    out = ["default", "exact", "nearest_neighbour", "two_opt"]
    for name, mod in (("lkh", "elkai"), ("fast_tsp", "fast_tsp")):
        try:
            __import__(mod)
            out.append(name)
        except ImportError:
            pass
    for name in ("local_search", "simulated_annealing", "lin_kernighan"):
        try:
            _python_tsp_function(name)
            out.append(f"python_tsp_{name}")
        except SolverUnavailableError:
            pass
    try:
        import networkx  # noqa: F401

        out += ["christofides", "greedy"]
    except ImportError:
        pass
    return out


def solve_path(D, solver: str = "default", start: int | None = None, seed: int = 0,
               time_budget: float | None = None) -> PathResult:
    """Shortest open Hamiltonian path through all nodes of the symmetric distance matrix ``D``.

    ``start=k`` makes the path begin at node k. ``seed`` makes randomised solvers
    reproducible. ``time_budget`` (seconds) bounds the search of the solvers that
    take one (lkh, fast_tsp, two_opt, python-tsp); ``None`` uses each solver's own
    default. Without ``start``, the path is oriented to begin at its smaller end node,
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
    if name == "exact" and n > EXACT_MAX_N:
        _held_karp(D, start)  # raises the size error
    if n <= 3:
        path = _brute_force(D, start)  # every solver agrees; LKH and fast_tsp need a few nodes
    elif name == "default":
        path, inner = _default(D, start, seed, time_budget)
        used = f"default({inner})"
    else:
        path = _SOLVERS[name](D, start, seed, time_budget)
    path = _orient(np.asarray(path, dtype=np.int64), start)
    if start is not None and path[0] != start:  # pragma: no cover - _orient guarantees it
        raise RuntimeError(f"solver {name} did not honour start={start}")
    if path.size != n or np.unique(path).size != n:  # pragma: no cover - guards solver wrappers
        raise RuntimeError(f"solver {name} returned an invalid path")
    seconds = time.perf_counter() - t0
    return PathResult(path=path, cost=path_cost(D, path), solver=used, seconds=seconds)
