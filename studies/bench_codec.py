"""Benchmark codecs, presets and packings on real features: bits, quality, CPU time, ordering gain.

    python -m studies.bench_codec                                   # embedded default, default codec list
    python -m studies.bench_codec --limit 2 --codecs vvenc:preset=faster vvenc:preset=medium x265 svtav1
    python -m studies.bench_codec --codecs vvenc:preset=faster@tiled 'x265:preset=slow' --reference x265:preset=slow

The experiment is :func:`eval.experiments.bench_codec.bench_codec` (its docstring describes the
table and the outputs); this module turns the command line into its
:class:`~eval.experiments.bench_codec.BenchCodecConfig`.
"""

from __future__ import annotations

import sys

from eval.experiments.bench_codec import BenchCodecConfig, bench_codec
from studies.cli import run_experiment


def main(argv=None) -> int:
    return run_experiment(BenchCodecConfig, bench_codec, argv, "studies.bench_codec", __doc__)


if __name__ == "__main__":
    sys.exit(main())
