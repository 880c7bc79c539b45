"""Per-channel affine normalization in front of a shared quantizer curve.

:class:`ChannelQuantizer` (registered as ``"channel"``) maps channel ``c`` of a
``[..., C, H, W]`` array (the channel axis is ``-3``, as in :class:`reorder.Permutation`) to

    n = (x - offset_c) / scale_c

and quantizes ``n`` with one of the global curves of :mod:`codec.quantize`
(``curve=log|uniform|power|mulaw``), whose range is fitted on the *normalized*
calibration data (``percentile`` clips that range as in the global quantizers).
Channels whose values differ in scale by orders of magnitude then all use the
whole code range instead of a few codes of the global one.

Statistics (``stat``), fitted on calibration arrays in one streaming pass:

* ``"pXX"`` (e.g. ``p99.9``): per channel, the mean over calibration arrays of each
  array's ``(100 - XX)``-th and ``XX``-th percentiles (clipped to the exact min/max):
  offset = low end, scale = high - low.
* ``"max"``: the exact per-channel min and max: offset = min, scale = max - min.
* ``"std"``: per-channel mean and standard deviation over all calibration values
  (accumulated array by array with Chan's parallel update): offset = mean, scale = std.

With ``center=False`` the offset is 0 and the scale is ``max(|low|, |high|)``
(``pXX``, ``max``) or the root mean square (``std``): every channel divided by its
own scale, as in "divide each channel by its calibration 99.9th percentile".
A channel with (near) zero spread gets a scale that keeps the code table exact.
Fitting reads the calibration data twice (statistics, then the curve's range over
the normalized values), so pass a sequence (a list, a FeatureSet), not an iterator.

Per image (``per_image=True``): offset and scale are measured on the image being
quantized, rounded to float16 and sent as side information, 2 x 16 bits per
channel (:meth:`ChannelQuantizer.side_bits`); the curve's range is still fitted on
calibration data, each array normalized by its own statistics. :meth:`quantize`
then remembers the image's side information (``side_``), which :meth:`dequantize`
uses unless it is given another one (``side=(offsets, scales)``).

Exact inverse: a float32 table per channel and code, nudged with ``numpy.nextafter``
until every table value re-quantizes to its own code (as the global quantizers do),
so ``dequantize(quantize(dequantize(q))) == dequantize(q)`` for every code.

Channel order: a cell quantizes *permuted* features, so :meth:`permuted` returns a
copy whose per-channel parameters follow the same order (global quantizers return
themselves).
"""
from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
from sklearn.utils.validation import check_is_fitted

from .quantize import _NOT_FITTED, QUANTIZERS, Quantizer, _check_finite, _CodeMapping
from . import quantize_curves  # noqa: F401  (importing it registers the log, power and mu-law curves)

__all__ = ["ChannelQuantizer", "channel_stats"]

#: curve name -> its shape keyword (``None``: no shape)


def _curve_shapes() -> dict[str, str | None]:
    """Every registered global curve -> the keyword of its shape parameter (None: no shape), read from
    the quantizer registry, so a new curve file is wrappable here too."""
    out = {}
    for name in QUANTIZERS.names():
        cls = QUANTIZERS.get(name)
        if not getattr(cls, "per_channel", False):
            out[name] = cls.shape_param[0] if cls.shape_param else None
    return out

_STAT = re.compile(r"^(max|std|p(\d+(?:\.\d*)?))$")
_F16_MAX = float(np.finfo(np.float16).max)
_F16_TINY = float(np.finfo(np.float16).tiny)  # smallest normal float16, 2**-14


def _parse_stat(stat: Any) -> tuple[str, float | None]:
    m = _STAT.match(str(stat).strip().lower()) if isinstance(stat, str) else None
    if m is None:
        raise ValueError(f"channel quantizer: stat={stat!r}; use 'max', 'std' or 'pXX' with 50 < XX <= 100 (e.g. 'p99.9')")
    if m.group(2) is None:
        return m.group(1), None
    p = float(m.group(2))
    if not 50.0 < p <= 100.0:
        raise ValueError(f"channel quantizer: stat={stat!r}; the percentile must be in (50, 100]")
    return "p", p


