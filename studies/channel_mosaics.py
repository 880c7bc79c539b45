"""Draw the channel mosaics of a few images, the pictures a hand-made ("subjective") order is made from.

    python -m studies.channel_mosaics --image camera --out runs/mosaics            # a bundled photo by name
    python -m studies.channel_mosaics --image photo.jpg --image other.png --out runs/mosaics
    python -m studies.channel_mosaics --model detectron2 --weights model_final_68b088.pkl --image img.jpg --out runs/c2

The drawing is :func:`eval.experiments.mosaics.channel_mosaics`; this module turns the command
line into its :class:`~eval.experiments.mosaics.MosaicsConfig`.
"""

from __future__ import annotations

import sys

from eval.experiments.mosaics import MosaicsConfig, channel_mosaics
from studies.cli import run_experiment


def main(argv=None) -> int:
    return run_experiment(MosaicsConfig, channel_mosaics, argv, "studies.channel_mosaics", __doc__)


if __name__ == "__main__":
    sys.exit(main())
