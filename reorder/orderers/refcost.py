"""An order that minimises the codec's own prediction cost, not the consecutive-channel path cost."""

from __future__ import annotations

from typing import Any


from ..similarity import check_choice
from ..structure_cost import COMBINES, INTRA_COSTS, WEIGHTS, local_search, structure_cost_for
from ..tsp import canonical_solver, path_cost, solve_path
from .base import ORDERERS
from .distance import DistanceOrderer


def check_structure_params(orderer) -> None:
    """The checks shared by the orderers that score an order under a codec's prediction structure (``refcost``,
    ``imptsp``, ``impcost``): the solver of their TSP start, the cost model's ``intra`` and ``combine``, and
    the ``codec`` spec (built here, so a bad one fails before the similarity pass)."""
    from codec import make_codec

    canonical_solver(orderer.solver)
    check_choice(orderer.intra, INTRA_COSTS, "intra cost")
    check_choice(orderer.combine, COMBINES, "combine")
    make_codec(orderer.codec)


@ORDERERS.register("refcost")
class RefCostOrder(DistanceOrderer):
    """The TSP path, then a local search on the cost of the order under the codec's real prediction
    structure (:mod:`reorder.structure_cost`): intra frames cost their channel's intra cost, every
    other frame its distance to the channels at its reference positions.

    ``metric``/``normalization``/``quantizer``/``downsample``: the distance matrix, as for ``tsp``;
    ``codec``: a codec registry spec whose ``prediction_structure(n)`` gives the structure
    (default ``vvenc``: VVenC GOP 32, intra period 32); ``solver``: the TSP solver of the start
    order; ``time_budget`` (seconds) and ``seed`` for the search (it stops earlier at a local
    optimum, and then depends on ``seed`` only); ``intra``, ``combine``, ``weight``: the cost model
    (see :class:`reorder.structure_cost.StructureCost`).

    Learned: ``permutation_``, ``distance_``, ``cost_`` (structure cost of the order),
    ``initial_cost_`` (the TSP start's), ``tour_cost_`` (path cost of the order, comparable with
    ``tsp``'s), ``start_tour_cost_``, ``search_passes_``, ``search_converged_``, ``structure_source_``.
    """

    standard_names = tuple(f"refcost-{m}" for m in ("correlation", "mse", "cosine", "ssim"))

    def __init__(self, metric: str = "correlation", normalization: str = "none", codec: str = "vvenc",
                 time_budget: float = 30.0, seed: int = 0, solver: str = "default", intra: str = "constant",
                 combine: str = "min", weight: str = "none", quantizer: Any = None, downsample: int = 1):
        self.metric = metric
        self.normalization = normalization
        self.codec = codec
        self.time_budget = time_budget
        self.seed = seed
        self.solver = solver
        self.intra = intra
        self.combine = combine
        self.weight = weight
        self.quantizer = quantizer
        self.downsample = downsample

    def check_params(self) -> None:
        super().check_params()
        check_structure_params(self)
        check_choice(self.weight, WEIGHTS, "weight")

    def fit(self, calib, y=None):
        self.check_params()
        D, count = self._distance(calib)
        from codec import make_codec

        structure = make_codec(self.codec).prediction_structure(D.shape[0])
        cost = structure_cost_for(D, metric=self.metric, intra=self.intra, combine=self.combine,
                                  weight=self.weight, structure=structure)
        start = solve_path(D, solver=self.solver, seed=self.seed)
        res = local_search(cost, start.path, time_budget=self.time_budget, seed=self.seed)
        self._set_order(res.order, D.shape[0], count)
        self.cost_ = float(res.cost)
        self.initial_cost_ = float(res.initial_cost)
        self.tour_cost_ = float(path_cost(D, res.order))
        self.start_tour_cost_ = float(start.cost)
        self.search_passes_ = int(res.passes)
        self.search_converged_ = bool(res.converged)
        self.solve_seconds_ = round(float(start.seconds + res.seconds), 4)
        self.solver_used_ = start.solver
        self.structure_source_ = structure.source
        return self

    def provenance(self) -> dict:
        out = super().provenance()
        out.update(cost=self.cost_, initial_cost=self.initial_cost_, structure=self.structure_source_,
                   search_converged=self.search_converged_, codec=self.codec)
        return out


__all__ = ["RefCostOrder", "check_structure_params"]
