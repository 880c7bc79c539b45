"""Orders for tiled packing: which channels sit side by side in the mosaic (see :mod:`reorder.placement`).

* ``snake-<metric>``: the TSP path laid out as a boustrophedon through the tile grid.
* ``grid-<metric>``: a 2-D placement minimising the summed distance between 4-neighbour tiles, improved from
  the snake by swap descent and seeded kicks.
* ``mosaic-<metric>``: for several mosaics per image (``per_frame``): the channel at each tile position
  resembles the channel at the same position of the previous mosaic (inter prediction) and its 4-neighbours
  (intra prediction), weighted ``temporal`` : ``spatial``.

The grid must be the packing's: ``cols`` (and ``per_frame``) as given to ``TiledPacking``, or by default the
MPEG anchors' grid of the channel count (``TiledPacking(grid="mpeg")`` for square or wide tiles), e.g.
``--orders snake-correlation grid-correlation --packing tiled:grid=mpeg`` or
``--orders grid-correlation:cols=12 --packing tiled:cols=12``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..placement import (PlacementCost, chains_start, grid_cost_summary, improve_placement, mosaic_grid,
                         placement_graph, snake)
from ..tsp import canonical_solver, path_cost, solve_path
from .base import ORDERERS
from .distance import DistanceOrderer

__all__ = ["SnakeOrder", "GridOrder", "MosaicOrder"]


def _check_positive(value: Any, key: str, allow_none: bool = True) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{key}={value!r}; use a positive integer" + (" or None" if allow_none else ""))


class _TiledOrderer(DistanceOrderer):
    """Shared parts: the distance matrix, the TSP path, the grid, and what is recorded about the placement."""

    cols: int | None
    per_frame: int | None
    solver: str
    seed: int

    def check_params(self) -> None:
        super().check_params()
        canonical_solver(self.solver)
        _check_positive(self.cols, "cols")
        _check_positive(self.per_frame, "per_frame")

    def _path(self, calib):
        self.check_params()
        D, count = self._distance(calib)
        res = solve_path(D, solver=self.solver, seed=self.seed)
        self.grid_ = mosaic_grid(D.shape[0], self.cols, self.per_frame)
        self.solver_used_ = res.solver
        return D, count, res

    def _finish(self, D: np.ndarray, order: np.ndarray, count: int, seconds: float) -> None:
        self._set_order(order, D.shape[0], count)
        self.tour_cost_ = float(path_cost(D, order))  # the package-wide comparison of orders
        summary = grid_cost_summary(D, order, self.cols, self.per_frame)
        self.neighbour_cost_ = float(summary["neighbour_cost"])
        self.temporal_cost_ = float(summary["temporal_cost"])
        self.solve_seconds_ = round(float(seconds), 4)

    def provenance(self) -> dict:
        out = super().provenance()
        out.update(grid=list(self.grid_), neighbour_cost=self.neighbour_cost_, temporal_cost=self.temporal_cost_,
                   cols=self.cols, per_frame=self.per_frame)
        return out


@ORDERERS.register("snake")
class SnakeOrder(_TiledOrderer):
    """The TSP path as a snake through the tile grid: row-major tiling then shows the path left to right,
    right to left, ..., so path neighbours stay tile neighbours at the row ends too.

    ``metric``, ``normalization``, ``quantizer``, ``downsample``: the distance (as for ``tsp``); ``solver``,
    ``seed``: the path; ``cols``, ``per_frame``: the packing's grid (default: the MPEG anchors' grid of C).
    """

    standard_names = tuple(f"snake-{m}" for m in ("correlation", "mse", "cosine", "ssim"))

    def __init__(self, metric: str = "correlation", normalization: str = "none", solver: str = "default",
                 cols: int | None = None, per_frame: int | None = None, quantizer: Any = None, downsample: int = 1,
                 seed: int = 0):
        self.metric = metric
        self.normalization = normalization
        self.solver = solver
        self.cols = cols
        self.per_frame = per_frame
        self.quantizer = quantizer
        self.downsample = downsample
        self.seed = seed

    def fit(self, calib, y=None):
        D, count, res = self._path(calib)
        self._finish(D, snake(res.path, self.grid_[1], self.per_frame), count, res.seconds)
        self.path_ = np.asarray(res.path, dtype=np.int64)
        return self


@ORDERERS.register("grid")
class GridOrder(_TiledOrderer):
    """A 2-D placement minimising the summed distance between 4-neighbour tiles of each mosaic.

    Starts from the snake of the TSP path and lowers ``neighbour_cost_`` by best-improvement swaps, then
    ``kicks`` times perturbs the best placement (``kick_size`` random swaps) and descends again
    (:func:`reorder.placement.improve_placement`); deterministic for ``seed`` unless ``time_budget`` seconds
    cut it short (``timed_out_``; the budget holds for each start). Learned besides ``permutation_``:
    ``cost_``, ``start_cost_`` and ``start_neighbour_cost_`` (the snake's).
    """

    standard_names = tuple(f"grid-{m}" for m in ("correlation", "mse", "cosine", "ssim"))

    def __init__(self, metric: str = "correlation", normalization: str = "none", solver: str = "default",
                 cols: int | None = None, per_frame: int | None = None, kicks: int = 200, kick_size: int = 3,
                 time_budget: float = 120.0, seed: int = 0, quantizer: Any = None, downsample: int = 1):
        self.metric = metric
        self.normalization = normalization
        self.solver = solver
        self.cols = cols
        self.per_frame = per_frame
        self.kicks = kicks
        self.kick_size = kick_size
        self.time_budget = time_budget
        self.seed = seed
        self.quantizer = quantizer
        self.downsample = downsample

    def check_params(self) -> None:
        super().check_params()
        _check_positive(self.kick_size, "kick_size", allow_none=False)
        if isinstance(self.kicks, bool) or not isinstance(self.kicks, (int, np.integer)) or self.kicks < 0:
            raise ValueError(f"kicks={self.kicks!r}; use a whole number >= 0")

    def _weights(self, n: int) -> np.ndarray:
        return placement_graph(n, self.cols, self.per_frame, spatial=1.0, temporal=0.0)

    def _starts(self, res) -> list[np.ndarray]:
        return [snake(res.path, self.grid_[1], self.per_frame)]

    def fit(self, calib, y=None):
        D, count, res = self._path(calib)
        cost = PlacementCost(D, self._weights(D.shape[0]))
        starts = self._starts(res)
        best, seconds = None, res.seconds
        for i, start in enumerate(starts):
            r = improve_placement(cost, start, kicks=self.kicks, kick_size=self.kick_size, seed=self.seed + i,
                                  time_budget=self.time_budget)
            seconds += r.seconds
            if best is None or r.cost < best.cost - 1e-12:
                best = r
            if i == 0:
                self.start_cost_ = float(r.initial_cost)
        self.cost_ = float(best.cost)
        self.timed_out_ = bool(best.timed_out)
        self.search_kicks_ = int(best.kicks)
        self._finish(D, best.order, count, seconds)
        self.start_neighbour_cost_ = float(grid_cost_summary(D, starts[0], self.cols, self.per_frame)["neighbour_cost"])
        return self

    def provenance(self) -> dict:
        out = super().provenance()
        out.update(cost=self.cost_, start_cost=self.start_cost_, timed_out=self.timed_out_)
        return out


@ORDERERS.register("mosaic")
class MosaicOrder(GridOrder):
    """Several mosaics per image (``per_frame`` channels each, required): the channel at each tile position
    resembles the one at the same position of the previous mosaic (weight ``temporal``) and its 4-neighbours
    in the mosaic (weight ``spatial``).

    Two starts, each improved as in ``grid`` and the better kept: the TSP path cut into one chain per tile
    position (chains laid out as a snake; :func:`reorder.placement.chains_start`), and the snake of the path
    through each mosaic. ``cost_`` is the weighted sum; ``neighbour_cost_`` and ``temporal_cost_`` its parts.
    """

    # no standard names: every mosaic order needs its packing's per_frame (mosaic-correlation:per_frame=16)

    def __init__(self, metric: str = "correlation", normalization: str = "none", solver: str = "default",
                 cols: int | None = None, per_frame: int | None = None, temporal: float = 1.0,
                 spatial: float = 0.5, kicks: int = 200, kick_size: int = 3, time_budget: float = 120.0,
                 seed: int = 0, quantizer: Any = None, downsample: int = 1):
        self.temporal = temporal
        self.spatial = spatial
        super().__init__(metric=metric, normalization=normalization, solver=solver, cols=cols, per_frame=per_frame,
                         kicks=kicks, kick_size=kick_size, time_budget=time_budget, seed=seed, quantizer=quantizer,
                         downsample=downsample)

    def check_params(self) -> None:
        super().check_params()
        if self.per_frame is None:
            raise ValueError("mosaic orderer: give per_frame (channels per mosaic, as the packing's "
                             "tiled:per_frame=K); with one mosaic per image use grid-<metric>")
        for key in ("temporal", "spatial"):
            v = getattr(self, key)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or v < 0:
                raise ValueError(f"mosaic orderer: {key}={v!r}; use a number >= 0")
        if self.temporal == 0 and self.spatial == 0:
            raise ValueError("mosaic orderer: temporal and spatial are both 0; nothing to optimise")

    def _weights(self, n: int) -> np.ndarray:
        return placement_graph(n, self.cols, self.per_frame, spatial=float(self.spatial),
                               temporal=float(self.temporal))

    def _starts(self, res) -> list[np.ndarray]:
        return [chains_start(res.path, self.cols, self.per_frame), snake(res.path, self.grid_[1], self.per_frame)]
