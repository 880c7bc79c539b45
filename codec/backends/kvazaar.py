"""HEVC through ffmpeg's libkvazaar (8-bit 4:2:0 only in this ffmpeg build).

Constant QP ``qp=`` (HEVC scale 0..51), ``period=`` intra period, hierarchical
``gop`` 8 or 16 (0 = low delay P), ``hash=none`` (no per-picture checksum SEI);
kvazaar still writes one small version SEI at the start, counted in the bits.
Extra parameters: ``kvazaar_params`` as ``key=value:key=value`` (``:`` becomes
kvazaar's ``,``).
"""
from __future__ import annotations

from .base import CODECS, Option, int_range
from .ffmpeg_base import FFmpegCodec

__all__ = ["KvazaarCodec"]

_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


@CODECS.register("kvazaar")
class KvazaarCodec(FFmpegCodec):
    """Kvazaar HEVC. Options: preset (default medium), intra_period (32), gop (8|16|0),
    kvazaar_params, threads (1)."""

    name = "kvazaar"
    grid = 8
    qp_range = (0, 51)
    bit_depths = (8,)
    encoder = "libkvazaar"
    decoder = "hevc"
    muxer = "hevc"
    demuxer = "hevc"
    OPTIONS = {
        "preset": Option("medium", str, "kvazaar preset", choices=_PRESETS),
        "intra_period": Option(32, int, "frames between intra pictures", check=int_range(1, 4096)),
        "gop": Option(8, int, "hierarchical GOP length (0 = low delay)", choices=(0, 8, 16)),
        "kvazaar_params": Option("", str, "extra kvazaar key=value:key=value parameters (applied last)"),
        "threads": Option(1, int, "worker threads", check=int_range(1, 256)),
    }

    def _chroma(self) -> str:
        return "420"

    def kvazaar_params(self, qp: int) -> str:
        o = self.options
        parts = [f"preset={o['preset']}", f"qp={qp}", f"period={o['intra_period']}", f"gop={o['gop']}",
                 "hash=none", f"threads={o['threads']}", "owf=0" if o["threads"] == 1 else ""]
        parts += [p for p in o["kvazaar_params"].split(":") if p]
        return ",".join(p for p in parts if p)

    def _encoder_args(self, qp: int, bit_depth: int) -> list[str]:
        return ["-kvazaar-params", self.kvazaar_params(qp)]
