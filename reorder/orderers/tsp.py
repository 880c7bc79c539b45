"""The shortest open path through the channels under a similarity distance (TSP order)."""

from __future__ import annotations

from typing import Any

from ..tsp import canonical_solver, solve_path
from .base import ORDERERS
from .distance import DistanceOrderer


@ORDERERS.register("tsp")
class TSPOrder(DistanceOrderer):
    """Shortest open path through the channels under a similarity distance (the best fixed order measured: README, "What the default study finds").

    ``metric`` (``correlation`` = 1 - Pearson r, ``mse``, ``cosine``, ``ssim``), ``normalization``
    (``none``, ``minmax``, ``zscore``, ``quantized`` with ``quantizer``), ``solver`` (see
    :data:`reorder.tsp.SOLVERS`), ``start`` (force the first channel), ``seed`` and
    ``time_budget`` for the solver, ``downsample`` for the similarity pass.
    """

    standard_names = tuple(f"tsp-{m}" for m in ("correlation", "mse", "cosine", "ssim"))

    def __init__(self, metric: str = "correlation", normalization: str = "none", solver: str = "default",
                 start: int | None = None, quantizer: Any = None, downsample: int = 1, seed: int = 0,
                 time_budget: float | None = None):
        self.metric = metric
        self.normalization = normalization
        self.solver = solver
        self.start = start
        self.quantizer = quantizer
        self.downsample = downsample
        self.seed = seed
        self.time_budget = time_budget

    def check_params(self) -> None:
        super().check_params()
        canonical_solver(self.solver)

    def fit(self, calib, y=None):
        canonical_solver(self.solver)  # fail before the (slow) similarity pass
        D, count = self._distance(calib)
        res = solve_path(D, solver=self.solver, start=self.start, seed=self.seed, time_budget=self.time_budget)
        self._set_order(res.path, D.shape[0], count)
        self.tour_cost_ = float(res.cost)
        self.solver_used_ = res.solver
        self.solve_seconds_ = round(float(res.seconds), 4)
        return self
