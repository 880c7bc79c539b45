"""Input checks shared by :mod:`eval.plots`: every problem is a ValueError that says what is wrong.

Channel orders are checked by :func:`reorder.validate_order` (its
:class:`~reorder.PermutationError` is a ValueError).
"""

from __future__ import annotations

import math
import numbers
from typing import Any, Mapping

import numpy as np

from reorder import validate_order

#: how a mosaic scales channels for display (per channel, or one range for all)
DISPLAY_SCALINGS = ("per_channel", "global")


def check_features(features: Any) -> np.ndarray:
    """Return ``features`` as a float64 ``[C, H, W]`` array or raise a ValueError saying why not."""
    arr = np.asarray(features)
    if arr.ndim != 3:
        raise ValueError(
            f"features must be one image's [C, H, W] array, got shape {arr.shape}; "
            "pass a single image (e.g. batch[0]) rather than a batch or a single channel"
        )
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"features must be a real numeric array, got dtype {arr.dtype}")
    if 0 in arr.shape:
        raise ValueError(f"features have an empty dimension (shape {arr.shape}); nothing to draw")
    arr = arr.astype(np.float64, copy=False)
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.argwhere(bad)[0][0])
        raise ValueError(
            f"features contain {int(bad.sum())} NaN/Inf values (first in channel {first}); "
            "replace or drop them before plotting"
        )
    return arr


def check_distance(distance: Any) -> np.ndarray:
    """Return ``distance`` as a finite float64 square ``[C, C]`` matrix or raise a ValueError."""
    arr = np.asarray(distance)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1] or arr.shape[0] < 1:
        raise ValueError(f"distance must be a square [C, C] matrix, got shape {arr.shape}")
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number):
        raise ValueError(f"distance must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(np.float64, copy=False)
    if not np.isfinite(arr).all():
        raise ValueError(
            f"distance contains {int((~np.isfinite(arr)).sum())} NaN/Inf entries; fix the similarity statistics first"
        )
    return arr


def check_normalize(normalize: str) -> str:
    if normalize not in DISPLAY_SCALINGS:
        raise ValueError(f"normalize must be one of {', '.join(DISPLAY_SCALINGS)}, got {normalize!r}")
    return normalize


def check_percentile(percentile: float) -> float:
    if isinstance(percentile, bool) or not isinstance(percentile, numbers.Real) or not 50.0 < float(percentile) <= 100.0:
        raise ValueError(f"percentile must be a number in (50, 100], got {percentile!r} (100 = plain min-max)")
    return float(percentile)


def as_number(value: Any, where: str, allow_none: bool = True) -> float | None:
    """A finite float, or None for None/NaN; anything else is a ValueError naming ``where``."""
    if value is None:
        if allow_none:
            return None
        raise ValueError(f"{where} is missing; expected a number")
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{where} is {value!r}; expected a number or None")
    v = float(value)
    if math.isnan(v):
        return None
    if math.isinf(v):
        raise ValueError(f"{where} is {v}; expected a finite number or None")
    return v


def named_orders(orders: Mapping[str, Any] | None, n_channels: int) -> list[tuple[str, np.ndarray]]:
    """Validated (name, order) pairs with the identity order first (added when absent).

    Names are kept as given (``'tsp-correlation:normalization=zscore'``, ``'file:hand'``).
    """
    if orders is None:
        orders = {}
    if not isinstance(orders, Mapping):
        raise ValueError(f"orders must be a dict name -> order, got {type(orders).__name__}")
    out = [("identity", np.arange(n_channels, dtype=np.int64))]
    for name, order in orders.items():
        checked = validate_order(order, n_channels, source=f"order {str(name)!r}")
        if str(name) == "identity":
            out[0] = ("identity", checked)
        else:
            out.append((str(name), checked))
    return out
