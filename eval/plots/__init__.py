"""All of the package's pictures, drawn from in-memory data (nothing here reads a study folder).

Each plot comes in two forms: ``*_figure(...)`` builds and returns a matplotlib
:class:`~matplotlib.figure.Figure` (for notebooks and for tests that inspect what was
drawn); the path-taking function draws the same figure and writes it as a PNG atomically
(:func:`codec.files.atomic_write_bytes`). Figures live on their own Agg canvas: nothing
here changes the process-wide matplotlib backend or leaves pyplot figures open.

- :mod:`eval.plots.mosaics`: channel mosaics of one image, one panel per order.
- :mod:`eval.plots.heatmaps`: channel distance matrices in identity and learned orders.
- :mod:`eval.plots.bars`: BD-rate bars per order, TSP solver tour-cost / time bars.
- :mod:`eval.plots.rd`: rate-distortion curves per order.
- :mod:`eval.plots.codec_bench`: codec benchmark BD-rate / ordering gain over CPU time.

Conventions: features are ``[C, H, W]`` float arrays; an order is a permutation of
``0..C-1`` with ``order[k]`` = original channel shown at position ``k`` (checked by
:func:`reorder.validate_order`); BD-rates are percentages, negative = fewer bits for the
same quality.
"""

from .bars import METRIC_LABELS, bd_rate_bars, bd_rate_figure, tour_cost_bars, tour_cost_figure, tour_cost_table
from .codec_bench import bd_cpu_figure, bd_cpu_scatter
from .heatmaps import permuted, similarity_figure, similarity_heatmap
from .mosaics import (
    channel_mosaic,
    mosaic_array,
    mosaic_comparison,
    mosaic_comparison_figure,
    mosaic_figure,
    mosaic_grid,
    normalize_channels,
)
from .rd import plot_rd_curves, rd_curves_figure

__all__ = [
    "METRIC_LABELS",
    "mosaic_grid",
    "normalize_channels",
    "mosaic_array",
    "permuted",
    "tour_cost_table",
    "mosaic_figure",
    "mosaic_comparison_figure",
    "similarity_figure",
    "bd_rate_figure",
    "tour_cost_figure",
    "channel_mosaic",
    "mosaic_comparison",
    "similarity_heatmap",
    "bd_rate_bars",
    "tour_cost_bars",
    "rd_curves_figure",
    "plot_rd_curves",
    "bd_cpu_figure",
    "bd_cpu_scatter",
]
