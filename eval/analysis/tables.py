"""Plain-text tables for the terminal: the one formatter every study prints with."""

from __future__ import annotations

import math
from typing import Any, Sequence

__all__ = ["fmt", "text_table"]


def fmt(value: Any, spec: str = "+.2f", missing: str = "n/a") -> str:
    """``value`` formatted with ``spec``; ``missing`` for None and NaN."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return missing
    return format(value, spec)


def text_table(head: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None) -> str:
    """Columns padded to their widest cell, a dashed rule under the header, two spaces between columns."""
    widths = [max([len(h)] + [len(r[i]) for r in rows]) for i, h in enumerate(head)]
    out = [title] if title else []
    out.append("  ".join(h.ljust(w) for h, w in zip(head, widths)))
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows]
    return "\n".join(out)
