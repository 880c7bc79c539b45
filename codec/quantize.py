"""Scalar quantizers: float features <-> integer codes of 8 or 10 bits.

Every quantizer maps a value ``x`` through three steps::

    u = clip((x - xmin) / (xmax - xmin), 0, 1)     # position in the fitted range
    v = curve(u)                                   # monotone bijection of [0, 1]
    q = round(v * (2**bits - 1))                   # integer code

and back with ``x = xmin + (xmax - xmin) * curve^-1(q / (2**bits - 1))``.
Only the curve differs between the classes:

* :class:`UniformQuantizer`: ``v = u`` (equal steps everywhere).
* :class:`LogQuantizer`: ``v = log(1 + s*u) / log(1 + s)`` with ``shape`` s.
  Steps are fine near ``xmin`` and coarse near ``xmax``: for ReLU features
  (``xmin = 0``, most values near 0) it spends codes where the values are.
  ``s`` is the ratio between the whole range and the value where the curve
  turns from linear to logarithmic (s -> 0 gives the uniform curve).
* :class:`PowerQuantizer`: ``v = u**gamma``; ``gamma < 1`` refines near
  ``xmin`` (like the log curve but with a polynomial rather than a
  logarithmic tail), ``gamma > 1`` refines near ``xmax``; ``gamma = 1`` is uniform.
* :class:`MuLawQuantizer`: mu-law companding centred on zero,
  ``g(x) = sign(x) * log(1 + mu*|x|/m) / log(1 + mu)`` with
  ``m = max(|xmin|, |xmax|)``, and ``v = (g(x) - g(xmin)) / (g(xmax) - g(xmin))``.
  For signed features it refines around 0 on both sides; for ``xmin = 0`` it
  is the same curve as ``LogQuantizer(shape=mu)``.

The range ``[xmin, xmax]`` is either given or fitted on calibration data in one
streaming pass (:meth:`fit` never holds more than one array): with
``percentile=100`` it is the exact minimum and maximum; with ``percentile=p < 100``
it is the *mean over calibration arrays* of each array's ``(100 - p)``-th and
``p``-th percentiles (clipped to the exact min/max). That is not the percentile
of the pooled data, but it needs O(1) memory, does not depend on the order of
the arrays, and no single outlier image can stretch the range. Values outside
the range are clipped to the end codes.

Exact inverse: :meth:`dequantize` reads a table with one float32 value per
code, built once by :meth:`fit` and nudged (``numpy.nextafter``) until
``quantize(dequantize(q)) == q`` holds for every code ``q``.

Quantizers are scikit-learn estimators: ``__init__`` only
stores its arguments, :meth:`fit` validates them and learns ``xmin_``, ``xmax_``
and ``table_``, ``set_params`` does no work, ``sklearn.base.clone`` gives an
unfitted copy, and :meth:`quantize` / :meth:`dequantize` raise sklearn's
``NotFittedError`` (a ValueError) before :meth:`fit`, or after a parameter was
changed since it. A fixed range (``xmin`` and ``xmax`` both given) is still
fitted by :meth:`fit`, which then reads no data; :func:`codec.quantizers.quantizer_from_dict`
rebuilds a fitted quantizer from a saved :meth:`Quantizer.to_dict`.

This module holds the base class and the uniform curve; the log, power and mu-law curves are in
:mod:`codec.quantize_curves`. Each class joins :data:`QUANTIZERS` with ``@QUANTIZERS.register("name")``;
:func:`codec.quantizers.make_quantizer` builds one from a spec string (``"log:bits=10"``).
:meth:`Quantizer.to_dict` is part of stored cell keys: its output must not change.
"""
from __future__ import annotations

import copy
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from .registry import Registry

__all__ = ["Quantizer", "UniformQuantizer", "QUANTIZERS"]

#: Quantizer classes by name; filled by ``@QUANTIZERS.register(...)`` where each class is defined.
QUANTIZERS = Registry("quantizer")

_NOT_FITTED = ("This %(name)s is not fitted, or a parameter changed since it was; call "
               "fit(calibration_arrays) (fixed xmin and xmax: fit([])) or quantizer_from_dict(saved_dict)")


def _check_finite(x: np.ndarray, what: str) -> None:
    if not np.all(np.isfinite(x)):
        n_bad = int(np.size(x) - np.count_nonzero(np.isfinite(x)))
        raise ValueError(f"{what} contains {n_bad} NaN/Inf values; clean the features before quantizing")


