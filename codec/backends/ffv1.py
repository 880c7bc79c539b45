"""FFV1 (lossless) in a NUT container: exact round trip, for debugging the pipeline.

``qp`` is accepted and ignored. Frames are coded as monochrome (``gray`` /
``gray10le``), so the stream size is that of the luma data alone (plus the
container's few bytes per frame).
"""
from __future__ import annotations

from .base import CODECS, Option, int_range
from .ffmpeg_base import FFmpegCodec

__all__ = ["FFV1Codec"]


@CODECS.register("ffv1")
class FFV1Codec(FFmpegCodec):
    """Lossless FFV1 (level 3, slice CRCs so corruption is detected). Options: threads (1)."""

    name = "ffv1"
    grid = 1
    qp_range = (0, 63)
    bit_depths = (8, 10)
    encoder = "ffv1"
    decoder = "ffv1"
    muxer = "nut"
    demuxer = "nut"
    OPTIONS = {"threads": Option(1, int, "encoder/decoder threads", check=int_range(1, 256))}

    def _chroma(self) -> str:
        return "400"

    def _encoder_args(self, qp: int, bit_depth: int) -> list[str]:
        return ["-level", "3", "-slicecrc", "1", "-g", "1"]
