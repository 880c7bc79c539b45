"""Benchmark where a cell's time goes: the codec (encode, decode) against everything else.

    python -m studies.bench_pipeline                     # default split, identity + tsp-correlation, inline
    python -m studies.bench_pipeline --limit 1 --qps 27 37 --out results/bench_pipeline

The experiment is :func:`eval.experiments.bench_pipeline.bench_pipeline`; this module turns the
command line into its :class:`~eval.experiments.bench_pipeline.BenchPipelineConfig`.
"""

from __future__ import annotations

import sys

from eval.experiments.bench_pipeline import BenchPipelineConfig, bench_pipeline
from studies.cli import run_experiment


def main(argv=None) -> int:
    return run_experiment(BenchPipelineConfig, bench_pipeline, argv, "studies.bench_pipeline", __doc__)


if __name__ == "__main__":
    sys.exit(main())
