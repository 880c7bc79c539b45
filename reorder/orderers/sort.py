"""Channels sorted by a per-channel statistic of the calibration features."""

from __future__ import annotations

import numpy as np

from ..similarity import check_choice
from .base import ORDERERS, BaseOrderer, iter_checked

SORT_STATISTICS = ("mean", "variance", "energy", "sparsity")


@ORDERERS.register("sort")
class SortOrder(BaseOrderer):
    """Channels sorted by a per-channel statistic over the calibration set (ascending unless ``descending``).

    ``mean``, ``variance`` (pooled over all pixels and images), ``energy`` (mean square)
    or ``sparsity`` (fraction of values with ``|x| <= zero_tol``). Ties keep index order.
    By name: ``sort-<statistic>``.
    """

    standard_names = tuple(f"sort-{s}" for s in SORT_STATISTICS)
    name_arg = "statistic"

    def __init__(self, statistic: str = "mean", descending: bool = False, zero_tol: float = 1e-6):
        self.statistic = statistic
        self.descending = descending
        self.zero_tol = zero_tol

    def check_params(self) -> None:
        check_choice(self.statistic, SORT_STATISTICS, "sort statistic")

    def fit(self, calib, y=None):
        stat = check_choice(self.statistic, SORT_STATISTICS, "sort statistic")
        s1 = s2 = zeros = None
        count = 0
        pixels = 0
        for _, x in iter_checked(calib):
            flat = x.reshape(x.shape[0], -1).astype(np.float64)
            if s1 is None:
                s1 = np.zeros(x.shape[0])
                s2 = np.zeros(x.shape[0])
                zeros = np.zeros(x.shape[0])
            s1 += flat.sum(axis=1)
            s2 += (flat * flat).sum(axis=1)
            zeros += (np.abs(flat) <= self.zero_tol).sum(axis=1)
            pixels += flat.shape[1]
            count += 1
        if count == 0:
            raise ValueError("fit got no calibration images; give at least one [C, H, W] feature array")
        mean = s1 / pixels
        values = {
            "mean": mean,
            "energy": s2 / pixels,
            "variance": np.maximum(s2 / pixels - mean * mean, 0.0),
            "sparsity": zeros / pixels,
        }[stat]
        self.statistic_values_ = values
        key = -values if self.descending else values
        self._set_order(np.argsort(key, kind="stable"), values.size, count)
        return self
