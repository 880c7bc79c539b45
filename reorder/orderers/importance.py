"""Orders that are also rate allocations: the channels the task needs most at the low-QP positions.

Under random access a position's QP offset decides how coarsely its channel is coded
(:mod:`reorder.importance`), so these orderers take the task's channel importance as data
(``importance``: a JSON file written by :mod:`eval.pipeline.importance`, a dict or a vector) and
the positions' QP offsets from the codec's prediction structure (``codec``, as for ``refcost``),
and minimise ``J = rate / rate(TSP) + tradeoff * loss / loss(TSP)``
(:class:`reorder.importance_cost.ImportanceCost`):

* ``imptsp-<metric>``: the TSP path, rotated and turned round (every cyclic shift, both
  directions) so that important channels land on intra frames and low temporal layers; the path
  stays whole but for one edge;
* ``impcost-<metric>``: that rotation, then the local search of ``refcost`` on ``J``.

``tradeoff = 0`` leaves only the rate proxy (``impcost`` is then ``refcost`` from a rotated start).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..importance import as_importance
from ..importance_cost import ImportanceCost, best_rotation
from ..structure_cost import local_search, structure_cost_for
from ..tsp import path_cost, solve_path
from .base import ORDERERS
from .distance import DistanceOrderer
from .refcost import check_structure_params

__all__ = ["ImportanceTSPOrder", "ImportanceCostOrder", "DEFAULT_TRADEOFF", "IMPORTANCE_ORDER_NAMES"]

#: the names of these orderers (any metric works: ``impcost-mse``); each needs ``importance=``
IMPORTANCE_ORDER_NAMES = ("imptsp-correlation", "impcost-correlation")

#: the trade-off chosen on calibration images: MobileNetV2 default split, paper quantizer, VVenC faster, four
#: calibration photos coded at QP 22-37 (motorcycle_left, camera, coins, clock_motion); against
#: tsp-correlation ``impcost`` gave task / feature-PSNR BD-rates of -2.6 / +1.9 % at tradeoff 0, -7.8 / +1.3 at 0.3,
#: -11.7 / -0.5 at 1 and -10.7 / +1.9 at 3 (``imptsp`` at 1: -0.6 / +4.7)
DEFAULT_TRADEOFF = 1.0


@ORDERERS.register("imptsp")
class ImportanceTSPOrder(DistanceOrderer):
    """The TSP path's best rotation and direction under rate proxy + importance-weighted loss.

    ``importance``: path of a channel-importance JSON (or a dict, vector, or
    :class:`reorder.importance.ChannelImportance`); ``codec``: whose prediction structure gives the
    positions' references and QP offsets (default ``vvenc``); ``tradeoff``: the weight of the
    relative task loss against the relative rate proxy; ``metric``/``normalization``/``quantizer``/
    ``downsample``: the distance matrix, as for ``tsp``; ``solver``, ``seed``: the TSP solver;
    ``intra``, ``combine``: the rate proxy (:class:`reorder.structure_cost.StructureCost`).

    Learned: ``permutation_``, ``distance_``, ``shift_`` and ``reversed_`` (the rotation of the TSP
    path), ``cost_`` (``J``), ``rate_ratio_`` and ``loss_ratio_`` (rate proxy and expected loss
    relative to the TSP path), ``weighted_qp_`` / ``start_weighted_qp_`` (importance-weighted
    QP offset of the order / of the TSP path), ``tour_cost_``, ``start_tour_cost_``,
    ``importance_digest_``, ``structure_source_``.
    """

    #: not in :data:`reorder.ORDER_NAMES` (those fit with no arguments); a study passes ``importance`` to
    #: orderers whose class sets ``needs_importance`` (see :data:`IMPORTANCE_ORDER_NAMES`)
    needs_importance = True

    def __init__(self, metric: str = "correlation", importance: Any = None, codec: str = "vvenc",
                 tradeoff: float = DEFAULT_TRADEOFF, normalization: str = "none", solver: str = "default", seed: int = 0,
                 intra: str = "constant", combine: str = "min", quantizer: Any = None, downsample: int = 1):
        self.metric = metric
        self.importance = importance
        self.codec = codec
        self.tradeoff = tradeoff
        self.normalization = normalization
        self.solver = solver
        self.seed = seed
        self.intra = intra
        self.combine = combine
        self.quantizer = quantizer
        self.downsample = downsample

    def check_params(self) -> None:
        super().check_params()
        check_structure_params(self)
        if not (np.isfinite(float(self.tradeoff)) and float(self.tradeoff) >= 0):
            raise ValueError(f"tradeoff={self.tradeoff} must be a finite number >= 0")
        if self.importance is not None:  # a missing or broken importance file too (None fails in fit)
            as_importance(self.importance)

    def _start(self, calib):
        """Distance, structure, importance, the cost J and the TSP path's best rotation."""
        self.check_params()
        imp = as_importance(self.importance)  # None: one clear error naming what to pass
        D, count = self._distance(calib)
        n = D.shape[0]
        if imp.n_channels != n:
            raise ValueError(f"the importance has {imp.n_channels} channels but the calibration features have {n}; "
                             "use the importance computed for this model and layer")
        from codec import make_codec

        structure = make_codec(self.codec).prediction_structure(n)
        rate = structure_cost_for(D, metric=self.metric, intra=self.intra, combine=self.combine, structure=structure)
        start = solve_path(D, solver=self.solver, seed=self.seed)
        cost = ImportanceCost(rate, imp.position_table(structure), float(self.tradeoff), reference=start.path)
        rot = best_rotation(start.path, cost)
        self.importance_digest_ = imp.digest()
        self.structure_source_ = structure.source
        self.start_tour_cost_ = float(start.cost)
        self.start_weighted_qp_ = imp.weighted_qp(start.path, structure)
        self.shift_, self.reversed_ = rot.shift, rot.reversed
        self.solver_used_ = start.solver
        return D, count, imp, structure, cost, start, rot

    def _finish(self, order, D, count, imp, structure, cost, start, seconds: float) -> None:
        self._set_order(order, D.shape[0], count)
        self.cost_ = float(cost(order))
        self.rate_ratio_ = float(cost.rate(order) / max(cost.rate(start.path), 1e-300))
        self.loss_ratio_ = float(cost.loss(order) / max(cost.loss(start.path), 1e-300))
        self.weighted_qp_ = imp.weighted_qp(order, structure)
        self.tour_cost_ = float(path_cost(D, order))
        self.solve_seconds_ = round(float(seconds), 4)

    def fit(self, calib, y=None):
        D, count, imp, structure, cost, start, rot = self._start(calib)
        self._finish(rot.order, D, count, imp, structure, cost, start, start.seconds)
        return self

    def provenance(self) -> dict:
        out = super().provenance()
        out.update(cost=self.cost_, rate_ratio=self.rate_ratio_, loss_ratio=self.loss_ratio_,
                   weighted_qp=self.weighted_qp_, start_weighted_qp=self.start_weighted_qp_, shift=self.shift_,
                   reversed=self.reversed_, structure=self.structure_source_, codec=self.codec,
                   importance_digest=self.importance_digest_)
        if isinstance(self.importance, (str, bytes)) or hasattr(self.importance, "__fspath__"):
            out["importance_file"] = str(self.importance)
        return out


