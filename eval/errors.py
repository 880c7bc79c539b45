"""Exceptions raised by the ``eval`` package.

Each one subclasses the built-in exception a caller would naturally catch
(``ValueError`` for bad data, ``FileNotFoundError`` for a missing file), so
generic handlers keep working, while tests and the runner can tell them apart.
Messages are one line: what is wrong and what to do about it.
"""

from __future__ import annotations

__all__ = ["ImageReadError", "RDCurveError", "FeatureError", "WeightsNotFoundError"]


class ImageReadError(ValueError):
    """An input image is missing, unreadable or not an image (message names the path and the reason)."""


class RDCurveError(ValueError):
    """A rate-distortion curve cannot be used for a Bjøntegaard delta (too few points, NaN, non-monotonic, no overlap)."""


class FeatureError(ValueError):
    """A model head produced unusable features (NaN/Inf, wrong shape or dtype)."""


class WeightsNotFoundError(FileNotFoundError):
    """Model weights are not installed; the message says which command installs them."""
