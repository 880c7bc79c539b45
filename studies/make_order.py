"""Turn a hand-made grouping of channels into a validated order file for the studies.

    python -m studies.make_order groups.txt --channels 144 --out runs/hand.json
    python -m studies.make_order groups.json --rest error --out runs/hand.json   # every channel must be grouped
    python -m studies.search_order --order-file hand=runs/hand.json              # then measure it

The work is :func:`eval.experiments.make_order.make_order` (its docstring describes the grouping
file); this module turns the command line into its :class:`~eval.experiments.make_order.MakeOrderConfig`.
"""

from __future__ import annotations

import sys

from eval.experiments.make_order import MakeOrderConfig, make_order
from studies.cli import run_experiment


def main(argv=None) -> int:
    return run_experiment(MakeOrderConfig, make_order, argv, "studies.make_order", __doc__)


if __name__ == "__main__":
    sys.exit(main())
