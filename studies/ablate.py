"""Ablations: what each choice in learning and coding an order is worth, as BD-rate vs identity.

    python -m studies.ablate                                   # embedded default grid (see --help)
    python -m studies.ablate --metrics correlation mse ssim --normalizations none zscore \\
        --solvers default nearest_neighbour --quantizers log uniform --presets faster --packings temporal
    python -m studies.ablate --calib-sizes 1 2 4 8 11 --no-grid  # only the calibration-size curve

The experiment is :func:`eval.experiments.ablation.ablate` (its docstring describes the grid and
the outputs); this module turns the command line into its :class:`~eval.experiments.ablation.AblateConfig`.
"""

from __future__ import annotations

import sys

from eval.experiments.ablation import AblateConfig, ablate
from studies.cli import run_experiment


def main(argv=None) -> int:
    return run_experiment(AblateConfig, ablate, argv, "studies.ablate", __doc__)


if __name__ == "__main__":
    sys.exit(main())
