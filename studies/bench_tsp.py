"""Benchmark the open-path TSP solvers of :mod:`reorder.tsp`: path cost against the best found, and time.

    python -m studies.bench_tsp                                   # sizes 144 256 1024 2048, random + features
    python -m studies.bench_tsp --sizes 256 2048 --source random --solvers default lkh fast_tsp
    python -m studies.bench_tsp --source features --features DIR --out results/bench_tsp.csv
    python -m studies.bench_tsp --source random --sizes 144 256 1024 --slow-budget 5 \
        --solvers lkh fast_tsp python_tsp_local_search python_tsp_simulated_annealing \
                  python_tsp_lin_kernighan python_tsp_record_to_record

The benchmark is :func:`eval.experiments.bench_tsp.bench_tsp` (its docstring says which matrices
and how gaps and budgets are measured); this module turns the command line into its
:class:`~eval.experiments.bench_tsp.BenchTspConfig`.
"""

from __future__ import annotations

import sys

from eval.experiments.bench_tsp import BenchTspConfig, bench_tsp
from studies.cli import run_experiment


def main(argv=None) -> int:
    return run_experiment(BenchTspConfig, bench_tsp, argv, "studies.bench_tsp", __doc__)


if __name__ == "__main__":
    sys.exit(main())
