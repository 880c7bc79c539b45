"""``python -m eval.install``: see :mod:`eval.install`."""
import sys

from eval.install import main

sys.exit(main())
