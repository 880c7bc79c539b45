"""Re-derive VVenC's GOP tables (:mod:`codec.backends.vvenc_gop_table`) from the encoder's own log.

``python -m codec.backends.vvenc_gop_log`` encodes flat frames with ``Verbosity=6`` for every
segment length and prints the tables in the data module's format; run it when the bundled
libvvenc changes, and compare.
"""
from __future__ import annotations

from .vvenc import VVenCCodec

__all__ = ["build_table"]


def build_table(gop: int = 32, intra_period: int = 32, preset: str = "faster") -> dict[int, str]:
    """Re-derive one table from VVenC's log: one small encode of ``intra_period + 1 + r`` frames per ``r``."""
    codec = VVenCCodec(preset=preset, gop=gop, intra_period=intra_period)
    out = {}
    for r in range(intra_period, 0, -1):
        n = intra_period + 1 + (0 if r == intra_period else r)
        s = codec.logged_prediction_structure(n)
        base = 0 if r == intra_period else intra_period
        items = []
        for p in s.coding_order:
            if not base < p <= base + r:
                continue

            def rel(refs):
                return ",".join(str(v - base) for v in refs) or "-"

            items.append(f"{p - base} {s.temporal_id[p]} {s.qp_offset[p]} {rel(s.l0[p])} {rel(s.l1[p])}")
        out[r] = ";".join(items)
    return out


if __name__ == "__main__":  # python -m codec.backends.vvenc_gop_log: print the tables again
    for g, p in ((32, 32), (16, 16), (16, 32)):
        print(f"TABLES[({g}, {p})] = {{")
        for r, text in build_table(g, p).items():
            print(f"    {r}: {text!r},")
        print("}")
