"""The package's own heuristics in numpy: nearest neighbour, and 2-opt + Or-opt local search."""

from __future__ import annotations

import math
import time

import numpy as np

from .base import TSP_SOLVERS, path_cost


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


@TSP_SOLVERS.register("nearest_neighbour", "nn", "nearest_neighbor")
def nearest_neighbour(D, start, seed, time_budget):
    """Greedy nearest-neighbour path (best of a few starts without ``start``)."""
    return _nearest_neighbour(D, start, seed)


@TSP_SOLVERS.register("two_opt", "2opt", "2-opt")
def two_opt(D, start, seed, time_budget):
    """2-opt + Or-opt local search from a nearest-neighbour path."""
    p = _nearest_neighbour(D, start, seed)
    return local_search(D, p, fixed_start=start is not None, time_budget=time_budget)
