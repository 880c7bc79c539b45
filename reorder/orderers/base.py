"""What every orderer shares: the :data:`ORDERERS` registry and :class:`BaseOrderer`.

An orderer stores its parameters in ``__init__`` (nothing else happens there), learns in
``fit(calib)`` from an iterable of float [C, H, W] calibration features (read once as a
stream, never stacked), and exposes ``permutation_`` (int64 order, ``order[k]`` = original
channel at position k) and ``n_channels_``; everything it learns ends in ``_``. It is a
scikit-learn estimator (``get_params``, ``set_params``, ``clone``, ``check_is_fitted``).

A new orderer is one new module in :mod:`reorder.orderers` whose class registers itself::

    @ORDERERS.register("mine")
    class MyOrder(BaseOrderer):
        def __init__(self, strength: float = 1.0):
            self.strength = strength

        def fit(self, calib, y=None):
            n, count = self._scan(calib)
            self._set_order(np.arange(n)[::-1], n, count)
            return self

after which ``make_orderer("mine:strength=2")`` builds it.
"""

from __future__ import annotations

import inspect
import time
from typing import Any, ClassVar, Iterable

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from codec.registry import Registry
from codec.version import package_version

from ..permutation import Permutation, validate_order
from ..similarity import as_numpy_features, check_finite

ORDERERS = Registry("orderer", package="reorder.orderers")
"""Every orderer class, filled by ``@ORDERERS.register(name)`` in the modules of :mod:`reorder.orderers`."""

_NOT_FITTED = "%(name)s is not fitted yet; call fit(calibration_features) first"


def iter_checked(calib: Iterable[Any]):
    """Yield (index, [C, H, W] array) for each calibration image, checking shape, channel count and NaN/Inf."""
    if calib is None:
        raise ValueError("fit needs calibration features: an iterable of [C, H, W] arrays")
    if isinstance(calib, np.ndarray) and calib.ndim == 3:
        raise ValueError(
            f"calibration features of shape {calib.shape} look like a single image; pass a list of "
            "[C, H, W] arrays or one [N, C, H, W] array"
        )
    n_channels = None
    for i, x in enumerate(calib):
        x = as_numpy_features(x, i)
        check_finite(x, i)
        if n_channels is None:
            n_channels = x.shape[0]
        elif x.shape[0] != n_channels:
            raise ValueError(
                f"calibration image {i} has {x.shape[0]} channels but earlier images have {n_channels}; "
                "all calibration features must come from the same layer"
            )
        yield i, x


def one_shot(calib: Any) -> bool:
    """Whether ``calib`` is an iterator that can be read only once (a generator, ``iter(list)``)."""
    try:
        return iter(calib) is calib
    except TypeError:
        return False


class BaseOrderer(BaseEstimator):
    """Shared plumbing: transforms, provenance, and the hooks :func:`reorder.make_orderer` uses."""

    #: the name :func:`reorder.make_orderer` built it from (recorded in provenance); class name otherwise
    name: str | None = None
    #: names this class contributes to :data:`reorder.ORDER_NAMES` (``("sort-mean", ...)``)
    standard_names: ClassVar[tuple[str, ...]] = ()
    #: registry: ``"family-value"`` sets this parameter to ``value`` (``tsp-mse`` -> ``metric="mse"``)
    name_arg: ClassVar[str | None] = None
    #: registry: extra defaults per name value (``{"ssim": {"downsample": 2}}``)
    name_defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    #: other spellings of options in names (``fixed:path=FILE`` for ``order_or_path``)
    option_aliases: ClassVar[dict[str, str]] = {}

    @classmethod
    def name_value(cls, value: str) -> Any:
        """The canonical parameter value for the ``value`` of a ``family-value`` name (checked early)."""
        return value

    def check_params(self) -> None:
        """Check choice-valued parameters (called by make_orderer, so a typo fails before any data is read)."""

    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters and their values, in ``__init__`` order.

        This dict is saved as ``orderer_params`` in order provenance and compared when a
        saved order is reused, so it is never expanded into nested ``quantizer__bits``
        entries (``deep`` is accepted for scikit-learn and has no effect).
        """
        params = super().get_params(deep=False)
        names = inspect.signature(type(self).__init__).parameters
        return {k: params[k] for k in names if k in params}

    def __sklearn_clone__(self):
        """scikit-learn's clone (same parameters, nothing learned) that keeps the make_orderer name."""
        new = super().__sklearn_clone__()
        if "name" in vars(self):
            new.name = self.name
        return new

    # -- fitting -----------------------------------------------------------------------------
    def fit(self, calib: Iterable[Any], y: Any = None) -> "BaseOrderer":  # pragma: no cover - abstract
        raise NotImplementedError

    def _set_order(self, order: np.ndarray, n_channels: int, n_images: int) -> None:
        self.permutation_ = validate_order(np.asarray(order, dtype=np.int64), n_channels,
                                           source=f"{type(self).__name__} result")
        self.n_channels_ = int(n_channels)
        self.n_images_ = int(n_images)

    def _scan(self, calib) -> tuple[int, int]:
        """One validating pass (shape, channel count, NaN/Inf); returns (n_channels, n_images)."""
        n_channels, count = None, 0
        for _, x in iter_checked(calib):
            n_channels = x.shape[0] if n_channels is None else n_channels
            count += 1
        if count == 0:
            raise ValueError("fit got no calibration images; give at least one [C, H, W] feature array")
        return int(n_channels), count

    def _check_fitted(self) -> None:
        check_is_fitted(self, "permutation_", msg=_NOT_FITTED)

    # -- using the order ---------------------------------------------------------------------
    def _permutation(self) -> Permutation:
        self._check_fitted()
        return Permutation(self.permutation_, {})

    def transform(self, x: Any) -> Any:
        """Reorder the channel axis (-3) of ``x`` [..., C, H, W] (numpy or torch)."""
        return self._permutation().apply(x)

    def inverse_transform(self, x: Any) -> Any:
        """Undo :meth:`transform`."""
        return self._permutation().invert(x)

    def provenance(self) -> dict:
        """What made this order: orderer, its parameters and fitted summaries (merged into saved files)."""
        self._check_fitted()
        params = {}
        for k, v in self.get_params().items():
            if hasattr(v, "to_dict"):
                v = v.to_dict()
            elif not isinstance(v, (str, int, float, bool, list, tuple, dict, type(None), np.ndarray)):
                v = repr(v)
            params[k] = v
        out = {
            "orderer": self.name or type(self).__name__,
            "orderer_class": type(self).__name__,
            "orderer_params": params,
            "n_channels": self.n_channels_,
            "n_calibration_images": getattr(self, "n_images_", None),
            "package_version": package_version(),
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        for key in ("metric", "normalization", "solver", "statistic", "method"):
            if key in params:
                out[key] = params[key]
        q = getattr(self, "quantizer_", None)
        if q is not None:
            out["quantizer"] = q.to_dict() if hasattr(q, "to_dict") else repr(q)
        for attr in ("tour_cost_", "solver_used_", "solve_seconds_"):
            val = getattr(self, attr, None)
            if val is not None:
                out[attr.rstrip("_")] = val
        return out

    def to_permutation(self, **provenance: Any) -> Permutation:
        """The learned order as a :class:`Permutation`; keyword arguments (model, layer,
        calibration_digest, ...) are added to (and override) the orderer's own provenance."""
        self._check_fitted()
        return Permutation(self.permutation_.copy(), {**self.provenance(), **provenance})
