"""Orders that learn nothing from the features: identity, random, and a given (fixed) order."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ..permutation import Permutation, validate_order
from .base import ORDERERS, BaseOrderer


@ORDERERS.register("identity")
class IdentityOrder(BaseOrderer):
    """Channels in their original order: the anchor every learned order is compared against."""

    standard_names = ("identity",)

    def __init__(self):
        pass

    def fit(self, calib, y=None):
        n, count = self._scan(calib)
        self._set_order(np.arange(n), n, count)
        return self


@ORDERERS.register("random")
class RandomOrder(BaseOrderer):
    """A uniformly random order drawn with ``seed`` (a control: any gain it shows is noise)."""

    standard_names = ("random",)

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, calib, y=None):
        n, count = self._scan(calib)
        self._set_order(np.random.default_rng(self.seed).permutation(n), n, count)
        return self


@ORDERERS.register("fixed")
class FixedOrder(BaseOrderer):
    """A given order (e.g. the hand-made "subjective" one): a list/array, a Permutation, or an order file path.

    ``fit`` only checks that it is a bijection matching the calibration features' channel count.
    By name: ``fixed:order_or_path=FILE``, ``fixed:path=FILE`` or ``file:FILE``.
    """

    option_aliases = {"path": "order_or_path"}

    def __init__(self, order_or_path: Any = None):
        self.order_or_path = order_or_path

    def _load(self, n_channels: int | None) -> Permutation:
        src = self.order_or_path
        if src is None:
            raise ValueError("FixedOrder needs order_or_path: a list of channel indices or the path of an order file")
        if isinstance(src, Permutation):
            validate_order(src.order, n_channels, source="FixedOrder order")
            return src
        if isinstance(src, (str, os.PathLike)):
            return Permutation.load(src, n_channels=n_channels)
        return Permutation(validate_order(src, n_channels, source="FixedOrder order"), {})

    def fit(self, calib, y=None):
        n, count = self._scan(calib)
        self.source_permutation_ = self._load(n)
        self._set_order(self.source_permutation_.order.copy(), n, count)
        return self

    def provenance(self) -> dict:
        out = super().provenance()
        src = getattr(self, "source_permutation_", None)
        if src is not None and src.provenance:
            out["source_provenance"] = src.provenance
        if isinstance(self.order_or_path, (str, os.PathLike)):
            out["orderer_params"]["order_or_path"] = os.fspath(self.order_or_path)
        elif not isinstance(self.order_or_path, (str, type(None))):
            out["orderer_params"]["order_or_path"] = np.asarray(
                getattr(self.order_or_path, "order", self.order_or_path)).tolist()
        return out
