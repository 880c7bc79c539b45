"""Learned channel orders for coding neural-network feature maps as video.

- :mod:`reorder.permutation`: validated channel orders and their JSON files with provenance.
- :mod:`reorder.similarity`: channel distance matrices (MSE, 1 - Pearson r, 1 - cosine, 1 - SSIM)
  accumulated over calibration features in one streaming pass.
- :mod:`reorder.tsp`: open-path TSP solvers behind ``solve_path``.
- :mod:`reorder.orderers`: scikit-learn-style orderers and the ``make_orderer`` registry.
"""

from .orderers import (
    ORDER_NAMES,
    BaseOrderer,
    ClusterOrder,
    FixedOrder,
    IdentityOrder,
    NotFittedError,
    RandomOrder,
    SortOrder,
    SpectralOrder,
    TSPOrder,
    make_orderer,
    parse_name,
)
from .permutation import Permutation, PermutationError, validate_order
from .similarity import METRICS, NORMALIZATIONS, SimilarityAccumulator, distance_matrix
from .tsp import SOLVERS, PathResult, SolverUnavailableError, available_solvers, path_cost, solve_path

__all__ = [
    "ORDER_NAMES", "BaseOrderer", "ClusterOrder", "FixedOrder", "IdentityOrder", "NotFittedError", "RandomOrder",
    "SortOrder", "SpectralOrder", "TSPOrder", "make_orderer", "parse_name",
    "Permutation", "PermutationError", "validate_order",
    "METRICS", "NORMALIZATIONS", "SimilarityAccumulator", "distance_matrix",
    "SOLVERS", "PathResult", "SolverUnavailableError", "available_solvers", "path_cost", "solve_path",
]
