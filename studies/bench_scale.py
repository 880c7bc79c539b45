"""Benchmark the runner's scale-out: the same real grid on 1 and on N Dask workers.

    python -m studies.bench_scale                          # 2 test images x 2 orders x 4 QPs, 1 vs 2 workers
    python -m studies.bench_scale --workers-list 1 2 4 --inline --out results/bench_scale

The experiment is :func:`eval.experiments.bench_scale.bench_scale` (its docstring says what is
timed and written); this module turns the command line into its
:class:`~eval.experiments.bench_scale.BenchScaleConfig`.
"""

from __future__ import annotations

import sys

from eval.experiments.bench_scale import BenchScaleConfig, bench_scale
from studies.cli import run_experiment


def main(argv=None) -> int:
    return run_experiment(BenchScaleConfig, bench_scale, argv, "studies.bench_scale", __doc__)


if __name__ == "__main__":
    sys.exit(main())
