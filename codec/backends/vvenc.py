"""VVC through ffmpeg's libvvenc encoder and native ``vvc`` decoder (the default codec).

Settings and why:

* Random access with intra period 32 frames. ffmpeg's ``-period`` is in
  *seconds*, so frames are fed at 1 fps and ``-period <intra_period>`` is frames.
* ``poc0idr=1`` (default ``poc0idr=true``): the first frame is an IDR and
  every ``intra_period``-th frame after it is a CRA, i.e. intra frames at
  0, 32, 64, ... like VTM's random-access configuration. Without it VVenC
  codes the first GOP's *last* frame (31) as IDR and frames 0..30 as leading
  pictures, so intra frames fall on 31, 63, ...
* ``-qpa 0`` and, by default, ``MCTF=0:BIM=0``: the temporal pre-filter blends
  neighbouring frames (= neighbouring channels) and block-importance mapping
  changes QPs; both are on in every preset even with ``-qpa 0``, and BIM
  needs MCTF, so ``bim=true`` requires ``mctf=true``.
* Access-unit delimiters: by default this ffmpeg's libvvenc writes one 7-byte
  AUD per frame. They carry no picture data and VTM writes none, so by
  default (``aud=false``) the encoder is given ``AccessUnitDelimiter=0`` and
  the stream holds no AUDs at all (each access unit then starts with a 4-byte
  start code, as Annex B asks). ``Bitstream.bits`` counts every byte of the
  stream that is kept; ``aud=true`` keeps (and counts) the AUDs.
* QP: VVC QP 0..63 (+6 doubles the step); ``qp`` is the base QP, VVenC's GOP
  adds its own per-layer offsets.
* Size limit: ffmpeg's libvvenc wrapper gives VVenC an output buffer of
  width*height bytes per access unit, so a picture whose coded size (with
  parameter sets) exceeds one byte per luma sample makes the encode fail.
  Measured: tiny frames (under about 32x32) with detailed content at QP <= 22,
  white noise at QP 22 up to 32x32; never on smooth content of 32x48 and up.
  Real MobileNetV2 features (128x128, log 8-bit) at QP 12: largest picture
  14.6 KB of the 16 KB allowed, so very low QPs on real data are near the limit.
  The error then says so; use larger frames (TiledPacking), a higher QP or VTM.
* Input is 10-bit only (``yuv420p10le``): 8-bit codes are shifted up by 2 and
  decoded with ``(x + 2) >> 2``.
* Chroma: the wrapper accepts only ``yuv420p10le`` (a ``gray10le`` input is converted
  to it by ffmpeg), so by default mid-grey chroma planes are coded. ``chroma=400``
  still feeds 4:2:0 but passes ``ChromaFormatIDC=400``: VVenC then codes luma only
  (a monochrome stream that ffmpeg's decoder returns as ``gray10le``), as the MPEG
  anchors' VTM does with ``--InputChromaFormat=400``.
"""
from __future__ import annotations

from .base import CODECS, Option, int_range
from .ffmpeg_base import FFmpegCodec, join_params
from .vvenc_gop import vvenc_structure

__all__ = ["VVenCCodec"]


