"""Exact open paths: brute force for tiny problems and Held-Karp dynamic programming (n <= 13)."""

from __future__ import annotations

import itertools
import math

import numpy as np

from .base import EXACT_MAX_N, TSP_SOLVERS, _orient, path_cost


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


@TSP_SOLVERS.register("exact", "held_karp")
def exact(D, start, seed, time_budget):
    """Held-Karp: the optimal open path (at most :data:`EXACT_MAX_N` nodes)."""
    return _held_karp(D, start)
