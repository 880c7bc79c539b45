"""Channel orderers with scikit-learn conventions.

Every orderer stores its parameters in ``__init__`` (nothing else happens there),
learns in ``fit(calib)`` from an iterable of float [C, H, W] calibration features
(read once as a stream, never stacked), and exposes ``permutation_`` (int64 order,
``order[k]`` = original channel at position k) and ``n_channels_``. Orderers that
build a channel distance matrix also keep ``distance_`` and ``tour_cost_`` (the
open path cost of the learned order under that distance), so orders can be compared.

    from reorder import make_orderer
    orderer = make_orderer("tsp-correlation").fit(calib)
    y = orderer.transform(x)                  # x[..., order, :, :]
    x_back = orderer.inverse_transform(y)
    orderer.to_permutation(model="mobilenet_v2", layer="features.4.conv.0").save("order.json")

``make_orderer`` builds them from names such as ``"tsp-mse"`` or
``"tsp-correlation:normalization=zscore,solver=lkh"`` (used by the studies' ``--orders``).
"""

from __future__ import annotations

import inspect
import os
import time
from typing import Any, Iterable

import numpy as np

from .permutation import Permutation, package_version, validate_order
from .similarity import (
    METRICS,
    NORMALIZATIONS,
    SimilarityAccumulator,
    check_choice,
    affinity,
    as_numpy_features,
    check_finite,
)
from .tsp import canonical_solver, path_cost, solve_path

# --------------------------------------------------------------------------------------------- base


class NotFittedError(ValueError, AttributeError):
    """The orderer was used before ``fit``."""


def _iter_checked(calib: Iterable[Any]):
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


def _one_shot(calib: Any) -> bool:
    try:
        return iter(calib) is calib
    except TypeError:
        return False


class BaseOrderer:
    """Shared plumbing: parameters from the ``__init__`` signature, transforms, provenance."""

    #: registry name set by :func:`make_orderer` (recorded in provenance); class name otherwise
    name: str | None = None

    @classmethod
    def _param_names(cls) -> list[str]:
        sig = inspect.signature(cls.__init__)
        return [p.name for p in sig.parameters.values() if p.name != "self" and p.kind != p.VAR_KEYWORD]

    def get_params(self, deep: bool = True) -> dict:
        """The constructor parameters and their current values."""
        return {k: getattr(self, k) for k in self._param_names()}

    def set_params(self, **params: Any) -> "BaseOrderer":
        """Change constructor parameters (takes effect at the next ``fit``); unknown names raise ValueError."""
        valid = self._param_names()
        for key, value in params.items():
            if key not in valid:
                raise ValueError(f"{type(self).__name__} has no parameter {key!r}; valid: {', '.join(valid)}")
            setattr(self, key, value)
        return self

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

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
        for _, x in _iter_checked(calib):
            n_channels = x.shape[0] if n_channels is None else n_channels
            count += 1
        if count == 0:
            raise ValueError("fit got no calibration images; give at least one [C, H, W] feature array")
        return int(n_channels), count

    def _check_fitted(self) -> None:
        if getattr(self, "permutation_", None) is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted yet; call fit(calibration_features) first")

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
        return Permutation(self.permutation_.copy(), {**self.provenance(), **provenance})


# --------------------------------------------------------------------------------------------- simple orders


class IdentityOrder(BaseOrderer):
    """Channels in their original order: the anchor every learned order is compared against."""

    def __init__(self):
        pass

    def fit(self, calib, y=None):
        n, count = self._scan(calib)
        self._set_order(np.arange(n), n, count)
        return self


class RandomOrder(BaseOrderer):
    """A uniformly random order drawn with ``seed`` (a control: any gain it shows is noise)."""

    def __init__(self, seed: int = 0):
        self.seed = seed

    def fit(self, calib, y=None):
        n, count = self._scan(calib)
        self._set_order(np.random.default_rng(self.seed).permutation(n), n, count)
        return self


