"""Learn fixed channel orders on a calibration split and measure what they save on a test split.

    python -m studies.search_order                       # embedded default: MobileNetV2 + sample photos
    python -m studies.search_order --order-file mine.json --order-file hand=order.txt
    python -m studies.search_order --images DIR --out runs/mine --qps 22 27 32 37

The experiment itself is :func:`eval.experiments.search.search_orders` (its docstring says what
it does); this module only turns the command line (or ``--from OUT/config.toml``) into its
:class:`~eval.experiments.search.SearchConfig`.
"""

from __future__ import annotations

import sys

from eval.experiments.search import SearchConfig, search_orders
from studies.cli import run_experiment


def main(argv=None) -> int:
    return run_experiment(SearchConfig, search_orders, argv, "studies.search_order", __doc__)


if __name__ == "__main__":
    sys.exit(main())
