"""Hierarchical clustering of the channels, read off in optimal leaf order."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..similarity import check_choice
from ..tsp import path_cost
from .base import ORDERERS
from .distance import DistanceOrderer

CLUSTER_METHODS = ("single", "complete", "average", "weighted", "ward")


@ORDERERS.register("cluster")
class ClusterOrder(DistanceOrderer):
    """Leaf order of a hierarchical clustering of the channels, with scipy's optimal leaf ordering.

    ``method`` is the linkage (``average`` by default; ``ward`` assumes Euclidean-like
    distances). The optimal leaf ordering minimises the summed distance of adjacent leaves
    among all orders the dendrogram allows.
    """

    standard_names = tuple(f"cluster-{m}" for m in ("correlation", "mse"))

    def __init__(self, metric: str = "correlation", normalization: str = "none", method: str = "average",
                 quantizer: Any = None, downsample: int = 1):
        self.metric = metric
        self.normalization = normalization
        self.method = method
        self.quantizer = quantizer
        self.downsample = downsample

    def check_params(self) -> None:
        super().check_params()
        check_choice(self.method, CLUSTER_METHODS, "linkage method")

    def fit(self, calib, y=None):
        from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
        from scipy.spatial.distance import squareform

        method = check_choice(self.method, CLUSTER_METHODS, "linkage method")
        D, count = self._distance(calib)
        n = D.shape[0]
        if n < 3:
            order = np.arange(n)
        else:
            y_ = squareform(D, checks=False)
            Z = optimal_leaf_ordering(linkage(y_, method=method), y_)
            order = leaves_list(Z)
        self._set_order(order, n, count)
        self.tour_cost_ = path_cost(D, self.permutation_)
        return self
