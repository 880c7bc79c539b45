"""Benchmark how well order cost models predict the real bits of coding the channels in that order.

    python -m studies.bench_order_cost                          # default split, 2 calibration images, QP 32
    python -m studies.bench_order_cost --images-coded 4 --qps 27 37 --refine-encodes 20

The experiment is :func:`eval.experiments.bench_order_cost.bench_order_cost` (its docstring says
which orders and cost models are compared); this module turns the command line into its
:class:`~eval.experiments.bench_order_cost.BenchOrderCostConfig`.
"""

from __future__ import annotations

import sys

from eval.experiments.bench_order_cost import BenchOrderCostConfig, bench_order_cost
from studies.cli import run_experiment


def main(argv=None) -> int:
    return run_experiment(BenchOrderCostConfig, bench_order_cost, argv, "studies.bench_order_cost", __doc__)


if __name__ == "__main__":
    sys.exit(main())
