"""The shared base of orderers that first build a channel distance matrix (``distance_``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..similarity import SIMILARITY_METRICS, NORMALIZATIONS, SimilarityAccumulator, check_choice
from .base import BaseOrderer, iter_checked, one_shot


class DistanceOrderer(BaseOrderer):
    """Orderers that build a channel distance matrix (``distance_``) over the calibration set.

    By name ``<family>-<metric>`` (``tsp-mse``); SSIM costs C**2/2 windowed passes, so
    ``<family>-ssim`` works on 2x downsampled maps unless ``downsample`` is given.
    """

    name_arg = "metric"
    name_defaults = {"ssim": {"downsample": 2}}

    metric: str
    normalization: str
    quantizer: Any
    downsample: int

    @classmethod
    def name_value(cls, value: str) -> str:
        return check_choice(value, SIMILARITY_METRICS, "metric")

    def check_params(self) -> None:
        check_choice(self.metric, SIMILARITY_METRICS, "metric")
        check_choice(self.normalization, NORMALIZATIONS, "normalization")

    def _resolve_quantizer(self, calib):
        """The quantizer for ``normalization='quantized'``: given (fitted if needed) or codec's by name."""
        q = self.quantizer if self.quantizer is not None else "uniform"
        if isinstance(q, str) or (hasattr(q, "fit") and getattr(q, "is_fitted", True) is False):
            if one_shot(calib):
                raise ValueError(
                    "normalization='quantized' must fit its quantizer on the calibration set first and then read "
                    "it again: pass a list or other re-iterable set, or a fitted quantizer"
                )
            if isinstance(q, str):
                from codec import make_quantizer  # only the quantized normalization needs a codec quantizer

                q = make_quantizer(q)
            q = q.fit(calib)
        if not hasattr(q, "quantize"):
            raise ValueError(f"quantizer {q!r} has no quantize(x) method")
        return q

    def _distance(self, calib) -> tuple[np.ndarray, int]:
        metric = check_choice(self.metric, SIMILARITY_METRICS, "metric")
        normalization = check_choice(self.normalization, NORMALIZATIONS, "normalization")
        q = self._resolve_quantizer(calib) if normalization == "quantized" else None
        self.quantizer_ = q
        acc = SimilarityAccumulator(metric, normalization, q, self.downsample)
        for i, x in iter_checked(calib):
            acc.update(x, index=i)
        if acc.n_images == 0:
            raise ValueError("fit got no calibration images; give at least one [C, H, W] feature array")
        D = acc.distance()
        self.distance_ = D
        return D, acc.n_images
