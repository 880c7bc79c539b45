"""Tune the feature quantizer (and the channel order) with Optuna on the calibration split, against the paper's pipeline.

    python -m studies.tune_quantizer                                 # embedded default, 20 trials
    python -m studies.tune_quantizer --n-trials 40                   # resume the same study up to 40 trials
    python -m studies.tune_quantizer --orders tsp-correlation tsp-mse 'tsp-mse:normalization=zscore'
    python -m studies.tune_quantizer --objective feature_psnr --quantizer-scopes global --no-match-qps  # the older, quantizer-only tuning
    python -m studies.tune_quantizer --storage postgresql://host/db --study-name q1
    python -m studies.search_order --compare-quantizers tuned=results/tune_quantizer/best_quantizer.json

The experiment is :func:`eval.experiments.tune.tune_quantizer` (its docstring says what a trial
does and what is written); this module turns the command line into its
:class:`~eval.experiments.tune.TuneConfig`.
"""

from __future__ import annotations

import sys

from eval.experiments.tune import TuneConfig, tune_quantizer
from studies.cli import run_experiment


def main(argv=None) -> int:
    return run_experiment(TuneConfig, tune_quantizer, argv, "studies.tune_quantizer", __doc__)


if __name__ == "__main__":
    sys.exit(main())