class FixedOrder(BaseOrderer):
    """A given order (e.g. the hand-made "subjective" one): a list/array, a Permutation, or an order file path.

    ``fit`` only checks that it is a bijection matching the calibration features' channel count.
    """

    def __init__(self, order_or_path: Any = None):
        self.order_or_path = order_or_path

    def _load(self, n_channels: int | None) -> Permutation:
        src = self.order_or_path
        if src is None:
            raise ValueError("FixedOrder needs order_or_path: a list of channel indices or the path of an order file")
        if isinstance(src, Permutation):
            validate_order(src.order, n_channels, source="FixedOrder order")
            return src
        if isinstance(src, (str, os.PathLike)):
            return Permutation.load(src, n_channels=n_channels)
        return Permutation(validate_order(src, n_channels, source="FixedOrder order"), {})

    def fit(self, calib, y=None):
        n, count = self._scan(calib)
        self.source_permutation_ = self._load(n)
        self._set_order(self.source_permutation_.order.copy(), n, count)
        return self

    def provenance(self) -> dict:
        out = super().provenance()
        src = getattr(self, "source_permutation_", None)
        if src is not None and src.provenance:
            out["source_provenance"] = src.provenance
        if isinstance(self.order_or_path, (str, os.PathLike)):
            out["orderer_params"]["order_or_path"] = os.fspath(self.order_or_path)
        elif not isinstance(self.order_or_path, (str, type(None))):
            out["orderer_params"]["order_or_path"] = np.asarray(
                getattr(self.order_or_path, "order", self.order_or_path)).tolist()
        return out


SORT_STATISTICS = ("mean", "variance", "energy", "sparsity")


class SortOrder(BaseOrderer):
    """Channels sorted by a per-channel statistic over the calibration set (ascending unless ``descending``).

    ``mean``, ``variance`` (pooled over all pixels and images), ``energy`` (mean square)
    or ``sparsity`` (fraction of values with ``|x| <= zero_tol``). Ties keep index order.
    """

    def __init__(self, statistic: str = "mean", descending: bool = False, zero_tol: float = 1e-6):
        self.statistic = statistic
        self.descending = descending
        self.zero_tol = zero_tol

    def fit(self, calib, y=None):
        stat = check_choice(self.statistic, SORT_STATISTICS, "sort statistic")
        s1 = s2 = zeros = None
        count = 0
        pixels = 0
        for _, x in _iter_checked(calib):
            flat = x.reshape(x.shape[0], -1).astype(np.float64)
            if s1 is None:
                s1 = np.zeros(x.shape[0])
                s2 = np.zeros(x.shape[0])
                zeros = np.zeros(x.shape[0])
            s1 += flat.sum(axis=1)
            s2 += (flat * flat).sum(axis=1)
            zeros += (np.abs(flat) <= self.zero_tol).sum(axis=1)
            pixels += flat.shape[1]
            count += 1
        if count == 0:
            raise ValueError("fit got no calibration images; give at least one [C, H, W] feature array")
        mean = s1 / pixels
        values = {
            "mean": mean,
            "energy": s2 / pixels,
            "variance": np.maximum(s2 / pixels - mean * mean, 0.0),
            "sparsity": zeros / pixels,
        }[stat]
        self.statistic_values_ = values
        key = -values if self.descending else values
        self._set_order(np.argsort(key, kind="stable"), values.size, count)
        return self


# --------------------------------------------------------------------------------------------- distance-based


class _DistanceOrderer(BaseOrderer):
    """Orderers that first build a channel distance matrix (``distance_``) over the calibration set."""

    metric: str
    normalization: str
    quantizer: Any
    downsample: int

    def _resolve_quantizer(self, calib):
        """The quantizer for ``normalization='quantized'``: given (fitted if needed) or codec's by name."""
        q = self.quantizer if self.quantizer is not None else "uniform"
        if isinstance(q, str) or (hasattr(q, "fit") and getattr(q, "is_fitted", True) is False):
            if _one_shot(calib):
                raise ValueError(
                    "normalization='quantized' must fit its quantizer on the calibration set first and then read "
                    "it again: pass a list or other re-iterable set, or a fitted quantizer"
                )
            if isinstance(q, str):
                from codec import make_quantizer  # imported only here: reorder does not depend on codec

                q = make_quantizer(q)
            q = q.fit(calib)
        if not hasattr(q, "quantize"):
            raise ValueError(f"quantizer {q!r} has no quantize(x) method")
        return q

    def _distance(self, calib) -> tuple[np.ndarray, int]:
        metric = check_choice(self.metric, METRICS, "metric")
        normalization = check_choice(self.normalization, NORMALIZATIONS, "normalization")
        q = self._resolve_quantizer(calib) if normalization == "quantized" else None
        self.quantizer_ = q
        acc = SimilarityAccumulator(metric, normalization, q, self.downsample)
        for i, x in _iter_checked(calib):
            acc.update(x, index=i)
        if acc.n_images == 0:
            raise ValueError("fit got no calibration images; give at least one [C, H, W] feature array")
        D = acc.distance()
        self.distance_ = D
        return D, acc.n_images


