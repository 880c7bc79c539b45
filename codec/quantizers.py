"""Building and restoring any quantizer by name: the front of the :data:`~codec.quantize.QUANTIZERS` registry.

The global curves (:mod:`codec.quantize`) and the per-channel quantizer that wraps them
(:mod:`codec.normalize`) each register where they are defined; this module imports both, so a
name or a saved dict of either kind builds here, and neither of them imports the other's user.
"""
from __future__ import annotations

from typing import Any

from . import normalize  # noqa: F401 - registers the per-channel quantizer
from .quantize import QUANTIZERS, Quantizer
from . import quantize_curves  # noqa: F401  (importing it registers the log, power and mu-law curves)

__all__ = ["make_quantizer", "quantizer_from_dict", "QUANTIZER_NAMES", "CURVE_NAMES"]


def make_quantizer(name: str, **kwargs: Any) -> Quantizer:
    """Build an unfitted quantizer from a name or a ``"name:key=value,..."`` string plus keyword options.

    Example: ``make_quantizer("log:bits=10,percentile=99.9")`` or
    ``make_quantizer("power", gamma=0.4)``. Keyword options override the string's.
    Unknown names or options, and invalid values, raise ValueError at once
    (the constructor itself only stores its arguments).
    """
    q = QUANTIZERS.make(name, **kwargs)
    q._check_params()
    return q


def quantizer_from_dict(d: dict[str, Any]) -> Quantizer:
    """Rebuild a quantizer from its ``to_dict()`` output: fitted when ``d`` has a ``range``."""
    if not isinstance(d, dict) or "name" not in d or "params" not in d:
        raise ValueError("quantizer description must be a dict with 'name' and 'params' (from Quantizer.to_dict())")
    q = make_quantizer(d["name"], **d["params"])
    return q._restore(d)  # each class reads its own fitted state (range; per-channel offsets and scales)


#: Names of the registered quantizers (a snapshot at import; ``QUANTIZERS.names()`` is live).
QUANTIZER_NAMES: tuple[str, ...] = QUANTIZERS.names()
#: The global curves (one range for every channel): what the per-channel quantizer wraps and a
#: tuning study samples from; per-channel quantizers declare ``per_channel = True``.
CURVE_NAMES: tuple[str, ...] = tuple(n for n in QUANTIZER_NAMES if not getattr(QUANTIZERS.get(n), "per_channel", False))
