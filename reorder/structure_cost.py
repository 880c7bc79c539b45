"""The cost of a channel order under a codec's prediction structure, and a local search that lowers it.

A TSP order minimises the sum of distances between *consecutive* channels, but a random-access
codec predicts frame ``p`` from its reference pictures (:class:`codec.structure.PredictionStructure`),
and some frames are intra. :class:`StructureCost` scores an order the way the codec codes it::

    cost(order) = sum over intra positions p   of  w_p * intra_cost[order[p]]
                + sum over inter positions p   of  w_p * combine_{q in refs(p)} D[order[p], order[q]]

``D`` is a channel distance matrix (the one the TSP orderer solves on: :mod:`reorder.orderers.distance`),
``intra_cost`` a channel's own cost when coded without prediction (in the units of ``D``; e.g. 1 for
``1 - r``: the distance to a constant frame). ``combine`` is ``min`` (the encoder picks the better
reference block by block, so the best reference bounds the residual) or ``mean``. ``weight`` is
``none`` or ``qp``: ``2 ** (-qp_offset / 6)``, the quantiser step of the frame's layer relative to the
base QP, so frames coded coarser count less. :func:`structure_cost_for` builds one from a codec spec;
``reorder`` imports only :mod:`codec.structure`, no model.

:func:`local_search` lowers the cost from a start order (the TSP path) with swaps (delta-evaluated
on the positions they touch) and segment reversals (2-opt style, evaluated whole), first
improvement, passes in a seeded order until a pass finds nothing or the time budget ends.
"""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

__all__ = ["StructureCost", "local_search", "SearchResult", "COMBINES", "WEIGHTS", "INTRA_COSTS", "structure_cost_for",
           "intra_costs"]

COMBINES = ("min", "mean")
INTRA_COSTS = ("constant", "mean")  # how an intra frame's channel is scored (:func:`intra_costs`)
WEIGHTS = ("none", "qp")


def intra_costs(D: np.ndarray, metric: str, how: str = "constant") -> np.ndarray:
    """Per-channel intra cost in the units of ``D``.

    ``constant``: the distance to a constant frame, 1 for ``1 - similarity`` metrics (correlation,
    cosine, ssim) and, for ``mse`` where that distance is the channel's variance which ``D`` does
    not hold, the channel's mean distance to the others; ``mean``: a channel's mean distance to
    the others (a channel unlike every other one costs more wherever it is)."""
    D = np.asarray(D, dtype=np.float64)
    n = D.shape[0]
    mean = D.sum(axis=1) / max(1, n - 1)
    if how == "mean" or (how == "constant" and metric == "mse"):
        return mean
    if how == "constant":
        return np.ones(n)
    raise ValueError(f"intra cost {how!r}: use 'constant' or 'mean'")


class StructureCost:
    """``cost(order)`` of a channel order under a prediction structure (see the module docstring)."""

    def __init__(self, D: np.ndarray, structure, intra_cost: np.ndarray | float = 1.0, combine: str = "min",
                 weight: str = "none"):
        D = np.asarray(D, dtype=np.float64)
        n = structure.n_frames
        if D.shape != (n, n):
            raise ValueError(f"distance matrix {D.shape} does not match a structure of {n} frames")
        if combine not in COMBINES or weight not in WEIGHTS:
            raise ValueError(f"combine must be one of {COMBINES} and weight one of {WEIGHTS}")
        self.D, self.structure, self.combine, self.weight = D, structure, combine, weight
        self.intra_cost = np.broadcast_to(np.asarray(intra_cost, dtype=np.float64), (n,)).copy()
        self.R, self.M = structure.ref_matrix()
        self.is_intra = np.asarray(structure.intra, dtype=bool)
        qpo = np.array([0.0 if q is None else float(q) for q in structure.qp_offset])
        self.w = 2.0 ** (-qpo / 6.0) if weight == "qp" else np.ones(n)
        self.k = self.M.sum(axis=1).clip(min=1)
        # positions whose term changes when the channel at position q changes: q itself and frames referencing q
        users: list[list[int]] = [[q] for q in range(n)]
        for p, refs in enumerate(structure.refs):
            for q in refs:
                users[q].append(p)
        self.users = [np.array(sorted(set(u)), dtype=np.int64) for u in users]

    @property
    def n(self) -> int:
        return self.structure.n_frames

    def terms(self, order: np.ndarray, positions: np.ndarray | None = None) -> np.ndarray:
        """The weighted cost of each position (or of ``positions`` only) under ``order``."""
        order = np.asarray(order)
        pos = np.arange(self.n) if positions is None else np.asarray(positions)
        ch = order[pos]
        d = self.D[ch[:, None], order[self.R[pos]]]
        if self.combine == "min":
            inter = np.where(self.M[pos], d, np.inf).min(axis=1)
        else:
            inter = np.where(self.M[pos], d, 0.0).sum(axis=1) / self.k[pos]
        return self.w[pos] * np.where(self.is_intra[pos], self.intra_cost[ch], inter)

    def __call__(self, order) -> float:
        return float(self.terms(order).sum())

    def swap_delta(self, order: np.ndarray, i: int, j: int) -> float:
        """Cost change of swapping the channels at positions ``i`` and ``j`` (``order`` is not changed)."""
        pos = np.union1d(self.users[i], self.users[j])
        before = self.terms(order, pos).sum()
        order[i], order[j] = order[j], order[i]
        after = self.terms(order, pos).sum()
        order[i], order[j] = order[j], order[i]
        return float(after - before)


