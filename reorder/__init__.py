"""Learned channel orders for coding neural-network feature maps as video.

- :mod:`reorder.permutation`: validated channel orders and their JSON files with provenance.
- :mod:`reorder.similarity`: channel distance matrices (MSE, 1 - Pearson r, 1 - cosine, 1 - SSIM)
  accumulated over calibration features in one streaming pass.
- :mod:`reorder.tsp`: open-path TSP solvers behind ``solve_path`` (registry ``TSP_SOLVERS``).
- :mod:`reorder.orderers`: scikit-learn orderers, their registry ``ORDERERS`` and ``make_orderer``.
- :mod:`reorder.structure_cost`: the cost of an order under a codec's prediction structure and a local search on it
  (the ``refcost`` orderer).
- :mod:`reorder.grouping`: a person's grouping of channels (picked by eye) turned into an order.
- :mod:`reorder.position_loss`, :mod:`reorder.importance`, :mod:`reorder.importance_cost`: what a channel loses
  at a position's QP offset, the task's channel importance as data, and an order's rate proxy plus its
  importance-weighted loss (the ``imptsp`` and ``impcost`` orderers).

reorder builds on :mod:`codec` (its registry and file writer) and knows no model.
"""

from .orderers import (
    ORDER_NAMES,
    ORDERERS,
    BaseOrderer,
    ClusterOrder,
    FixedOrder,
    IdentityOrder,
    RandomOrder,
    SortOrder,
    SpectralOrder,
    TSPOrder,
    RefCostOrder,
    make_orderer,
)
from .permutation import Permutation, PermutationError, validate_order
from .similarity import SIMILARITY_METRICS, NORMALIZATIONS, SimilarityAccumulator, distance_matrix
from .tsp import (
    SOLVERS,
    TSP_SOLVERS,
    PathResult,
    SolverUnavailableError,
    available_solvers,
    canonical_solver,
    path_cost,
    solve_path,
)

__all__ = [
    "ORDER_NAMES", "ORDERERS", "BaseOrderer", "ClusterOrder", "FixedOrder", "IdentityOrder", "RandomOrder",
    "SortOrder", "SpectralOrder", "TSPOrder", "RefCostOrder", "make_orderer",
    "Permutation", "PermutationError", "validate_order",
    "SIMILARITY_METRICS", "NORMALIZATIONS", "SimilarityAccumulator", "distance_matrix",
    "SOLVERS", "TSP_SOLVERS", "PathResult", "SolverUnavailableError", "available_solvers", "canonical_solver",
    "path_cost", "solve_path",
]
