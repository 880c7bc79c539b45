"""Model adapters by name: ``make_model("mobilenet_v2")`` (default) or ``make_model("detectron2", ...)``.

Each adapter registers itself where it is defined (``@MODELS.register("name")``), so a new
model is one new module in this package. Adapter modules import torch and detectron2
only when an adapter is built, so listing the models loads neither.
"""

from __future__ import annotations

from codec.registry import Registry
from eval.models.base import ModelAdapter

__all__ = ["make_model", "MODELS", "DEFAULT_MODEL", "ModelAdapter"]

MODELS = Registry("model", package="eval.models")
DEFAULT_MODEL = "mobilenet_v2"


def make_model(name: str = DEFAULT_MODEL, **kwargs) -> ModelAdapter:
    """Build the adapter registered as ``name`` with ``kwargs`` passed to its constructor."""
    cls = MODELS.get(str(name).strip().lower())
    try:
        return cls(**kwargs)
    except ImportError as exc:
        hint = " (install it with: python -m eval.install --detectron2)" if "detectron2" in str(exc) else ""
        raise ImportError(f"model {name!r} is unavailable: {exc}{hint}") from exc
