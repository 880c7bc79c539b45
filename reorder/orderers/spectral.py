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
    second-smallest eigenvalue of ``L = diag(W 1) - W`` (or the symmetric normalised
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
        from scipy.linalg import eigh

        D, count = self._distance(calib)
        n = D.shape[0]
        if n < 3:
            order = np.arange(n)
        else:
            W = affinity(D)
            deg = W.sum(axis=1)
            if self.normalized:
                inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
                L = np.eye(n) - inv[:, None] * W * inv[None, :]
            else:
                L = np.diag(deg) - W
            _, vecs = eigh(L, subset_by_index=[1, 1])
            f = vecs[:, 0]
            if self.normalized:
                f = f * np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
            if f[np.argmax(np.abs(f))] < 0:
                f = -f
            self.fiedler_ = f
            order = np.argsort(f, kind="stable")
        self._set_order(order, n, count)
        self.tour_cost_ = path_cost(D, self.permutation_)
        return self
