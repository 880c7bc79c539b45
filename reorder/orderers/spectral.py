"""Spectral seriation: channels sorted by the Fiedler vector of the similarity graph."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..similarity import affinity
from ..tsp import path_cost
from .base import ORDERERS
from .distance import DistanceOrderer


@ORDERERS.register("spectral")
class SpectralOrder(DistanceOrderer):
    """Channels sorted by the Fiedler vector of the similarity graph's Laplacian (spectral seriation).

    Graph weights are ``exp(-D / median(D))``; the Fiedler vector is the eigenvector of the
    second-smallest eigenvalue of ``L = diag(W 1) - W`` (or the symmetric normalized
    Laplacian with ``normalized=True``). Its sign is fixed so that the largest entry is
    positive, making the order deterministic.
    """

    standard_names = tuple(f"spectral-{m}" for m in ("correlation", "mse"))

    def __init__(self, metric: str = "correlation", normalization: str = "none", normalized: bool = False,
                 quantizer: Any = None, downsample: int = 1):
        self.metric = metric
        self.normalization = normalization
        self.normalized = normalized
        self.quantizer = quantizer
        self.downsample = downsample

    def fit(self, calib, y=None):
        from sklearn.manifold import spectral_embedding

        D, count = self._distance(calib)
        n = D.shape[0]
        if n < 3:
            order = np.arange(n)
        else:
            # scikit-learn's Laplacian eigenmap: the first non-trivial eigenvector (scaled by
            # diag(W 1)^-1/2 for the normalized Laplacian), with its sign made deterministic
            f = spectral_embedding(affinity(D), n_components=1, norm_laplacian=bool(self.normalized),
                                   drop_first=True, random_state=0)[:, 0]
            if f[np.argmax(np.abs(f))] < 0:
                f = -f
            self.fiedler_ = f
            order = np.argsort(f, kind="stable")
        self._set_order(order, n, count)
        self.tour_cost_ = path_cost(D, self.permutation_)
        return self
