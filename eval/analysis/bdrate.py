"""Bjøntegaard delta metrics: BD-rate and BD-quality (BD-PSNR) between two RD curves.

Method (both metrics)
---------------------
A rate-distortion curve is a set of (rate, quality) points. Rates are taken in
``log10``; each curve is interpolated, the two interpolants are integrated over
the interval where both curves have data, and the mean gap is reported:

* BD-rate: log-rate as a function of quality, integrated over the common
  quality range; ``(10**mean_gap - 1) * 100`` percent. Negative = the test
  curve needs fewer bits for the same quality.
* BD-quality: quality as a function of log-rate, integrated over the common
  log-rate range; the mean gap in quality units (dB for PSNR). Positive = the
  test curve is better.

Interpolators
-------------
* ``"pchip"`` (default): piecewise cubic Hermite interpolation through every
  point (Fritsch-Carlson/Moler shape-preserving slopes). This is what the
  JCT-VC/JVET common-test-condition Excel sheets use (JCTVC-L1100, JVET-T2010),
  because a single cubic can overshoot between points and give misleading
  deltas. scipy's ``PchipInterpolator`` uses the same interior and end slopes;
  its ``integrate`` is exact for the piecewise cubics.
* ``"cubic"``: the original VCEG-M33 method, one third-order polynomial per
  curve fitted by least squares (an exact interpolation for 4 points), with the
  polynomial integrated analytically.

Validation (what makes a curve unusable)
----------------------------------------
* fewer than 4 points, a length mismatch between rates and qualities,
* NaN/Inf, rates that are not > 0,
* duplicate rates or duplicate qualities,
* non-monotonic curves: after sorting by rate, quality must strictly increase.
  A curve that loses quality when spending more bits is a broken measurement
  (or an unstable metric) and a BD number computed from it is meaningless, so
  it raises :class:`RDCurveError` naming the curve and the offending points,
  unless ``allow_nonmonotonic=True``: then the value is returned and an
  :class:`RDCurveWarning` flags it (for ``"pchip"`` the points are then
  interpolated in quality order, as the JVET sheet would).
* quality (or log-rate) ranges that do not overlap.
"""

from __future__ import annotations

import math
import warnings
from typing import Sequence

import numpy as np

from eval.errors import RDCurveError

__all__ = ["bd_rate", "bd_quality", "bd_psnr", "check_curve", "RDCurveWarning", "METHODS", "MIN_POINTS"]

METHODS = ("pchip", "cubic")
MIN_POINTS = 4


class RDCurveWarning(UserWarning):
    """Issued when a BD value is computed from a curve that failed a check that was waived."""


def _fmt_points(rate: np.ndarray, quality: np.ndarray, idx) -> str:
    return ", ".join(f"#{i} (rate={rate[i]:.6g}, quality={quality[i]:.6g})" for i in idx)


def check_curve(rate: Sequence[float], quality: Sequence[float], name: str = "curve",
                allow_nonmonotonic: bool = False) -> tuple[np.ndarray, np.ndarray, bool]:
    """Validate one RD curve and return ``(rate, quality, monotonic)`` sorted by rate (float64).

    Raises :class:`RDCurveError` (naming ``name`` and the offending points) on
    any problem listed in the module docstring; with ``allow_nonmonotonic=True``
    a non-monotonic curve is returned with ``monotonic=False`` instead.
    """
    try:
        r = np.asarray(rate, dtype=np.float64).ravel()
        q = np.asarray(quality, dtype=np.float64).ravel()
    except (TypeError, ValueError) as exc:
        raise RDCurveError(f"{name} curve: rates and qualities must be numbers ({exc})") from None
    if r.shape != q.shape:
        raise RDCurveError(f"{name} curve: {r.size} rates but {q.size} quality values; give one quality per rate")
    if r.size < MIN_POINTS:
        raise RDCurveError(
            f"{name} curve has {r.size} points; Bjøntegaard deltas need at least {MIN_POINTS} (run more QPs)"
        )
    bad = np.flatnonzero(~(np.isfinite(r) & np.isfinite(q)))
    if bad.size:
        raise RDCurveError(f"{name} curve has NaN/Inf at {_fmt_points(r, q, bad)}; drop or re-run those points")
    bad = np.flatnonzero(r <= 0)
    if bad.size:
        raise RDCurveError(f"{name} curve has non-positive rates at {_fmt_points(r, q, bad)}; rates must be > 0")
    order = np.argsort(r, kind="stable")
    r, q = r[order], q[order]
    dup = np.flatnonzero(np.diff(r) == 0)
    if dup.size:
        i = int(dup[0])
        raise RDCurveError(
            f"{name} curve has the same rate twice: {_fmt_points(r, q, [i, i + 1])}; merge or drop duplicates"
        )
    qs = np.sort(q)
    if np.any(np.diff(qs) == 0):
        i = int(np.flatnonzero(np.diff(qs) == 0)[0])
        v = qs[i]
        same = np.flatnonzero(q == v)
        raise RDCurveError(
            f"{name} curve has the same quality at two rates: {_fmt_points(r, q, same)}; "
            "the rate cannot be interpolated as a function of quality"
        )
    drops = np.flatnonzero(np.diff(q) <= 0)
    monotonic = drops.size == 0
    if not monotonic and not allow_nonmonotonic:
        pairs = "; ".join(_fmt_points(r, q, [i, i + 1]) for i in drops)
        raise RDCurveError(
            f"{name} curve is not monotonic (quality falls as rate rises): {pairs}; "
            "fix the measurement or pass allow_nonmonotonic=True to compute it anyway"
        )
    return r, q, monotonic


