"""Learn channel orders for a real detector and measure them in person AP@0.5 on pedestrian video.

    python -m studies.search_detector                      # SSDLite person detector, vtest.avi, 64 test frames
    python -m studies.search_detector --n-test 16          # a quicker run on fewer test frames
    python -m studies.search_detector --video walk.mp4 --out runs/walk

The experiment is :func:`eval.experiments.detector.search_detector` (the order search with
the detector's defaults; see its docstring); this module turns the command line into its
:class:`~eval.experiments.detector.DetectorSearchConfig`.
"""

from __future__ import annotations

import sys

from eval.experiments.detector import DetectorSearchConfig, search_detector
from studies.cli import run_experiment


def main(argv=None) -> int:
    return run_experiment(DetectorSearchConfig, search_detector, argv, "studies.search_detector", __doc__)


if __name__ == "__main__":
    sys.exit(main())