@CODECS.register("vvenc")
class VVenCCodec(FFmpegCodec):
    """VVenC (libvvenc in ffmpeg), decoded with ffmpeg's native VVC decoder.

    Options: ``preset`` (faster|fast|medium|slow|slower, default faster),
    ``intra_period`` (frames, default 32; 1 = all intra), ``gop`` (16|32),
    ``poc0idr``, ``mctf``, ``bim``, ``qpa``, ``aud``, ``vvenc_params`` (extra
    ``key=value:key=value`` for VVenC, applied last), ``threads`` (default 1:
    jobs run in parallel processes), ``chroma`` (400 monochrome; default 4:2:0
    with mid-grey chroma).
    """

    name = "vvenc"
    grid = 8
    qp_range = (0, 63)
    bit_depths = (8, 10)
    encoder = "libvvenc"
    decoder = "vvc"
    muxer = "vvc"
    demuxer = "vvc"
    OPTIONS = {
        "preset": Option("faster", str, "VVenC preset", choices=("faster", "fast", "medium", "slow", "slower")),
        "intra_period": Option(32, int, "frames between intra pictures (1 = all intra)", check=int_range(1, 4096)),
        "gop": Option(32, int, "GOP size (hierarchical B)", choices=(16, 32)),
        "poc0idr": Option(True, bool, "IDR at frame 0, intra at multiples of intra_period"),
        "mctf": Option(False, bool, "motion-compensated temporal pre-filter (blends neighbouring frames)"),
        "bim": Option(False, bool, "block importance mapping (needs mctf)"),
        "qpa": Option(False, bool, "perceptual QP adaptation"),
        "aud": Option(False, bool, "keep access-unit delimiters (7 bytes/frame) in the stream"),
        "vvenc_params": Option("", str, "extra VVenC key=value:key=value parameters (applied last)"),
        "threads": Option(1, int, "encoder/decoder threads", check=int_range(1, 256)),
        # None (left out of the spec, so existing cell keys stay) codes 4:2:0 with mid-grey chroma
        "chroma": Option(None, str, "400 (monochrome, ChromaFormatIDC=400) or 420 (mid-grey chroma; default)",
                         choices=("420", "400")),
    }

    def _check_options(self):
        o = self.options
        if o["chroma"] == "420":
            o["chroma"] = None  # the default spelled out: the same codec, the same spec (and cell keys)
        if o["bim"] and not o["mctf"]:
            raise ValueError("codec 'vvenc': bim=true needs mctf=true (VVenC's BIM uses the MCTF analysis)")
        if o["intra_period"] > 1 and o["intra_period"] % o["gop"]:
            raise ValueError(f"codec 'vvenc': intra_period={o['intra_period']} must be 1 or a multiple of "
                             f"gop={o['gop']}")

    def _explain_failure(self, log, shape, qp):
        if "Error submitting video frame" in log or "Error flushing encoder" in log:
            n, h, w = shape
            return (f"libvvenc rejected a picture: ffmpeg's wrapper allows at most {h * w} bytes (one per luma "
                    f"sample) per coded {h}x{w} picture, and very small or very detailed frames at qp {qp} need "
                    f"more; use larger frames (TiledPacking), a higher qp, or the vtm backend")
        return None

    def _coded_depth(self, bit_depth: int) -> int:
        return 10

    def _input_chroma(self) -> str:
        return "420"  # the wrapper takes yuv420p10le only; ChromaFormatIDC=400 makes VVenC drop the chroma

    def vvenc_params(self) -> str:
        """The ``-vvenc-params`` string this configuration passes."""
        o = self.options
        ours = [f"GOPSize={o['gop']}" if o["intra_period"] > 1 else ""]
        if not o["mctf"]:
            ours.append("MCTF=0")
        if not o["bim"]:
            ours.append("BIM=0")
        ours.append(f"poc0idr={int(o['poc0idr'])}")
        ours.append(f"AccessUnitDelimiter={int(o['aud'])}")
        if self._chroma() == "400":
            ours.append("ChromaFormatIDC=400")
        return join_params(*ours, o["vvenc_params"])

    def _encoder_args(self, qp: int, bit_depth: int) -> list[str]:
        o = self.options
        return [
            "-preset", o["preset"], "-qp", str(qp), "-qpa", "1" if o["qpa"] else "0",
            "-period", str(o["intra_period"]), "-vvenc-params", self.vvenc_params(),
        ]

    # ------------------------------------------------------------ prediction structure
    def prediction_structure(self, n_frames: int, lists: str = "used"):
        """The frames' intra flags and reference pictures under this configuration (no encode).

        From the table in :mod:`codec.backends.vvenc_gop`, established from VVenC's own
        per-picture log (see there); ``lists="used"`` keeps the first entry of each reference
        list (what VVenC uses on textured content like feature channels), ``"candidates"`` both
        entries (what it uses on flat content). Configurations the table does not hold (other GOP/intra
        period pairs, extra ``vvenc_params``, ``poc0idr=false``) raise ValueError naming
        :meth:`logged_prediction_structure`, which encodes to find out.
        """
        from ..structure import all_intra

        o = self.options
        if o["intra_period"] == 1:
            return all_intra(n_frames, source=f"{self.spec()} (all intra)")
        if o["vvenc_params"] or not o["poc0idr"]:
            raise ValueError(f"codec {self.spec()!r}: the VVenC GOP table holds poc0idr=true without extra "
                             "vvenc_params; use logged_prediction_structure(n) (one small encode) for this one")
        return vvenc_structure(n_frames, o["gop"], o["intra_period"], lists)

    def logged_prediction_structure(self, n_frames: int, size: int = 32, frames=None):
        """The structure VVenC really uses for ``n_frames`` frames, read from its per-picture log.

        Deliberately encodes ``n_frames`` flat ``size`` x ``size`` frames at QP 32 with
        ``Verbosity=6`` (single-threaded, so log lines stay whole) and parses the
        ``POC .. TId .. [L0 ..] [L1 ..]`` lines (:func:`codec.structure.from_encoder_log`).
        ``frames`` (8-bit [n, H, W]) encodes those instead, to check that content does not move it.
        """
        import os
        import tempfile

        import numpy as np

        from ..ffmpeg import run_ffmpeg
        from ..structure import from_encoder_log
        from .ffmpeg_base import frames_to_planar

        opts = dict(self.options, threads=1, vvenc_params=join_params(self.options["vvenc_params"], "Verbosity=6"))
        probe = type(self)(**opts)
        probe.check_available()
        if frames is None:
            frames = np.broadcast_to((16 + np.arange(n_frames) % 200).astype(np.uint8)[:, None, None],
                                     (n_frames, size, size))
        frames = probe._validate_frames(np.ascontiguousarray(frames), 32, 8)
        n_frames, h, w = frames.shape
        raw = frames_to_planar(frames, probe._input_chroma(), 10, 8)
        # VVenC prints its per-picture lines on stdout, so the stream goes to a file, not to the pipe
        problem = None
        for _ in range(3):  # this libvvenc build now and then ends early without output (see ffmpeg_base)
            with tempfile.TemporaryDirectory(prefix="fcm-vvenc-gop-") as tmp:
                args = probe.encode_command(n_frames, h, w, 32, 8)[:-1] + [os.path.join(tmp, "out.vvc")]
                out, err = run_ffmpeg(args, input=raw, what="libvvenc structure probe")
            try:
                return from_encoder_log(out.decode("utf-8", "replace") + err, n_frames, base_qp=32,
                                        source=f"{self.spec()} (encoder log)")
            except ValueError as exc:
                problem = exc
        raise problem