def _mean_gap(xa: np.ndarray, ya: np.ndarray, xb: np.ndarray, yb: np.ndarray, method: str,
              axis_name: str, names: tuple[str, str]) -> float:
    """Mean of ``f_b - f_a`` over the common x range, where ``f`` interpolates ``y(x)``."""
    lo = max(xa.min(), xb.min())
    hi = min(xa.max(), xb.max())
    if not hi > lo:
        raise RDCurveError(
            f"{names[0]} {axis_name} range [{xa.min():.6g}, {xa.max():.6g}] and {names[1]} range "
            f"[{xb.min():.6g}, {xb.max():.6g}] do not overlap; choose QPs so the curves overlap"
        )
    if method == "pchip":
        from scipy.interpolate import PchipInterpolator

        def area(x, y):
            o = np.argsort(x)
            return float(PchipInterpolator(x[o], y[o], extrapolate=False).integrate(lo, hi))
    else:
        def area(x, y):
            p = np.polyfit(x, y, 3)
            pi = np.polyint(p)
            return float(np.polyval(pi, hi) - np.polyval(pi, lo))
    return (area(xb, yb) - area(xa, ya)) / (hi - lo)


def _prepare(anchor_rate, anchor_quality, test_rate, test_quality, method, allow_nonmonotonic, names):
    if method not in METHODS:
        raise ValueError(f"unknown BD method {method!r}; use one of {', '.join(METHODS)}")
    ra, qa, mono_a = check_curve(anchor_rate, anchor_quality, names[0], allow_nonmonotonic)
    rb, qb, mono_b = check_curve(test_rate, test_quality, names[1], allow_nonmonotonic)
    for mono, name in ((mono_a, names[0]), (mono_b, names[1])):
        if not mono:
            warnings.warn(f"{name} curve is not monotonic; its Bjøntegaard delta is unreliable", RDCurveWarning,
                          stacklevel=3)
    return ra, qa, rb, qb


def bd_rate(anchor_rate, anchor_quality, test_rate, test_quality, method: str = "pchip", *,
            allow_nonmonotonic: bool = False, names: tuple[str, str] = ("anchor", "test")) -> float:
    """BD-rate in percent of the test curve against the anchor (negative = fewer bits).

    Rates in any unit proportional to bits (bits, bpp, kbps): the unit cancels.
    ``names`` label the two curves in error messages (e.g. ``("identity", "tsp-correlation")``).
    """
    ra, qa, rb, qb = _prepare(anchor_rate, anchor_quality, test_rate, test_quality, method, allow_nonmonotonic, names)
    gap = _mean_gap(qa, np.log10(ra), qb, np.log10(rb), method, "quality", names)
    value = (10.0 ** gap - 1.0) * 100.0
    if not math.isfinite(value):
        raise RDCurveError(f"BD-rate of {names[1]} vs {names[0]} is not finite; check the curves")
    return value


def bd_quality(anchor_rate, anchor_quality, test_rate, test_quality, method: str = "pchip", *,
               allow_nonmonotonic: bool = False, names: tuple[str, str] = ("anchor", "test")) -> float:
    """BD-quality (BD-PSNR for PSNR) of the test curve against the anchor, in quality units (positive = better)."""
    ra, qa, rb, qb = _prepare(anchor_rate, anchor_quality, test_rate, test_quality, method, allow_nonmonotonic, names)
    return _mean_gap(np.log10(ra), qa, np.log10(rb), qb, method, "log10-rate", names)


bd_psnr = bd_quality
"""Alias of :func:`bd_quality` under the name used in the literature."""
