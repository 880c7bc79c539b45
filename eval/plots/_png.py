"""Figure plumbing shared by :mod:`eval.plots`: an Agg figure without pyplot, and atomic PNG output.

Figures are created on their own :class:`~matplotlib.backends.backend_agg.FigureCanvasAgg`,
so nothing here switches the process-wide matplotlib backend, registers the figure with
pyplot or needs closing. PNGs are rendered to memory and written through
:func:`codec.files.atomic_write_bytes` (the package's one atomic writer), so a reader sees
the old picture or the whole new one.
"""

from __future__ import annotations

import io
from pathlib import Path

from codec.files import atomic_write_bytes

DPI = 150


def new_figure(width: float, height: float, dpi: int = DPI, layout: str | None = "constrained"):
    """A ``width`` x ``height`` inch figure on its own Agg canvas (no pyplot, nothing to close)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi, layout=layout)
    FigureCanvasAgg(fig)
    return fig


def save_png(fig, path: str | Path, dpi: int = DPI) -> Path:
    """Render ``fig`` as PNG and write it atomically to ``path`` (parent folders created); return the path."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return atomic_write_bytes(Path(path), buf.getvalue())


def plain_text(text: object) -> str:
    """``text`` as a label matplotlib shows verbatim: ``$`` escaped so names are not read as math."""
    return str(text).replace("$", r"\$")


def panel_cols(n_panels: int) -> int:
    """Panels per row: all in one row up to 3, 2 x 2 for 4, then rows of 3."""
    return 2 if n_panels == 4 else min(n_panels, 3)
