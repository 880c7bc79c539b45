"""HEVC through ffmpeg's libx265, decoded with ffmpeg's native ``hevc`` decoder.

* Constant QP: ``-qp`` (HEVC QP 0..51, same scale as VVC's low range: +6
  doubles the step). x265 derives I/B frame QPs from it with its default
  ``ipratio``/``pbratio`` (about -3 for I, +2 for B frames), much like
  VTM's per-layer QP offsets.
* Intra period: ``keyint=min-keyint=intra_period`` and ``scenecut=0`` put intra
  frames exactly at 0, 32, 64, ... (open GOP: CRA pictures after the first IDR).
* No perceptual tuning: ``aq-mode=0``, ``cutree=0``, ``psy-rd=0``, ``psy-rdoq=0``.
* ``info=0`` drops the SEI with x265's version and option string (about 2 KB);
  no AUDs or hash SEIs are written, so ``Bitstream.bits`` counts coded data and
  parameter sets only.
* ``frame-threads=1`` always (frame threading changes the bitstream);
  ``threads`` only sizes the worker pool (wavefront, same output).
* ``chroma="400"`` codes monochrome (gray) frames; ``"420"`` adds mid-grey chroma.
"""
from __future__ import annotations

from .base import CODECS, Option, int_range
from .ffmpeg_base import FFmpegCodec, join_params

__all__ = ["X265Codec"]

_PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower", "veryslow", "placebo")


@CODECS.register("x265")
class X265Codec(FFmpegCodec):
    """x265 HEVC encoder. Options: preset (default medium), intra_period (32),
    bframes (None = preset default), chroma (420|400), x265_params (extra,
    ':'-separated, applied last), threads (1)."""

    name = "x265"
    grid = 8
    qp_range = (0, 51)
    bit_depths = (8, 10)
    encoder = "libx265"
    decoder = "hevc"
    muxer = "hevc"
    demuxer = "hevc"
    OPTIONS = {
        "preset": Option("medium", str, "x265 preset", choices=_PRESETS),
        "intra_period": Option(32, int, "frames between intra pictures (1 = all intra)", check=int_range(1, 4096)),
        "bframes": Option(None, int, "consecutive B frames (None: preset default)", check=int_range(0, 16)),
        "chroma": Option("420", str, "420 (mid-grey chroma) or 400 (monochrome)", choices=("420", "400")),
        "x265_params": Option("", str, "extra x265 key=value:key=value parameters (applied last)"),
        "threads": Option(1, int, "worker threads (frame-threads stays 1)", check=int_range(1, 256)),
    }

    def x265_params(self) -> str:
        o = self.options
        k = o["intra_period"]
        ours = [f"keyint={k}", f"min-keyint={k}", "scenecut=0", "info=0", "aq-mode=0", "cutree=0",
                "psy-rd=0", "psy-rdoq=0", "frame-threads=1", f"pools={o['threads']}"]
        if o["bframes"] is not None:
            ours.append(f"bframes={o['bframes']}")
        return join_params(*ours, o["x265_params"])

    def _encoder_args(self, qp: int, bit_depth: int) -> list[str]:
        return ["-preset", self.options["preset"], "-qp", str(qp), "-x265-params", self.x265_params()]