@ORDERERS.register("impcost")
class ImportanceCostOrder(ImportanceTSPOrder):
    """``imptsp``'s rotation, then a local search (swaps and reversals, :func:`reorder.structure_cost.local_search`)
    on ``J``: rate proxy along the codec's prediction structure plus ``tradeoff`` times the importance-weighted
    loss. ``time_budget`` (seconds) and ``seed`` for the search, which stops earlier at a local optimum (and
    then depends on ``seed`` only). Learned besides ``imptsp``'s: ``search_passes_``, ``search_converged_``,
    ``start_cost_`` (``J`` of the rotation it started from)."""

    def __init__(self, metric: str = "correlation", importance: Any = None, codec: str = "vvenc",
                 tradeoff: float = DEFAULT_TRADEOFF, time_budget: float = 30.0, normalization: str = "none",
                 solver: str = "default", seed: int = 0, intra: str = "constant", combine: str = "min",
                 quantizer: Any = None, downsample: int = 1):
        super().__init__(metric=metric, importance=importance, codec=codec, tradeoff=tradeoff,
                         normalization=normalization, solver=solver, seed=seed, intra=intra, combine=combine,
                         quantizer=quantizer, downsample=downsample)
        self.time_budget = time_budget

    def fit(self, calib, y=None):
        D, count, imp, structure, cost, start, rot = self._start(calib)
        res = local_search(cost, rot.order, time_budget=self.time_budget, seed=self.seed)
        self.start_cost_ = float(rot.cost)
        self.search_passes_ = int(res.passes)
        self.search_converged_ = bool(res.converged)
        self._finish(res.order, D, count, imp, structure, cost, start, start.seconds + res.seconds)
        return self

    def provenance(self) -> dict:
        out = super().provenance()
        out.update(start_cost=self.start_cost_, search_converged=self.search_converged_)
        return out
