"""Distortion and rate metrics for coded feature maps.

* :func:`mse` - mean squared error between two arrays (computed in float64).
* :func:`feature_psnr` - PSNR of reconstructed features against the originals.
* :func:`bits_per_pixel` - bitstream bits per *input image* pixel, the MPEG
  VCM / FCM convention: the bits are totalled over a set and divided by the
  total number of pixels of the original images (not of the feature maps), so
  bpp values are comparable across split points and models.

Why the PSNR peak defaults to the dynamic range of the reference
-----------------------------------------------------------------
Features are real-valued with no natural peak like 255 for 8-bit video.
Using ``ref.max() - ref.min()`` of the *reference* features (never of the
reconstruction, which would let the codec move its own yardstick) makes the
PSNR invariant to an offset and a common scale of the features, and makes it
comparable with the PSNR of the quantised codes when the quantiser's range is
the feature range. Callers comparing across images with a fixed range (e.g. the
fitted quantiser range) should pass ``peak`` explicitly.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["mse", "feature_psnr", "mse_and_psnr", "bits_per_pixel"]


def _pair(ref, rec) -> tuple[np.ndarray, np.ndarray]:
    ref = np.asarray(ref)
    rec = np.asarray(rec)
    if ref.shape != rec.shape:
        raise ValueError(
            f"reference shape {ref.shape} != reconstruction shape {rec.shape}; "
            "compare features of the same image and layer (undo padding and permutation first)"
        )
    if ref.size == 0:
        raise ValueError("empty arrays: nothing to compare; pass non-empty feature maps")
    return ref.astype(np.float64, copy=False), rec.astype(np.float64, copy=False)


def mse(ref, rec) -> float:
    """Mean squared error between ``ref`` and ``rec`` (same shape), in float64.

    Raises ``ValueError`` for mismatched shapes, empty input or non-finite values.
    """
    a, b = _pair(ref, rec)
    d = a - b
    value = float(np.mean(d * d))
    if not math.isfinite(value):
        raise ValueError("MSE is not finite: the inputs contain NaN or Inf; check the decoder output and features")
    return value


def feature_psnr(ref, rec, peak: float | None = None) -> float:
    """PSNR in dB of ``rec`` against ``ref``: ``10*log10(peak**2 / MSE)``.

    ``peak`` defaults to ``ref.max() - ref.min()`` (see module docstring for why).
    Identical inputs give ``math.inf``. A constant reference with the default
    peak has no dynamic range and raises ``ValueError`` (pass ``peak``).
    """
    return mse_and_psnr(ref, rec, peak)[1]


def mse_and_psnr(ref, rec, peak: float | None = None) -> tuple[float, float]:
    """``(MSE, PSNR in dB)`` of ``rec`` against ``ref`` from one pass over the arrays (a cell needs both)."""
    a, b = _pair(ref, rec)
    if peak is None:
        peak = float(a.max() - a.min())
        if not peak > 0:
            raise ValueError(
                "reference features are constant, so their range (the default PSNR peak) is 0; pass peak= explicitly"
            )
    else:
        peak = float(peak)
        if not (math.isfinite(peak) and peak > 0):
            raise ValueError(f"peak must be a finite positive number, got {peak!r}")
    err = mse(a, b)
    if err == 0.0:
        return err, math.inf
    return err, 10.0 * math.log10(peak * peak / err)


def bits_per_pixel(total_bits, total_pixels) -> float:
    """``total_bits / total_pixels``; both totals are summed over the image set by the caller.

    Raises ``ValueError`` for negative bits or non-positive pixel counts.
    """
    bits = float(total_bits)
    pixels = float(total_pixels)
    if not math.isfinite(bits) or bits < 0:
        raise ValueError(f"total_bits must be a finite number >= 0, got {total_bits!r}")
    if not math.isfinite(pixels) or pixels <= 0:
        raise ValueError(f"total_pixels must be a positive number (input image height*width summed), got {total_pixels!r}")
    return bits / pixels
