"""Refine a channel order by real encoded bits: try the moves a cost model ranks best, keep what saves bits.

The cost models of :mod:`reorder.structure_cost` predict bits only in part, so the last step is the
codec itself: :func:`refine_by_bits` codes the calibration features (the shared core,
:func:`eval.pipeline.cell.code_features`) with the current order at the given QPs, then tries
channel swaps in the order of their predicted cost change (most negative first, re-ranked after
every accepted swap) and keeps a swap only when the total bits over those images and QPs fall.
It stops after ``max_encodes`` trial encodes (each trial codes every image at every QP once).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

__all__ = ["RefineResult", "order_bits", "refine_by_bits", "ranked_swaps"]


@dataclass
class RefineResult:
    order: np.ndarray
    bits_before: int
    bits_after: int
    encodes: int
    accepted: list = field(default_factory=list)  # (i, j, bits after the swap)
    seconds: float = 0.0

    @property
    def saving(self) -> float:
        """Relative bit saving (positive = fewer bits)."""
        return 1.0 - self.bits_after / self.bits_before if self.bits_before else 0.0


def order_bits(features: Sequence[np.ndarray], order, quantizer, packing, codec, qps: Sequence[int]) -> int:
    """Total bits of coding every feature array at every QP with ``order``."""
    from reorder import Permutation

    from .cell import code_features

    perm = Permutation(np.asarray(order, dtype=np.int64), {})
    return int(sum(code_features(x, perm, quantizer, packing, codec, int(qp)).bits for x in features for qp in qps))


def ranked_swaps(cost, order: np.ndarray, limit: int) -> list[tuple[int, int, float]]:
    """The ``limit`` position swaps with the lowest predicted cost change under ``cost`` (a StructureCost)."""
    order = np.array(order, dtype=np.int64)
    n = order.size
    out = []
    for i in range(n - 1):
        for j in range(i + 1, n):
            out.append((i, j, cost.swap_delta(order, i, j)))
    out.sort(key=lambda t: t[2])
    return out[:limit]


def refine_by_bits(features: Sequence[np.ndarray], start, cost, quantizer, packing, codec, qps: Sequence[int] = (32,),
                   max_encodes: int = 20, shortlist: int = 64) -> RefineResult:
    """Greedy refinement of ``start`` by measured bits (see the module docstring).

    ``cost`` ranks candidate swaps (a :class:`reorder.structure_cost.StructureCost`); ``shortlist``
    candidates are ranked at a time and the list is rebuilt after each accepted swap. One
    encode of the start order is made first and not counted in ``max_encodes``.
    """
    t0 = time.perf_counter()
    order = np.array(start, dtype=np.int64)
    best = order_bits(features, order, quantizer, packing, codec, qps)
    before, encodes, accepted, tried = best, 0, [], set()
    while encodes < max_encodes:
        candidates = [c for c in ranked_swaps(cost, order, shortlist + len(tried)) if (c[0], c[1]) not in tried]
        if not candidates:
            break
        changed = False
        for i, j, _ in candidates:
            if encodes >= max_encodes:
                break
            trial = order.copy()
            trial[i], trial[j] = trial[j], trial[i]
            bits = order_bits(features, trial, quantizer, packing, codec, qps)
            encodes += 1
            tried.add((i, j))
            if bits < best:
                order, best = trial, bits
                accepted.append((i, j, int(bits)))
                tried.clear()  # the order changed: earlier rejections may now pay
                changed = True
                break
        if not changed and all((c[0], c[1]) in tried for c in candidates):
            continue
    return RefineResult(order, int(before), int(best), encodes, accepted, time.perf_counter() - t0)
