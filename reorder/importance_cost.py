"""An order's rate proxy plus its importance-weighted distortion, and the best rotation of a TSP path under it.

Where a channel sits decides its QP (:mod:`reorder.importance`), so an order trades rate, how well
each frame is predicted from its references (:class:`reorder.structure_cost.StructureCost`), against
the task loss of the positions it gives the channels the task needs::

    J(order) = rate(order) / rate(reference) + tradeoff * loss(order) / loss(reference)

``loss(order) = sum_p W[order[p], p]`` with ``W`` from :meth:`ChannelImportance.position_table`;
both terms are relative to a reference order (the TSP path) so ``tradeoff`` has no units:
``tradeoff = 1`` weighs a 1 % rise of the rate proxy like a 1 % fall of the expected task loss.
:class:`ImportanceCost` offers ``cost(order)`` and ``swap_delta`` as
:func:`reorder.structure_cost.local_search` expects them; :func:`best_rotation` scores every
cyclic rotation and both directions of a path (which channels land on the intra frames and the
low temporal layers), nearly free in rate: a rotation cuts the path at one edge and joins its ends.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .structure_cost import StructureCost

__all__ = ["ImportanceCost", "Rotation", "best_rotation", "rotations"]


class ImportanceCost:
    """``J(order)`` of the module docstring: a :class:`StructureCost` plus ``tradeoff`` times the table's loss."""

    def __init__(self, rate: StructureCost, table: np.ndarray, tradeoff: float, reference):
        W = np.asarray(table, dtype=np.float64)
        n = rate.n
        if W.shape != (n, n):
            raise ValueError(f"importance table {W.shape} does not match {n} channels x {n} positions")
        if not (np.isfinite(tradeoff) and tradeoff >= 0):
            raise ValueError(f"tradeoff={tradeoff} must be a finite value >= 0")
        self.rate_cost, self.W, self.tradeoff = rate, W, float(tradeoff)
        self._pos = np.arange(n)
        reference = np.asarray(reference, dtype=np.int64)
        r0, l0 = rate(reference), self.loss(reference)
        self.rate_scale = 1.0 / r0 if r0 > 0 else 1.0
        self.loss_scale = self.tradeoff / l0 if l0 > 0 else 0.0

    @property
    def n(self) -> int:
        return self.rate_cost.n

    def loss(self, order) -> float:
        """Expected task loss of ``order`` (the table's units)."""
        order = np.asarray(order)
        return float(self.W[order, self._pos].sum())

    def rate(self, order) -> float:
        return self.rate_cost(order)

    def __call__(self, order) -> float:
        return self.rate_scale * self.rate(order) + self.loss_scale * self.loss(order)

    def swap_delta(self, order: np.ndarray, i: int, j: int) -> float:
        """Change of ``J`` when the channels at positions ``i`` and ``j`` swap (``order`` is not changed)."""
        a, b = order[i], order[j]
        dl = self.W[b, i] + self.W[a, j] - self.W[a, i] - self.W[b, j]
        return self.rate_scale * self.rate_cost.swap_delta(order, i, j) + self.loss_scale * float(dl)


def rotations(path) -> np.ndarray:
    """[2n, n]: every cyclic rotation of ``path`` and of its reverse (row ``k < n``: ``roll(path, -k)``)."""
    p = np.asarray(path, dtype=np.int64)
    n = p.size
    idx = (np.arange(n)[:, None] + np.arange(n)[None, :]) % n
    return np.concatenate([p[idx], p[::-1][idx]])


@dataclass(frozen=True)
class Rotation:
    """The best rotation: the order, its cost, the shift (channels moved from the front to the back) and direction."""

    order: np.ndarray
    cost: float
    shift: int
    reversed: bool


def best_rotation(path, cost) -> Rotation:
    """The rotation or reflection of ``path`` with the lowest ``cost(order)`` (first one on ties)."""
    cands = rotations(path)
    values = np.array([cost(c) for c in cands])
    k = int(np.argmin(values))
    n = cands.shape[1]
    return Rotation(cands[k].copy(), float(values[k]), k % n, k >= n)