class TSPOrder(_DistanceOrderer):
    """Shortest open path through the channels under a similarity distance (the order of measured.md's best result).

    ``metric`` (``correlation`` = 1 - Pearson r, ``mse``, ``cosine``, ``ssim``), ``normalization``
    (``none``, ``minmax``, ``zscore``, ``quantized`` with ``quantizer``), ``solver`` (see
    :data:`reorder.tsp.SOLVERS`), ``start`` (force the first channel), ``seed`` and
    ``time_budget`` for the solver, ``downsample`` for the similarity pass.
    """

    def __init__(self, metric: str = "correlation", normalization: str = "none", solver: str = "default",
                 start: int | None = None, quantizer: Any = None, downsample: int = 1, seed: int = 0,
                 time_budget: float | None = None):
        self.metric = metric
        self.normalization = normalization
        self.solver = solver
        self.start = start
        self.quantizer = quantizer
        self.downsample = downsample
        self.seed = seed
        self.time_budget = time_budget

    def fit(self, calib, y=None):
        canonical_solver(self.solver)  # fail before the (slow) similarity pass
        D, count = self._distance(calib)
        res = solve_path(D, solver=self.solver, start=self.start, seed=self.seed, time_budget=self.time_budget)
        self._set_order(res.path, D.shape[0], count)
        self.tour_cost_ = float(res.cost)
        self.solver_used_ = res.solver
        self.solve_seconds_ = round(float(res.seconds), 4)
        return self


class SpectralOrder(_DistanceOrderer):
    """Channels sorted by the Fiedler vector of the similarity graph's Laplacian (spectral seriation).

    Graph weights are ``exp(-D / median(D))``; the Fiedler vector is the eigenvector of the
    second-smallest eigenvalue of ``L = diag(W 1) - W`` (or the symmetric normalised
    Laplacian with ``normalized=True``). Its sign is fixed so that the largest entry is
    positive, making the order deterministic.
    """

    def __init__(self, metric: str = "correlation", normalization: str = "none", normalized: bool = False,
                 quantizer: Any = None, downsample: int = 1):
        self.metric = metric
        self.normalization = normalization
        self.normalized = normalized
        self.quantizer = quantizer
        self.downsample = downsample

    def fit(self, calib, y=None):
        from scipy.linalg import eigh

        D, count = self._distance(calib)
        n = D.shape[0]
        if n < 3:
            order = np.arange(n)
        else:
            W = affinity(D)
            deg = W.sum(axis=1)
            if self.normalized:
                inv = np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
                L = np.eye(n) - inv[:, None] * W * inv[None, :]
            else:
                L = np.diag(deg) - W
            _, vecs = eigh(L, subset_by_index=[1, 1])
            f = vecs[:, 0]
            if self.normalized:
                f = f * np.where(deg > 0, 1.0 / np.sqrt(np.maximum(deg, 1e-300)), 0.0)
            if f[np.argmax(np.abs(f))] < 0:
                f = -f
            self.fiedler_ = f
            order = np.argsort(f, kind="stable")
        self._set_order(order, n, count)
        self.tour_cost_ = path_cost(D, self.permutation_)
        return self


CLUSTER_METHODS = ("single", "complete", "average", "weighted", "ward")


class ClusterOrder(_DistanceOrderer):
    """Leaf order of a hierarchical clustering of the channels, with scipy's optimal leaf ordering.

    ``method`` is the linkage (``average`` by default; ``ward`` assumes Euclidean-like
    distances). The optimal leaf ordering minimises the summed distance of adjacent leaves
    among all orders the dendrogram allows.
    """

    def __init__(self, metric: str = "correlation", normalization: str = "none", method: str = "average",
                 quantizer: Any = None, downsample: int = 1):
        self.metric = metric
        self.normalization = normalization
        self.method = method
        self.quantizer = quantizer
        self.downsample = downsample

    def fit(self, calib, y=None):
        from scipy.cluster.hierarchy import leaves_list, linkage, optimal_leaf_ordering
        from scipy.spatial.distance import squareform

        method = check_choice(self.method, CLUSTER_METHODS, "linkage method")
        D, count = self._distance(calib)
        n = D.shape[0]
        if n < 3:
            order = np.arange(n)
        else:
            y_ = squareform(D, checks=False)
            Z = optimal_leaf_ordering(linkage(y_, method=method), y_)
            order = leaves_list(Z)
        self._set_order(order, n, count)
        self.tour_cost_ = path_cost(D, self.permutation_)
        return self