def structure_cost_for(D: np.ndarray, codec="vvenc", metric: str = "correlation", intra: str = "constant",
                       combine: str = "min", weight: str = "none", structure=None) -> StructureCost:
    """A :class:`StructureCost` for ``D`` under the structure of a codec spec (``"vvenc"``, ``"vtm:cfg=..."``),
    or of ``structure`` itself when given (e.g. :func:`codec.structure.dyadic`)."""
    n = np.asarray(D).shape[0]
    if structure is None:
        from codec import make_codec

        structure = make_codec(codec).prediction_structure(n)
    return StructureCost(D, structure, intra_costs(D, metric, intra), combine, weight)


@dataclass
class SearchResult:
    order: np.ndarray
    cost: float
    initial_cost: float
    passes: int
    moves: int
    evaluations: int
    converged: bool
    seconds: float


def local_search(cost: StructureCost, start, time_budget: float | None = 30.0, seed: int = 0,
                 max_passes: int | None = None, reversals: bool = True) -> SearchResult:
    """Lower ``cost`` from ``start`` by first-improvement swaps and segment reversals.

    Each pass tries every position pair once, in an order drawn from ``seed``: a swap (delta
    evaluated) and, with ``reversals``, the reversal of the segment between them (evaluated whole).
    A move is kept when it lowers the cost by more than 1e-12, so the cost never rises. The search
    ends after a pass without improvement (``converged``, the result then depends only on
    ``seed``), after ``max_passes`` passes, or when ``time_budget`` seconds are spent (checked
    between moves; a cut-short search depends on the machine's speed).
    """
    t0 = time.perf_counter()
    order = np.array(start, dtype=np.int64)
    n = order.size
    if sorted(order.tolist()) != list(range(n)):
        raise ValueError("start must be a permutation of 0..n-1")
    rng = np.random.default_rng(seed)
    current = cost(order)
    initial = current
    passes = moves = evals = 0
    converged = False
    iu, ju = np.triu_indices(n, k=1)
    deadline = None if time_budget is None else t0 + float(time_budget)
    out_of_time = False
    while not out_of_time and (max_passes is None or passes < max_passes):
        improved = False
        for k in rng.permutation(iu.size):
            if deadline is not None and (evals & 63) == 0 and time.perf_counter() > deadline:
                out_of_time = True
                break
            i, j = int(iu[k]), int(ju[k])
            delta = cost.swap_delta(order, i, j)
            evals += 1
            if delta < -1e-12:
                order[i], order[j] = order[j], order[i]
                current += delta
                improved = True
                moves += 1
                continue
            if reversals and j - i >= 2:
                trial = order.copy()
                trial[i:j + 1] = trial[i:j + 1][::-1]
                value = cost(trial)
                evals += 1
                if value < current - 1e-12:
                    order, current = trial, value
                    improved = True
                    moves += 1
        passes += 1
        if not improved and not out_of_time:
            converged = True
            break
    current = cost(order)  # exact value (no drift from summed deltas)
    return SearchResult(order, current, initial, passes, moves, evals, converged, time.perf_counter() - t0)