def _by_channel(a: np.ndarray) -> np.ndarray:
    """``[..., C, H, W]`` -> float64 ``[C, N]``."""
    return np.moveaxis(np.asarray(a, dtype=np.float64), -3, 0).reshape(a.shape[-3], -1)


def _check_channels(a: np.ndarray, n: int | None, what: str) -> None:
    if a.ndim < 3 or (n is not None and a.shape[-3] != n):
        want = f"{n} channels" if n is not None else "channels"
        raise ValueError(f"{what} has shape {a.shape}; the channel quantizer needs [..., C, H, W] arrays with {want} "
                         "on axis -3")


def channel_stats(arrays: Iterable[np.ndarray], stat: str = "p99.9", center: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel ``(offset, scale)`` (float64 ``[C]``) of calibration arrays in one streaming pass.

    See the module docstring for ``stat`` and ``center``. Scales are not yet guarded
    against zero (:meth:`ChannelQuantizer.fit` does that).
    """
    kind, p = _parse_stat(stat)
    n_arrays, n_ch = 0, None
    lo_sum = hi_sum = gmin = gmax = None
    count = mean = m2 = None
    for i, x in enumerate(arrays):
        a = np.asarray(x)
        if a.size == 0:
            raise ValueError(f"calibration array {i} is empty; give non-empty feature arrays")
        _check_channels(a, n_ch, f"calibration array {i}")
        _check_finite(a, f"calibration array {i}")
        v = _by_channel(a)
        if n_ch is None:
            n_ch = v.shape[0]
            gmin, gmax = np.full(n_ch, np.inf), np.full(n_ch, -np.inf)
            lo_sum, hi_sum = np.zeros(n_ch), np.zeros(n_ch)
            count, mean, m2 = 0, np.zeros(n_ch), np.zeros(n_ch)
        gmin, gmax = np.minimum(gmin, v.min(axis=1)), np.maximum(gmax, v.max(axis=1))
        if kind == "p" and p < 100.0:
            lo, hi = np.percentile(v, [100.0 - p, p], axis=1)
            lo_sum += lo
            hi_sum += hi
        elif kind == "std":  # Chan et al.: combine (count, mean, M2) of this array with the running ones
            nb = v.shape[1]
            mb = v.mean(axis=1)
            m2b = ((v - mb[:, None]) ** 2).sum(axis=1)
            delta = mb - mean
            tot = count + nb
            mean = mean + delta * (nb / tot)
            m2 = m2 + m2b + delta ** 2 * (count * nb / tot)
            count = tot
        n_arrays += 1
    if n_arrays == 0:
        raise ValueError("channel quantizer: calibration data is empty; pass at least one array")
    if kind == "std":
        var = m2 / count
        if center:
            return mean, np.sqrt(var)
        return np.zeros_like(mean), np.sqrt(var + mean ** 2)
    if kind == "p" and p < 100.0:
        lo, hi = np.maximum(gmin, lo_sum / n_arrays), np.minimum(gmax, hi_sum / n_arrays)
    else:
        lo, hi = gmin, gmax
    if center:
        return lo, hi - lo
    return np.zeros_like(lo), np.maximum(np.abs(lo), np.abs(hi))


def _guard_scale(offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """Scales that float32 can resolve at their channel's offset; zero spread -> max(1, |offset|)."""
    scale = np.where(np.isfinite(scale) & (scale > 0), scale, 0.0)
    floor = np.maximum(np.abs(offset), 1e-30) * 2.0 ** -8
    return np.where(scale > 0, np.maximum(scale, floor), np.maximum(1.0, np.abs(offset)))


@QUANTIZERS.register("channel", "per-channel")
class ChannelQuantizer(_CodeMapping):
    """Per-channel ``(x - offset_c) / scale_c`` followed by a shared global curve (a scikit-learn estimator).

    Args:
        bits: code depth, 8 or 10.
        percentile: clipping of the curve's range over the normalized calibration
            values, as in the global quantizers (100: exact min/max).
        curve: the shared curve, ``uniform``, ``log``, ``power`` or ``mulaw``.
        stat: per-channel statistic, ``pXX`` (e.g. ``p99.9``), ``max`` or ``std``.
        center: fit an offset per channel (else offset 0, scale only).
        per_image: measure offset and scale on each quantized image and send them
            as side information (32 bits per channel) instead of fitting them once.
        shape: the curve's shape parameter (log's ``shape``, power's ``gamma``,
            mulaw's ``mu``); None for the curve's default.

    Fitted attributes: ``offset_`` and ``scale_`` (float64 ``[C]``; None per image),
    ``curve_`` (the fitted global curve quantizer over normalized values),
    ``table_`` (float32 ``[C, 2**bits]``; None per image), ``n_channels_``,
    ``fitted_params_``. After :meth:`quantize` per image: ``side_`` (float16
    offsets and scales of that image).
    """

    name = "channel"
    #: per-channel parameters: the cell must pass permuted features through :meth:`permuted`
    per_channel = True
    #: no single shape for the tuner to sample (the shape belongs to the wrapped curve)
    shape_param = None

    def __init__(self, bits: int = 8, percentile: float = 100.0, curve: str = "log", stat: str = "p99.9",
                 center: bool = True, per_image: bool = False, shape: float | None = None):
        self.bits = bits
        self.percentile = percentile
        self.curve = curve
        self.stat = stat
        self.center = center
        self.per_image = per_image
        self.shape = shape

    # ----------------------------------------------------------- parameters
    def _curve_kwargs(self) -> dict[str, Any]:
        key = _curve_shapes()[self.curve]
        kw: dict[str, Any] = {"bits": self.bits, "percentile": self.percentile}
        if key is not None and self.shape is not None:
            kw[key] = self.shape
        return kw

    def _check_params(self) -> None:
        shapes = _curve_shapes()
        if self.curve not in shapes:
            raise ValueError(f"channel quantizer: curve={self.curve!r}; use one of {', '.join(shapes)}")
        if self.shape is not None and shapes[self.curve] is None:
            raise ValueError(f"channel quantizer: curve={self.curve!r} takes no shape (got shape={self.shape!r})")
        _parse_stat(self.stat)
        for key in ("center", "per_image"):
            if not isinstance(getattr(self, key), bool):
                raise ValueError(f"channel quantizer: {key}={getattr(self, key)!r}; use true or false")
        self._make_curve()._check_params()  # bits, percentile and shape, with the curve's own messages

    def _make_curve(self) -> Quantizer:
        return QUANTIZERS.get(self.curve)(**self._curve_kwargs())

    def _ordered_params(self) -> dict[str, Any]:
        keys = ("bits", "percentile", "curve", "stat", "center", "per_image", "shape")
        return {key: getattr(self, key) for key in keys}

    def side_bits(self, n_channels: int) -> int:
        """Side information per image: 2 float16 values per channel when fitted per image, else 0."""
        return 32 * int(n_channels) if self.per_image else 0

    # ----------------------------------------------------------- fitting
    def _image_side(self, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float16 offset and scale of one image (what a per-image stream sends)."""
        offset, scale = channel_stats([a], self.stat, self.center)
        if np.any(np.abs(offset) > _F16_MAX):
            raise ValueError(f"channel quantizer: a channel offset of {float(np.abs(offset).max()):.4g} does not fit float16 "
                             "side information; scale the features or use per_image=false")
        scale = np.clip(_guard_scale(offset, scale), _F16_TINY, _F16_MAX)
        o16 = offset.astype(np.float16)
        s16 = scale.astype(np.float16)
        # rounding down may undo the guard: keep the stored scale no smaller than the guarded one
        s16 = np.where(s16.astype(np.float64) < scale, np.nextafter(s16, np.float16(np.inf)), s16)
        return o16, s16

    def fit(self, X: Iterable[np.ndarray], y: Any = None) -> "ChannelQuantizer":
        """Fit offsets and scales (one pass), then the curve's range on the normalized arrays (a second pass).

        ``X``: a sequence of ``[..., C, H, W]`` float arrays, read twice and never stacked.
        """
        self._check_params()
        if isinstance(X, Iterator):
            raise ValueError("channel quantizer: fit reads the calibration data twice; pass a sequence (list, FeatureSet), "
                             "not an iterator")
        for attr in [k for k in vars(self) if k.endswith("_")]:
            del self.__dict__[attr]
        if self.per_image:
            n_ch = None

            def normalized():
                nonlocal n_ch
                for i, x in enumerate(X):
                    a = np.asarray(x)
                    if a.size:
                        _check_channels(a, n_ch, f"calibration array {i}")
                        _check_finite(a, f"calibration array {i}")
                    n_ch = a.shape[-3] if a.ndim >= 3 else n_ch
                    o16, s16 = self._image_side(a)
                    yield self._normalize(a, o16.astype(np.float64), s16.astype(np.float64))

            curve = self._make_curve().fit(normalized())
            return self._set_fitted(None, None, curve, int(n_ch))
        offset, scale = channel_stats(X, self.stat, self.center)
        scale = _guard_scale(offset, scale)
        curve = self._make_curve().fit(self._normalize(np.asarray(x), offset, scale) for x in X)
        return self._set_fitted(offset, scale, curve, offset.shape[0])

    def _set_fitted(self, offset, scale, curve: Quantizer, n_channels: int) -> "ChannelQuantizer":
        for attr in [k for k in vars(self) if k.endswith("_")]:
            del self.__dict__[attr]
        self.curve_ = curve
        self.n_channels_ = int(n_channels)
        if offset is None:
            self.offset_ = self.scale_ = self.table_ = None
        else:
            offset = np.asarray(offset, dtype=np.float64)
            scale = np.asarray(scale, dtype=np.float64)
            self.table_, scale = self._build_table(offset, scale, adjust=True)
            self.offset_, self.scale_ = offset, scale
        self.fitted_params_ = self.get_params(deep=False)
        return self

    # ----------------------------------------------------------- coding
    @staticmethod
    def _normalize(a: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
        shape = (-1, 1, 1)
        return (np.asarray(a, dtype=np.float64) - offset.reshape(shape)) / scale.reshape(shape)

    def _codes(self, a: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
        return self.curve_._codes_from_float64(self._normalize(a, offset, scale))

    def _build_table(self, offset: np.ndarray, scale: np.ndarray, adjust: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """float32 ``[C, levels]`` table with ``quantize(table[c, q]) == q`` for every channel and code.

        With ``adjust``, a channel float32 cannot resolve (tiny scale at a large offset)
        gets its scale doubled until it can; the scales used are returned.
        """
        levels = self.levels
        q = np.arange(levels)
        c = self.curve_
        u = np.clip(c._inverse_curve(q / (levels - 1)), 0.0, 1.0)
        nval = c.xmin_ + u * (c.xmax_ - c.xmin_)  # normalized value of each code
        scale = scale.copy()
        for _attempt in range(8 if adjust else 1):
            table = (offset[:, None] + scale[:, None] * nval[None, :]).astype(np.float32)
            for _ in range(64):
                back = self._codes(table[:, None, :], offset, scale)[:, 0, :].astype(np.int64)
                wrong = back != q[None, :]
                if not wrong.any():
                    return table, scale
                direction = np.where(back[wrong] < np.broadcast_to(q, back.shape)[wrong], np.inf, -np.inf)
                table[wrong] = np.nextafter(table[wrong], direction.astype(np.float32))
            bad = wrong.any(axis=1)
            scale[bad] *= 2.0
        raise ValueError(f"channel quantizer: {int(bad.sum())} channels cannot give {levels} distinct float32 values at "
                         "their offset and scale; use fewer bits or center=true")

    def _check_codes(self, codes: Any) -> np.ndarray:
        c = np.asarray(codes)
        if not np.issubdtype(c.dtype, np.integer):
            raise ValueError(f"codes have dtype {c.dtype}; pass integer codes (uint8/uint16) from quantize or a decoder")
        if c.size and (int(c.min()) < 0 or int(c.max()) >= self.levels):
            raise ValueError(f"codes span [{int(c.min())}, {int(c.max())}] but a {self.bits}-bit quantizer has codes "
                             f"0..{self.levels - 1}; check the codec bit depth")
        _check_channels(c, self.n_channels_, "codes")
        return c

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """Float ``[..., C, H, W]`` -> ``uint16`` codes (same shape); per image it also sets ``side_``."""
        check_is_fitted(self, msg=_NOT_FITTED)
        a = np.asarray(x)
        _check_channels(a, self.n_channels_, "input to quantize")
        _check_finite(a, "input to quantize")
        if not self.per_image:
            return self._codes(a, self.offset_, self.scale_)
        o16, s16 = self._image_side(a)
        self.side_ = (o16, s16)
        return self._codes(a, o16.astype(np.float64), s16.astype(np.float64))

    def dequantize(self, codes: np.ndarray, side: tuple | None = None) -> np.ndarray:
        """Integer codes -> float32 values; exact inverse of :meth:`quantize` on codes.

        Per image, ``side=(offsets, scales)`` (float16, from the stream) defaults to the
        side information of the last :meth:`quantize` call.
        """
        check_is_fitted(self, msg=_NOT_FITTED)
        c = self._check_codes(codes)
        if self.per_image:
            if side is None:
                side = getattr(self, "side_", None)
            if side is None:
                raise ValueError("per-image channel quantizer: dequantize needs the image's side information; quantize "
                                 "the image first or pass side=(offsets, scales)")
            o, s = (np.asarray(v, dtype=np.float16).astype(np.float64) for v in side)
            table, _ = self._build_table(o, s)
        else:
            table = self.table_
        idx = c.astype(np.intp)
        ch = np.arange(self.n_channels_).reshape(-1, 1, 1)
        return table[ch, idx]

    def transform(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn name of :meth:`quantize`."""
        return self.quantize(X)

    def inverse_transform(self, X: np.ndarray) -> np.ndarray:
        """scikit-learn name of :meth:`dequantize`."""
        return self.dequantize(X)

    # ----------------------------------------------------------- channel order
    def permuted(self, order: Any) -> "ChannelQuantizer":
        """A copy whose channel ``i`` has the parameters of channel ``order[i]`` (for features ``x[..., order, :, :]``).

        ``order``: an index array or a :class:`reorder.Permutation`. Per image the
        parameters come from the image itself, so the copy is unchanged.
        """
        check_is_fitted(self, msg=_NOT_FITTED)
        idx = np.asarray(getattr(order, "order", order), dtype=np.int64)
        if idx.shape != (self.n_channels_,) or not np.array_equal(np.sort(idx), np.arange(self.n_channels_)):
            raise ValueError(f"order must be a permutation of {self.n_channels_} channels, got shape {idx.shape}")
        out = copy.deepcopy(self)
        if not self.per_image:
            out.offset_, out.scale_, out.table_ = self.offset_[idx], self.scale_[idx], self.table_[idx]
        return out

    # ----------------------------------------------------------- serialisation
    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable description; fitted: the curve's normalized range, offsets and scales (lists)."""
        d: dict[str, Any] = {"format": "fcm-quantizer", "version": 1, "name": self.name,
                             "params": self._ordered_params(), "range": None}
        if self.is_fitted:
            d["range"] = [self.curve_.xmin_, self.curve_.xmax_]
            d["n_channels"] = self.n_channels_
            d["offsets"] = None if self.offset_ is None else [float(v) for v in self.offset_]
            d["scales"] = None if self.scale_ is None else [float(v) for v in self.scale_]
        return d

    def _restore(self, d: dict[str, Any]) -> "ChannelQuantizer":
        """Fitted state from :meth:`to_dict` output (called by :func:`codec.quantizer_from_dict`)."""
        rng = d.get("range")
        if rng is None:
            return self
        lo, hi = (float(v) for v in rng)
        if not (math.isfinite(lo) and math.isfinite(hi) and hi > lo):
            raise ValueError(f"quantizer range {rng!r} is invalid; need finite xmin < xmax")
        curve = self._make_curve()
        curve._check_params()
        curve._fit_range(lo, hi)
        n = int(d["n_channels"])
        if self.per_image:
            return self._set_fitted(None, None, curve, n)
        offset = np.asarray(d["offsets"], dtype=np.float64)
        scale = np.asarray(d["scales"], dtype=np.float64)
        if offset.shape != (n,) or scale.shape != (n,) or not np.all(np.isfinite(offset)) or not np.all(scale > 0):
            raise ValueError(f"channel quantizer description: need {n} finite offsets and {n} positive scales")
        self._set_fitted(offset, scale, curve, n)
        if not np.array_equal(self.scale_, scale):  # saved scales were already adjusted by fit
            raise ValueError("channel quantizer description: saved scales do not give an exact code table")
        return self