# --------------------------------------------------------------------------------------------- registry


def _coerce(text: str) -> Any:
    t = text.strip()
    low = t.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for cast in (int, float):
        try:
            return cast(t)
        except ValueError:
            pass
    return t


def parse_name(name: str) -> tuple[str, dict]:
    """``"tsp-correlation:normalization=zscore,solver=lkh"`` -> ``("tsp-correlation", {...})``."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"an orderer name must be a non-empty string, got {name!r}")
    base, _, opts = name.strip().partition(":")
    kwargs = {}
    if opts.strip():
        for part in opts.split(","):
            key, eq, value = part.partition("=")
            if not eq or not key.strip():
                raise ValueError(
                    f"orderer name {name!r}: option {part!r} is not key=value; "
                    "write e.g. 'tsp-correlation:normalization=zscore,solver=lkh'"
                )
            kwargs[key.strip()] = _coerce(value)
    return base.strip().lower(), kwargs


_FAMILIES = {"tsp": TSPOrder, "spectral": SpectralOrder, "cluster": ClusterOrder}

#: per-name defaults beyond the metric: SSIM costs C**2/2 windowed passes, so it works on 2x downsampled maps
_NAME_DEFAULTS = {"ssim": {"downsample": 2}}

ORDER_NAMES: list[str] = (
    ["identity", "random"]
    + [f"sort-{s}" for s in SORT_STATISTICS]
    + [f"tsp-{m}" for m in ("correlation", "mse", "cosine", "ssim")]
    + [f"spectral-{m}" for m in ("correlation", "mse")]
    + [f"cluster-{m}" for m in ("correlation", "mse")]
)
"""The standard orderer names :func:`make_orderer` knows (options can be appended: ``name:key=value,...``)."""


def make_orderer(name: str, **overrides: Any) -> BaseOrderer:
    """Build an orderer from a registry name with optional ``:key=value,...`` options.

    Names: ``identity``, ``random``, ``sort-<mean|variance|energy|sparsity>``,
    ``<tsp|spectral|cluster>-<mse|correlation|cosine|ssim>``, ``fixed:order_or_path=FILE``
    (alias ``file:FILE``). Keyword arguments override the name's options. Unknown names or
    options raise ValueError listing the valid ones.
    """
    if isinstance(name, str) and name.strip().lower().startswith("file:"):
        return make_orderer("fixed", order_or_path=name.strip()[5:], **overrides)
    base, kwargs = parse_name(name)
    kwargs.update(overrides)
    if base == "identity":
        cls, defaults = IdentityOrder, {}
    elif base == "random":
        cls, defaults = RandomOrder, {}
    elif base == "fixed":
        cls, defaults = FixedOrder, {}
        if "path" in kwargs:
            kwargs["order_or_path"] = kwargs.pop("path")
    elif base.startswith("sort-") or base == "sort":
        cls, defaults = SortOrder, ({"statistic": base[5:]} if base != "sort" else {})
    elif base.split("-", 1)[0] in _FAMILIES:
        family, _, metric = base.partition("-")
        cls = _FAMILIES[family]
        defaults = {}
        if metric:
            defaults["metric"] = check_choice(metric, METRICS, "metric")
            defaults.update(_NAME_DEFAULTS.get(defaults["metric"], {}))
    else:
        raise ValueError(
            f"unknown orderer {name!r}; valid names: {', '.join(ORDER_NAMES)}, fixed:path=FILE "
            "(options as 'name:key=value,...')"
        )
    params = {**defaults, **kwargs}
    valid = cls._param_names()
    unknown = [k for k in params if k not in valid]
    if unknown:
        raise ValueError(f"orderer {base!r} has no option {unknown[0]!r}; valid options: {', '.join(valid)}")
    orderer = cls(**params)
    _validate(orderer)
    orderer.name = name if isinstance(name, str) else base
    return orderer


def _validate(orderer: BaseOrderer) -> None:
    """Check choice-valued parameters early (make_orderer), so a typo fails before any data is read."""
    p = orderer.get_params()
    if "metric" in p:
        check_choice(p["metric"], METRICS, "metric")
    if "normalization" in p:
        check_choice(p["normalization"], NORMALIZATIONS, "normalization")
    if "solver" in p:
        canonical_solver(p["solver"])
    if "statistic" in p:
        check_choice(p["statistic"], SORT_STATISTICS, "sort statistic")
    if "method" in p:
        check_choice(p["method"], CLUSTER_METHODS, "linkage method")
