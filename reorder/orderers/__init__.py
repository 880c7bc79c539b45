"""Channel orderers with scikit-learn conventions, built by name with :func:`make_orderer`.

Every orderer is a scikit-learn estimator: ``fit(calib)`` learns from an iterable of
float [C, H, W] calibration features (read once as a stream, never stacked) and sets
``permutation_`` (int64 order, ``order[k]`` = original channel at position k) and
``n_channels_``. Orderers that build a channel distance matrix also keep ``distance_``
and ``tour_cost_`` (the open path cost of the learned order under that distance), so
orders can be compared.

    from reorder import make_orderer
    orderer = make_orderer("tsp-correlation").fit(calib)
    y = orderer.transform(x)                  # x[..., order, :, :]
    x_back = orderer.inverse_transform(y)
    orderer.to_permutation(model="mobilenet_v2", layer="features.4.conv.0").save("order.json")

Modules: :mod:`~reorder.orderers.base` (:data:`ORDERERS`, :class:`BaseOrderer`),
:mod:`~reorder.orderers.simple` (identity, random, fixed), :mod:`~reorder.orderers.sort`,
:mod:`~reorder.orderers.distance` (the distance-matrix base), :mod:`~reorder.orderers.tsp`,
:mod:`~reorder.orderers.spectral`, :mod:`~reorder.orderers.cluster`, :mod:`~reorder.orderers.refcost`,
:mod:`~reorder.orderers.grid` (placements for tiled packing: snake, grid, mosaic) and
:mod:`~reorder.orderers.importance` (orders that put important channels at low-QP positions). Each class
registers itself, so a new orderer is one new module here.
"""

from __future__ import annotations

from typing import Any

from codec.registry import parse_spec

from .base import ORDERERS, BaseOrderer
from .simple import FixedOrder, IdentityOrder, RandomOrder  # noqa: I001  (import order is ORDER_NAMES order)
from .sort import SORT_STATISTICS, SortOrder
from .distance import DistanceOrderer
from .tsp import TSPOrder
from .spectral import SpectralOrder
from .cluster import CLUSTER_METHODS, ClusterOrder
from .refcost import RefCostOrder
from .grid import GridOrder, MosaicOrder, SnakeOrder
from .importance import IMPORTANCE_ORDER_NAMES, ImportanceCostOrder, ImportanceTSPOrder

__all__ = [
    "ORDERERS", "ORDER_NAMES", "BaseOrderer", "DistanceOrderer", "IdentityOrder", "RandomOrder", "FixedOrder",
    "SortOrder", "TSPOrder", "SpectralOrder", "ClusterOrder", "SORT_STATISTICS", "CLUSTER_METHODS", "make_orderer",
    "RefCostOrder", "SnakeOrder", "GridOrder", "MosaicOrder", "ImportanceTSPOrder", "ImportanceCostOrder",
    "IMPORTANCE_ORDER_NAMES",
]

ORDER_NAMES: list[str] = [n for key in ORDERERS.names() for n in vars(ORDERERS.get(key)).get("standard_names", ())]
"""The standard orderer names :func:`make_orderer` knows (options can be appended: ``name:key=value,...``)."""


def make_orderer(name: str, **overrides: Any) -> BaseOrderer:
    """Build an orderer from a registry name with optional ``:key=value,...`` options.

    Names: ``identity``, ``random``, ``sort-<mean|variance|energy|sparsity>``,
    ``<tsp|spectral|cluster>-<mse|correlation|cosine|ssim>``, ``fixed:order_or_path=FILE``
    (or ``fixed:path=FILE``, or ``file:FILE``), and any orderer registered in
    :data:`ORDERERS`. Keyword arguments override the name's options. Unknown names or
    options raise ValueError listing the valid ones.
    """
    if isinstance(name, str) and name.strip().lower().startswith("file:"):
        return make_orderer("fixed", order_or_path=name.strip()[5:], **overrides)
    base, _ = parse_spec(name, "orderer")
    if base not in ORDERERS:
        raise ValueError(
            f"unknown orderer {name!r}; valid names: {', '.join(ORDER_NAMES)}, fixed:path=FILE "
            "(options as 'name:key=value,...')"
        )
    orderer = ORDERERS.make(name, **overrides)
    orderer.check_params()
    orderer.name = name
    return orderer
