"""Model adapters by name: ``make_model("mobilenet_v2")`` (default) or ``make_model("detectron2", ...)``.

Adapters are imported lazily, so importing :mod:`eval.models` loads neither
torch nor detectron2; each adapter module is imported only when asked for.
"""

from __future__ import annotations

import importlib

from eval.models.base import ModelAdapter, TaskMetric

__all__ = ["make_model", "MODEL_NAMES", "DEFAULT_MODEL", "ModelAdapter", "TaskMetric"]

_REGISTRY = {
    "mobilenet_v2": ("eval.models.mobilenet", "MobileNetV2Adapter"),
    "detectron2": ("eval.models.detectron2", "Detectron2Adapter"),
}

MODEL_NAMES = tuple(_REGISTRY)
DEFAULT_MODEL = "mobilenet_v2"


def make_model(name: str = DEFAULT_MODEL, **kwargs) -> ModelAdapter:
    """Build the adapter registered as ``name`` with ``kwargs`` passed to its constructor."""
    key = str(name).strip().lower().replace("-", "_")
    if key == "mobilenetv2":
        key = "mobilenet_v2"
    if key not in _REGISTRY:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)}")
    module_name, class_name = _REGISTRY[key]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        hint = " (install it with: python -m eval.install --detectron2)" if key == "detectron2" else ""
        raise ImportError(f"model {key!r} is unavailable: {exc}{hint}") from exc
    return getattr(module, class_name)(**kwargs)
