"""AV1 through ffmpeg: SVT-AV1 (libsvtav1) and libaom (libaom-av1), decoded with libdav1d.

Streams are raw low-overhead OBU streams (``-f obu``: no IVF container).
They contain one 2-byte temporal delimiter OBU per frame, which the AV1
format requires, so they are counted in ``Bitstream.bits``.

QP semantics: both take a *quantizer index* 0..63 that maps non-linearly
onto AV1's qindex 0..255; it is not the H.26x/VVC QP scale, so choose each
codec's QP set separately (e.g. by matching bits) before comparing RD curves.

* SVT-AV1: ``-qp`` gives constant-QP rate control with adaptive quantization
  off (ffmpeg's wrapper sets rc=CQP, aq-mode=0 when ``-qp`` > 0, hence qp >= 1).
  ``keyint`` = intra period; temporal filtering (``enable-tf``) off by default
  for the same reason as VVenC's MCTF. 4:2:0 only.
* libaom: constant quality ``-crf q -b:v 0`` (end-usage=q, cq-level=q; per-frame
  qindex still follows the GOP's pyramid offsets), no adaptation (``aq-mode=0``,
  ``deltaq-mode=0``, ``enable-tpl-model=0``), temporal filtering off by default
  (``arnr-max-frames=0``, libaom's switch for it), ``-g``/``-keyint_min`` =
  intra period. Monochrome (``chroma="400"``) is supported.
"""
from __future__ import annotations

from .base import CODECS, Option, int_range
from .ffmpeg_base import FFmpegCodec, join_params

__all__ = ["SvtAv1Codec", "AomCodec"]


@CODECS.register("svtav1")
class SvtAv1Codec(FFmpegCodec):
    """SVT-AV1. Options: preset (0..13, default 8), intra_period (32), tf (false),
    svtav1_params (extra, ':'-separated, applied last), threads (1)."""

    name = "svtav1"
    grid = 8
    qp_range = (1, 63)
    bit_depths = (8, 10)
    encoder = "libsvtav1"
    decoder = "libdav1d"
    muxer = "obu"
    demuxer = "obu"
    OPTIONS = {
        "preset": Option(8, int, "SVT-AV1 preset (0 slowest .. 13 fastest)", check=int_range(0, 13)),
        "intra_period": Option(32, int, "frames between key frames", check=int_range(1, 4096)),
        "tf": Option(False, bool, "temporal filtering (blends neighbouring frames)"),
        "svtav1_params": Option("", str, "extra SVT-AV1 key=value:key=value parameters (applied last)"),
        "threads": Option(1, int, "level of parallelism (lp)", check=int_range(1, 256)),
    }

    def _chroma(self) -> str:
        return "420"

    def svtav1_params(self) -> str:
        o = self.options
        return join_params(f"keyint={o['intra_period']}", f"enable-tf={int(o['tf'])}", f"lp={o['threads']}",
                           o["svtav1_params"])

    def _encoder_args(self, qp: int, bit_depth: int) -> list[str]:
        return ["-preset", str(self.options["preset"]), "-qp", str(qp), "-svtav1-params", self.svtav1_params()]


@CODECS.register("aom")
class AomCodec(FFmpegCodec):
    """libaom AV1. Options: cpu_used (0..8, default 6), intra_period (32),
    chroma (420|400), tf (false), aom_params (extra, ':'-separated), threads (1)."""

    name = "aom"
    grid = 8
    qp_range = (0, 63)
    bit_depths = (8, 10)
    encoder = "libaom-av1"
    decoder = "libdav1d"
    muxer = "obu"
    demuxer = "obu"
    OPTIONS = {
        "cpu_used": Option(6, int, "speed (0 slowest .. 8 fastest)", check=int_range(0, 8)),
        "intra_period": Option(32, int, "frames between key frames", check=int_range(1, 4096)),
        "chroma": Option("420", str, "420 (mid-grey chroma) or 400 (monochrome)", choices=("420", "400")),
        "tf": Option(False, bool, "temporal filtering (blends neighbouring frames)"),
        "aom_params": Option("", str, "extra libaom key=value:key=value parameters (applied last)"),
        "threads": Option(1, int, "encoder threads", check=int_range(1, 256)),
    }

    def aom_params(self) -> str:
        o = self.options
        return join_params("deltaq-mode=0", "enable-tpl-model=0", o["aom_params"])

    def _encoder_args(self, qp: int, bit_depth: int) -> list[str]:
        o = self.options
        k = str(o["intra_period"])
        return ["-usage", "good", "-cpu-used", str(o["cpu_used"]), "-crf", str(qp), "-b:v", "0",
                "-g", k, "-keyint_min", k, "-aq-mode", "0", "-row-mt", "0",
                *([] if o["tf"] else ["-arnr-max-frames", "0"]), "-aom-params", self.aom_params()]
