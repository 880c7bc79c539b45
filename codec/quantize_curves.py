"""The non-uniform curves of the global quantizers: logarithmic, power and mu-law steps.

Each class only says how its curve bends (``_curve`` and its inverse) and checks its shape
parameter; the range, the codes, the exact inverse table and the registry live in
:mod:`codec.quantize` (see its docstring for the three steps every quantizer takes). Importing
this module registers ``log``, ``power`` and ``mulaw`` in :data:`codec.quantize.QUANTIZERS`;
:mod:`codec.quantizers` (the registry's front) and :mod:`codec.normalize` import it.
"""
from __future__ import annotations

import math

import numpy as np

from .quantize import QUANTIZERS, Quantizer

__all__ = ["LogQuantizer", "PowerQuantizer", "MuLawQuantizer"]


@QUANTIZERS.register("log")
class LogQuantizer(Quantizer):
    """Logarithmic steps from ``xmin``: ``v = log(1 + shape*u) / log(1 + shape)``.

    Fine steps near the range minimum (0 for ReLU features, where most values
    are), coarse ones near the maximum. ``shape`` > 0 is the ratio between the
    range width and the value where the curve bends from linear to logarithmic.
    For signed data concentrated around 0 prefer :class:`MuLawQuantizer`.
    """

    name = "log"
    _extra_params = ("shape",)
    shape_param = ("shape", 1.0, 1e4)

    def __init__(self, bits: int = 8, percentile: float = 100.0, shape: float = 100.0,
                 xmin: float | None = None, xmax: float | None = None):
        self.shape = shape
        super().__init__(bits=bits, percentile=percentile, xmin=xmin, xmax=xmax)

    def _check_params(self):
        super()._check_params()
        if not isinstance(self.shape, (int, float)) or not 0 < float(self.shape) <= 1e6:
            raise ValueError(f"log quantizer: shape={self.shape!r}; use a number in (0, 1e6]")

    def _curve(self, u):
        s = float(self.shape)
        return np.log1p(s * u) / math.log1p(s)

    def _inverse_curve(self, v):
        s = float(self.shape)
        return np.expm1(v * math.log1p(s)) / s


@QUANTIZERS.register("power")
class PowerQuantizer(Quantizer):
    """Power-law steps: ``v = u**gamma`` (gamma < 1 refines near ``xmin``)."""

    name = "power"
    _extra_params = ("gamma",)
    shape_param = ("gamma", 0.1, 1.5)

    def __init__(self, bits: int = 8, percentile: float = 100.0, gamma: float = 0.5,
                 xmin: float | None = None, xmax: float | None = None):
        self.gamma = gamma
        super().__init__(bits=bits, percentile=percentile, xmin=xmin, xmax=xmax)

    def _check_params(self):
        super()._check_params()
        if not isinstance(self.gamma, (int, float)) or not 0.05 <= float(self.gamma) <= 20:
            raise ValueError(f"power quantizer: gamma={self.gamma!r}; use a number in [0.05, 20]")

    def _curve(self, u):
        return np.power(u, float(self.gamma))

    def _inverse_curve(self, v):
        return np.power(v, 1.0 / float(self.gamma))


@QUANTIZERS.register("mulaw", "mu-law")
class MuLawQuantizer(Quantizer):
    """Mu-law companding around zero, rescaled to the fitted range.

    ``g(x) = sign(x) log(1 + mu |x| / m) / log(1 + mu)``, ``m = max(|xmin|, |xmax|)``,
    codes spread linearly over ``[g(xmin), g(xmax)]``. Fine steps around 0 on
    both sides for signed data; for ``xmin = 0`` it equals ``LogQuantizer(shape=mu)``.
    """

    name = "mulaw"
    _extra_params = ("mu",)
    shape_param = ("mu", 1.0, 1e4)

    def __init__(self, bits: int = 8, percentile: float = 100.0, mu: float = 255.0,
                 xmin: float | None = None, xmax: float | None = None):
        self.mu = mu
        super().__init__(bits=bits, percentile=percentile, xmin=xmin, xmax=xmax)

    def _check_params(self):
        super()._check_params()
        if not isinstance(self.mu, (int, float)) or not 0 < float(self.mu) <= 1e6:
            raise ValueError(f"mulaw quantizer: mu={self.mu!r}; use a number in (0, 1e6]")

    def _g_params(self):
        m = max(abs(self.xmin_), abs(self.xmax_))
        mu = float(self.mu)
        return m, mu, math.log1p(mu)

    def _g(self, x):
        m, mu, den = self._g_params()
        return np.sign(x) * np.log1p(mu * np.abs(x) / m) / den

    def _g_inv(self, y):
        m, mu, den = self._g_params()
        return np.sign(y) * np.expm1(np.abs(y) * den) * m / mu

    def _curve(self, u):
        x = self.xmin_ + u * (self.xmax_ - self.xmin_)
        g0, g1 = self._g(np.float64(self.xmin_)), self._g(np.float64(self.xmax_))
        return (self._g(x) - g0) / (g1 - g0)

    def _inverse_curve(self, v):
        g0, g1 = self._g(np.float64(self.xmin_)), self._g(np.float64(self.xmax_))
        x = self._g_inv(g0 + v * (g1 - g0))
        return (x - self.xmin_) / (self.xmax_ - self.xmin_)