class _CodeMapping(BaseEstimator):
    """What every quantizer shares as an estimator: its code count, fitted state and repr.

    Subclasses define ``_ordered_params`` (the parameters in the order ``to_dict`` and repr
    keep) and set ``fitted_params_`` when fitted; changing a parameter afterwards makes the
    quantizer unfitted again (``check_is_fitted`` reads :meth:`__sklearn_is_fitted__`).
    """

    @property
    def levels(self) -> int:
        """Number of codes, ``2**bits``."""
        return 1 << self.bits

    @property
    def is_fitted(self) -> bool:
        """True after :meth:`fit` (or :func:`quantizer_from_dict`) while the parameters are unchanged."""
        return "fitted_params_" in self.__dict__ and self.fitted_params_ == self.get_params(deep=False)

    def __sklearn_is_fitted__(self) -> bool:
        return self.is_fitted

    def __repr__(self, N_CHAR_MAX: int = 700) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._ordered_params().items())
        return f"{type(self).__name__}({args})"


class Quantizer(_CodeMapping):
    """Base class: range fitting, code mapping, serialisation (a scikit-learn estimator).

    Subclasses define ``name``, extra parameters in ``_extra_params`` (also
    spelled out in their ``__init__``, as scikit-learn reads them from there)
    and the curve via :meth:`_curve` / :meth:`_inverse_curve` (arrays of
    float64 in [0, 1], where the input of ``_curve`` is the clipped position
    ``u``), check their parameters in :meth:`_check_params` (called by
    :meth:`fit` and :func:`make_quantizer`), and register with
    ``@QUANTIZERS.register(name)``.

    Args:
        bits: code depth, 8 or 10.
        percentile: 100 for the exact min/max; ``p < 100`` clips the
            ``100 - p`` % tails on each side (see module docstring).
        xmin, xmax: fixed range; when both are given :meth:`fit` keeps them
            (and reads no data). When only one is given, the other is fitted.

    Fitted attributes: ``xmin_``, ``xmax_`` (the range), ``table_`` (float32
    value per code) and ``fitted_params_`` (the parameters they were fitted with).
    """

    name = "base"
    _extra_params: tuple[str, ...] = ()
    #: ``(keyword, low, high)`` of the curve's shape parameter, sampled log-uniformly by tuning studies
    shape_param: tuple | None = None

    def __init__(self, bits: int = 8, percentile: float = 100.0,
                 xmin: float | None = None, xmax: float | None = None):
        self.bits = bits
        self.percentile = percentile
        self.xmin = xmin
        self.xmax = xmax

    # ----------------------------------------------------------- parameters
    def _check_params(self) -> None:
        if self.bits not in (8, 10) or isinstance(self.bits, bool):
            raise ValueError(f"{self.name} quantizer: bits={self.bits!r}; use 8 or 10")
        p = self.percentile
        if not isinstance(p, (int, float)) or not 50.0 < float(p) <= 100.0:
            raise ValueError(f"{self.name} quantizer: percentile={p!r}; use a number in (50, 100]")
        for key in ("xmin", "xmax"):
            v = getattr(self, key)
            if v is not None and not math.isfinite(float(v)):
                raise ValueError(f"{self.name} quantizer: {key}={v!r} must be finite or None")
        if self.xmin is not None and self.xmax is not None and not float(self.xmax) > float(self.xmin):
            raise ValueError(f"{self.name} quantizer: xmax={self.xmax} must be > xmin={self.xmin}")

    def _ordered_params(self) -> dict[str, Any]:
        """Parameters in their historical order (``to_dict`` output and repr keep it)."""
        keys = ("bits", "percentile", "xmin", "xmax", *self._extra_params)
        return {key: getattr(self, key) for key in keys}

    # ----------------------------------------------------------- fitting
    def fit(self, X: Iterable[np.ndarray], y: Any = None) -> "Quantizer":
        """Fit ``xmin_`` / ``xmax_`` (and the code table) on calibration arrays in one streaming pass.

        ``X`` is any iterable of float arrays (e.g. [C, H, W] features); it is
        read once and never stacked, and not read at all when both ``xmin`` and
        ``xmax`` are given. ``y`` is ignored. Returns ``self``.
        """
        self._check_params()
        if self.xmin is not None and self.xmax is not None:
            return self._fit_range(float(self.xmin), float(self.xmax))
        return self._fit_range(*self._range_of(X))

    def _range_of(self, X: Iterable[np.ndarray]) -> tuple[float, float]:
        """The range :meth:`fit` takes from the arrays ``X`` (one streaming pass; fixed ends kept)."""
        q = float(self.percentile)
        lo_sum = hi_sum = 0.0
        gmin, gmax = math.inf, -math.inf
        n = 0
        for i, x in enumerate(X):
            a = np.asarray(x)
            if a.size == 0:
                raise ValueError(f"calibration array {i} is empty; give non-empty feature arrays")
            _check_finite(a, f"calibration array {i}")
            a = a.astype(np.float64, copy=False).ravel()
            gmin = min(gmin, float(a.min()))
            gmax = max(gmax, float(a.max()))
            if q < 100.0:
                lo, hi = np.percentile(a, [100.0 - q, q])
                lo_sum += float(lo)
                hi_sum += float(hi)
            n += 1
        if n == 0:
            raise ValueError(f"{self.name} quantizer: calibration data is empty; pass at least one array")
        if q < 100.0:
            lo, hi = max(gmin, lo_sum / n), min(gmax, hi_sum / n)
        else:
            lo, hi = gmin, gmax
        if self.xmin is not None:
            lo = float(self.xmin)
        if self.xmax is not None:
            hi = float(self.xmax)
        if not hi > lo:
            # Constant data (or a fixed end beyond the data): any positive
            # width gives an exact round trip; use one float32 resolves well.
            hi = lo + max(1.0, abs(lo))
        return lo, hi

    def _fit_range(self, lo: float, hi: float) -> "Quantizer":
        """Set the fitted state for the range ``[lo, hi]`` (parameters already validated)."""
        for attr in ("xmin_", "xmax_", "table_", "fitted_params_"):
            self.__dict__.pop(attr, None)
        try:
            self.xmin_ = float(lo)
            self.xmax_ = float(hi)
            self.table_ = self._build_table()
        except BaseException:
            for attr in ("xmin_", "xmax_"):
                self.__dict__.pop(attr, None)
            raise
        self.fitted_params_ = self.get_params(deep=False)
        return self

    # ----------------------------------------------------------- the curve
    def _curve(self, u: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _inverse_curve(self, v: np.ndarray) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    # ----------------------------------------------------------- coding
    def _codes_from_float64(self, x: np.ndarray) -> np.ndarray:
        span = self.xmax_ - self.xmin_
        u = np.clip((x - self.xmin_) / span, 0.0, 1.0)
        v = np.clip(self._curve(u), 0.0, 1.0)
        return np.rint(v * (self.levels - 1)).astype(np.uint16)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float array -> ``uint16`` codes in ``[0, 2**bits - 1]`` (same shape)."""
        check_is_fitted(self, msg=_NOT_FITTED)
        a = np.asarray(x)
        _check_finite(a, "input to quantize")
        return self._codes_from_float64(a.astype(np.float64))

    def dequantize(self, codes: np.ndarray) -> np.ndarray:
        """Integer codes -> float32 values (same shape); exact inverse of :meth:`quantize` on codes."""
        check_is_fitted(self, msg=_NOT_FITTED)
        c = np.asarray(codes)
        if not np.issubdtype(c.dtype, np.integer):
            raise ValueError(f"codes have dtype {c.dtype}; pass integer codes (uint8/uint16) from quantize or a decoder")
        if c.size and (int(c.min()) < 0 or int(c.max()) >= self.levels):
            raise ValueError(
                f"codes span [{int(c.min())}, {int(c.max())}] but a {self.bits}-bit quantizer has codes "
                f"0..{self.levels - 1}; check the codec bit depth"
            )
        return self.table_[c.astype(np.intp)]

    def transform(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn name of :meth:`quantize`."""
        return self.quantize(X)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn name of :meth:`dequantize`."""
        return self.dequantize(X)

    def _build_table(self) -> np.ndarray:
        """float32 value per code, nudged so that every code re-quantizes to itself."""
        q = np.arange(self.levels)
        u = np.clip(self._inverse_curve(q / (self.levels - 1)), 0.0, 1.0)
        table = (self.xmin_ + u * (self.xmax_ - self.xmin_)).astype(np.float32)
        for _ in range(64):
            back = self._codes_from_float64(table.astype(np.float64)).astype(np.int64)
            wrong = back != q
            if not wrong.any():
                break
            direction = np.where(back[wrong] < q[wrong], np.inf, -np.inf).astype(np.float32)
            table[wrong] = np.nextafter(table[wrong], direction)
        else:
            raise ValueError(
                f"{self.name} quantizer: range [{self.xmin_}, {self.xmax_}] is too narrow for float32 at "
                f"this offset to give {self.levels} distinct values; widen the range or use fewer bits"
            )
        return table

    # ----------------------------------------------------------- channel order and side information
    def permuted(self, order: Any) -> "Quantizer":
        """The quantizer for features whose channels were reordered by ``order``: itself (one global range).

        Per-channel quantizers (:class:`codec.normalize.ChannelQuantizer`) return a copy
        whose per-channel parameters follow ``order``.
        """
        return self

    def side_bits(self, n_channels: int) -> int:
        """Bits of side information each coded image carries: 0 (the range is fixed and known to the decoder)."""
        return 0

    # ----------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description, including the range when there is one.

        The range is the fitted one, else a fixed one (``xmin`` and ``xmax`` both
        given, which :meth:`fit` would keep), else None; keys and the order of
        ``params`` are fixed (this dict is part of stored cell keys).
        """
        d: dict[str, Any] = {"format": "fcm-quantizer", "version": 1, "name": self.name,
                             "params": self._ordered_params()}
        if self.is_fitted:
            d["range"] = [self.xmin_, self.xmax_]
        elif self.xmin is not None and self.xmax is not None:
            d["range"] = [float(self.xmin), float(self.xmax)]
        else:
            d["range"] = None
        return d

    def _restore(self, d: dict[str, Any]) -> "Quantizer":
        """Fitted state from :meth:`to_dict` output (its ``range``); called by :func:`quantizer_from_dict`."""
        rng = d.get("range")
        if rng is not None:
            lo, hi = (float(v) for v in rng)
            if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
                raise ValueError(f"quantizer range {rng!r} is invalid; need finite xmin < xmax")
            self._fit_range(lo, hi)
        return self


ROUNDINGS = ("nearest", "floor")


@QUANTIZERS.register("uniform")
class UniformQuantizer(Quantizer):
    """Equal steps over the fitted range: ``v = u``.

    Two options make it the MPEG anchors' conversion (CompressAI-Vision's
    ``min_max_normalization``, FCTM's ``conversion``; see :mod:`codec.pipelines`):

    * ``rounding="floor"``: ``q = floor(u * (2**bits - 1))`` computed in float32 the way their
      torch code computes it (``u = clip((x - xmin) / (xmax - xmin), 0, 1)`` with float32
      operands), so every code equals theirs; ``"nearest"`` (default) rounds in float64. Floor
      puts each reconstruction at the bottom of its step (the anchors dequantize with
      ``xmin + q / (2**bits - 1) * (xmax - xmin)``, which :meth:`dequantize` gives up to the
      float32 nudge that keeps the inverse exact).
    * ``per_image=True``: the range is measured on each quantized array (FCTM v1: min and max of
      the packed frame, sent as two float32 numbers), so :meth:`side_bits` is 64 per image;
      :meth:`quantize` remembers it in ``side_`` and :meth:`dequantize` uses it unless given
      ``side=(xmin, xmax)``. :meth:`fit` still fits (and ``to_dict`` records) the calibration range.

    Both are left out of :meth:`to_dict` at their defaults, so existing uniform quantizers keep their stored keys.
    """

    name = "uniform"
    _extra_params = ("rounding", "per_image")

    def __init__(self, bits: int = 8, percentile: float = 100.0, xmin: float | None = None,
                 xmax: float | None = None, rounding: str = "nearest", per_image: bool = False):
        self.rounding = rounding
        self.per_image = per_image
        super().__init__(bits=bits, percentile=percentile, xmin=xmin, xmax=xmax)

    def _check_params(self):
        super()._check_params()
        if self.rounding not in ROUNDINGS:
            raise ValueError(f"uniform quantizer: rounding={self.rounding!r}; use one of {', '.join(ROUNDINGS)}")
        if not isinstance(self.per_image, bool):
            raise ValueError(f"uniform quantizer: per_image={self.per_image!r}; use true or false")
        if self.per_image and (self.xmin is not None or self.xmax is not None):
            raise ValueError("uniform quantizer: per_image=true measures the range on each image; leave xmin and "
                             "xmax unset")

    def _ordered_params(self) -> dict[str, Any]:
        out = super()._ordered_params()
        for key, default in (("rounding", "nearest"), ("per_image", False)):
            if out[key] == default:  # stored cell keys of plain uniform quantizers stay as they were
                del out[key]
        return out

    def _curve(self, u):
        return u

    def _inverse_curve(self, v):
        return v

    def _codes_from_float64(self, x: np.ndarray) -> np.ndarray:
        if self.rounding != "floor":
            return super()._codes_from_float64(x)
        # float32 operands, as the anchors' torch code: float64 would move ~4 codes in 1e5 across a step edge
        lo = np.float32(self.xmin_)
        span = np.float32(self.xmax_ - self.xmin_)
        u = np.clip((np.asarray(x).astype(np.float32) - lo) / span, np.float32(0), np.float32(1))
        return np.floor(u * np.float32(self.levels - 1)).astype(np.uint16)

    def _build_table(self) -> np.ndarray:
        """Floor: the anchors' inverse ``xmin + q / (2**bits - 1) * span`` per code, moved where float32 rounds it
        out of its step to the nearest value that is inside (a bisection between it and the step's middle:
        near 0 a float32 ulp is far too small a nudge when ``xmin`` is large)."""
        if self.rounding != "floor":
            return super()._build_table()
        q = np.arange(self.levels)
        span = self.xmax_ - self.xmin_
        table = (self.xmin_ + q / (self.levels - 1) * span).astype(np.float32)
        wrong = self._codes_from_float64(table).astype(np.int64) != q
        if wrong.any():
            idx = np.flatnonzero(wrong)
            bad = table[idx].astype(np.float64)
            good = self.xmin_ + (idx + 0.5) / (self.levels - 1) * span  # the middle of the step (above xmax for the top code)
            good = good.astype(np.float32).astype(np.float64)
            for _ in range(200):
                mid = ((bad + good) / 2).astype(np.float32).astype(np.float64)
                stuck = (mid == bad) | (mid == good)
                if stuck.all():
                    break
                inside = self._codes_from_float64(mid).astype(np.int64) == idx
                good = np.where(~stuck & inside, mid, good)
                bad = np.where(~stuck & ~inside, mid, bad)
            table[idx] = good.astype(np.float32)
        if not np.array_equal(self._codes_from_float64(table), q):
            raise ValueError(f"{self.name} quantizer: range [{self.xmin_}, {self.xmax_}] is too narrow for float32 at "
                             f"this offset to give {self.levels} distinct values; widen the range or use fewer bits")
        return table

    # ----------------------------------------------------------- per image
    def side_bits(self, n_channels: int) -> int:
        """64 bits per image (float32 min and max) with ``per_image``, else 0."""
        return 64 if self.per_image else 0

    def _for_range(self, side) -> "UniformQuantizer":
        """A copy fitted to one image's range ``side = (xmin, xmax)`` (float32 values, as sent)."""
        lo, hi = (float(np.float32(v)) for v in side)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"per-image range {side!r} is invalid; need finite xmin < xmax (from quantize)")
        out = copy.copy(self)
        out.__dict__ = {k: v for k, v in self.__dict__.items() if not k.endswith("_")}
        return out._fit_range(lo, hi)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float array -> codes; with ``per_image`` over the array's own range (kept in ``side_``)."""
        if not self.per_image:
            return super().quantize(x)
        check_is_fitted(self, msg=_NOT_FITTED)
        a = np.asarray(x)
        _check_finite(a, "input to quantize")
        if a.size == 0:
            raise ValueError("input to quantize is empty; give a non-empty feature array")
        lo, hi = self._range_of([a])
        lo32, hi32 = np.float32(lo), np.float32(hi)
        if not hi32 > lo32:  # a range float32 cannot hold apart: widen it as a constant image's
            hi32 = np.float32(float(lo32) + max(1.0, abs(float(lo32))))
        side = (lo32, hi32)
        codes = Quantizer.quantize(self._for_range(side), a)
        self.side_ = side
        return codes

    def dequantize(self, codes: np.ndarray, side: tuple | None = None) -> np.ndarray:
        """Codes -> float32 values; with ``per_image`` over ``side`` (default: the last quantized image's)."""
        if not self.per_image:
            return super().dequantize(codes)
        check_is_fitted(self, msg=_NOT_FITTED)
        side = getattr(self, "side_", None) if side is None else side
        if side is None:
            raise ValueError("per-image uniform quantizer: dequantize needs the image's (xmin, xmax); quantize the "
                             "image first or pass side=(xmin, xmax)")
        return Quantizer.dequantize(self._for_range(side), codes)
