"""Minimal Annex-B NAL unit inspection for VVC and HEVC streams.

Enough to check what an encoder really wrote (intra picture positions,
access-unit delimiters, SEI) without a full parser: split at start codes and
read the NAL unit type from the two-byte header.
"""
from __future__ import annotations

import re

__all__ = ["nal_units", "nal_types", "VVC_IRAP", "VVC_AUD", "HEVC_IRAP", "HEVC_AUD", "VVC_VCL", "HEVC_VCL"]

VVC_IRAP = frozenset({7, 8, 9})       # IDR_W_RADL, IDR_N_LP, CRA
VVC_VCL = frozenset(range(0, 12))     # VCL NAL unit types 0..11
VVC_AUD = 20
HEVC_IRAP = frozenset(range(16, 24))  # BLA, IDR, CRA, reserved IRAP
HEVC_VCL = frozenset(range(0, 32))
HEVC_AUD = 35

_START = re.compile(b"\x00\x00\x01")


def nal_units(data: bytes) -> list[bytes]:
    """NAL unit payloads (header included, start codes and the zero byte before them removed)."""
    starts = [m.end() for m in _START.finditer(data)]
    units = []
    for i, s in enumerate(starts):
        end = starts[i + 1] - 3 if i + 1 < len(starts) else len(data)
        unit = data[s:end]
        if i + 1 < len(starts):
            unit = unit.rstrip(b"\x00")  # trailing zero bytes belong to the next 4-byte start code
        units.append(unit)
    return units


def nal_types(data: bytes, codec: str = "vvc") -> list[int]:
    """NAL unit types in stream order; ``codec`` is "vvc" or "hevc"."""
    if codec == "vvc":
        return [u[1] >> 3 for u in nal_units(data) if len(u) >= 2]
    if codec == "hevc":
        return [(u[0] >> 1) & 0x3F for u in nal_units(data) if len(u) >= 2]
    raise ValueError(f"codec={codec!r}; use 'vvc' or 'hevc'")
