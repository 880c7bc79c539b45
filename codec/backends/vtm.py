"""VVC with the VTM reference software (EncoderApp / DecoderApp), given by path.

The encoder runs with the paper's parameters exactly::

    EncoderApp -c encoder_randomaccess_vtm.cfg -i in.yuv -b out.bin -q QP
        --InputBitDepth=8 --OutputBitDepth=8 -wdt W -hgt H --FrameRate=1
        --FrameSkip=0 -f NUM_FRAMES -o /dev/null

(``-o /dev/null`` only stops any reconstruction file being written; 10-bit
codes use ``--InputBitDepth=10 --OutputBitDepth=10`` and 16-bit samples),
on a 4:2:0 YUV file whose chroma planes are mid-grey (128 at 8 bit), and is
decoded with ``DecoderApp -b out.bin -o rec.yuv -d 8``. VTM writes no
access-unit delimiters, so ``Bitstream.bits`` is the size of ``out.bin``.
The encoder's log is kept in ``Bitstream.log``.

``chroma=400`` codes monochrome, as the MPEG FCM anchors do (CompressAI-Vision's and
FCTM's VTM calls): the YUV file holds the luma plane only and the encoder is told
``--InputChromaFormat=400`` (its ``ChromaFormatIDC`` defaults to the input's); the
decoder then writes a luma-only file (DecoderApp writes the stream's own chroma format).

Paths come from the options ``encoder``, ``decoder``, ``cfg`` or else from
the environment variables ``FCM_VTM_ENCODER``, ``FCM_VTM_DECODER`` and
``FCM_VTM_CFG``. QP is VVC's (0..63); the cfg adds its own offsets (VTM-9.0's
RA cfg: intra period 32, GOP 16, IntraQPOffset -3).
"""
from __future__ import annotations

import os
import subprocess
import tempfile

import numpy as np

from ..errors import BitstreamError, CodecError, CodecNotFoundError
from ..ffmpeg import log_tail
from .base import CODECS, Bitstream, Codec, Option
from .ffmpeg_base import frames_to_planar, planar_to_luma

__all__ = ["VTMCodec", "vtm_encoder_command", "vtm_decoder_command", "ENV_VTM"]

ENV_VTM = {"encoder": "FCM_VTM_ENCODER", "decoder": "FCM_VTM_DECODER", "cfg": "FCM_VTM_CFG"}


def vtm_encoder_command(encoder: str, cfg: str, yuv: str, bitstream: str, qp: int, width: int, height: int,
                        n_frames: int, bit_depth: int = 8, recon: str = os.devnull, chroma: str = "420") -> list[str]:
    """argv of the paper's EncoderApp call (see the module docstring); ``chroma="400"`` adds
    ``--InputChromaFormat=400`` (a luma-only YUV file, coded monochrome)."""
    if chroma not in ("420", "400"):
        raise ValueError(f"vtm: chroma={chroma!r}; use 420 or 400")
    return [
        str(encoder), "-c", str(cfg), "-i", str(yuv), "-b", str(bitstream), "-q", str(int(qp)),
        f"--InputBitDepth={bit_depth}", f"--OutputBitDepth={bit_depth}",
        "-wdt", str(int(width)), "-hgt", str(int(height)),
        "--FrameRate=1", "--FrameSkip=0", "-f", str(int(n_frames)),
        *(["--InputChromaFormat=400"] if chroma == "400" else []),
        "-o", str(recon),
    ]


def vtm_decoder_command(decoder: str, bitstream: str, recon: str, bit_depth: int = 8) -> list[str]:
    """argv of ``DecoderApp -b out.bin -o rec.yuv -d <bit_depth>``."""
    return [str(decoder), "-b", str(bitstream), "-o", str(recon), "-d", str(int(bit_depth))]


def _run(argv: list[str], cwd: str, timeout: float | None) -> tuple[int, str]:
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as exc:
        out = ((exc.stdout or b"") + (exc.stderr or b"")).decode("utf-8", "replace")
        raise CodecError(f"{os.path.basename(argv[0])} timed out after {timeout} s: {log_tail(out)}", log=out) from exc
    except OSError as exc:
        raise CodecNotFoundError(f"cannot run {argv[0]!r} ({exc}); check the VTM binary and its permissions") from exc
    return proc.returncode, (proc.stdout + proc.stderr).decode("utf-8", "replace")


@CODECS.register("vtm")
class VTMCodec(Codec):
    """VTM EncoderApp/DecoderApp by path. Options: encoder, decoder, cfg (paths;
    default: $FCM_VTM_ENCODER, $FCM_VTM_DECODER, $FCM_VTM_CFG), timeout (seconds
    per call, default none), chroma (400 monochrome; default 4:2:0 with mid-grey chroma)."""

    name = "vtm"
    grid = 8
    qp_range = (0, 63)
    bit_depths = (8, 10)
    OPTIONS = {
        "encoder": Option(None, str, "path of EncoderApp (default $FCM_VTM_ENCODER)"),
        "decoder": Option(None, str, "path of DecoderApp (default $FCM_VTM_DECODER)"),
        "cfg": Option(None, str, "encoder cfg, e.g. encoder_randomaccess_vtm.cfg (default $FCM_VTM_CFG)"),
        "timeout": Option(None, float, "seconds allowed per EncoderApp/DecoderApp call"),
        # None (left out of the spec, so existing cell keys stay) is the paper's 4:2:0 with mid-grey chroma
        "chroma": Option(None, str, "400 (monochrome, --InputChromaFormat=400) or 420 (mid-grey chroma; default)",
                         choices=("420", "400")),
    }

    def _check_options(self) -> None:
        if self.options["chroma"] == "420":
            self.options["chroma"] = None  # the default spelled out: the same codec, the same spec

    def _chroma(self) -> str:
        return self.options["chroma"] or "420"

    def _path(self, key: str, executable: bool) -> str:
        path = self.options[key] or os.environ.get(ENV_VTM[key])
        what = {"encoder": "VTM EncoderApp", "decoder": "VTM DecoderApp", "cfg": "VTM encoder cfg"}[key]
        if not path:
            raise CodecNotFoundError(f"{what} is not configured: set {ENV_VTM[key]} or pass vtm:{key}=PATH")
        if not os.path.isfile(path) or (executable and not os.access(path, os.X_OK)):
            state = "is not executable" if os.path.isfile(path) else "does not exist"
            raise CodecNotFoundError(f"{what} {path!r} {state}; fix {ENV_VTM[key]} or the {key}= option")
        return os.path.abspath(path)

    def check_available(self) -> None:
        self._path("encoder", True)
        self._path("decoder", True)
        self._path("cfg", False)

    def _encode(self, frames: np.ndarray, qp: int, bit_depth: int) -> Bitstream:
        encoder, cfg = self._path("encoder", True), self._path("cfg", False)
        n, h, w = frames.shape
        with tempfile.TemporaryDirectory(prefix="fcm-vtm-") as tmp:
            yuv, out = os.path.join(tmp, "in.yuv"), os.path.join(tmp, "out.bin")
            with open(yuv, "wb") as f:
                f.write(frames_to_planar(frames, self._chroma(), bit_depth, bit_depth))
            argv = vtm_encoder_command(encoder, cfg, yuv, out, qp, w, h, n, bit_depth, chroma=self._chroma())
            rc, log = _run(argv, tmp, self.options["timeout"])
            if rc != 0:
                raise CodecError(f"VTM encode failed (EncoderApp exit {rc}): {log_tail(log)}", log=log)
            if not os.path.isfile(out) or os.path.getsize(out) == 0:
                raise CodecError(f"VTM EncoderApp wrote no bitstream: {log_tail(log)}", log=log)
            with open(out, "rb") as f:
                data = f.read()
        return Bitstream(data=data, n_frames=n, height=h, width=w, bit_depth=bit_depth, codec=self.spec(), log=log)

    def _decode(self, bitstream: Bitstream) -> np.ndarray:
        if not bitstream.data:
            raise BitstreamError("vtm decode: the bitstream is empty")
        decoder = self._path("decoder", True)
        bd = bitstream.bit_depth
        with tempfile.TemporaryDirectory(prefix="fcm-vtm-") as tmp:
            src, rec = os.path.join(tmp, "out.bin"), os.path.join(tmp, "rec.yuv")
            with open(src, "wb") as f:
                f.write(bitstream.data)
            rc, log = _run(vtm_decoder_command(decoder, src, rec, bd), tmp, self.options["timeout"])
            if rc != 0:
                raise BitstreamError(f"VTM decode failed (DecoderApp exit {rc}): {log_tail(log)}", log=log)
            if not os.path.isfile(rec):
                raise BitstreamError(f"VTM DecoderApp wrote no frames: {log_tail(log)}", log=log)
            with open(rec, "rb") as f:
                raw = f.read()
        return planar_to_luma(raw, bitstream.n_frames, bitstream.height, bitstream.width, self._chroma(), bd, bd,
                              what="vtm decode")

    def prediction_structure(self, n_frames: int):
        """Intra flags and reference pictures of ``n_frames`` frames, parsed from the cfg's ``FrameN:``
        lines, ``GOPSize``, ``IntraPeriod`` and ``IntraQPOffset`` (no encode; see :func:`codec.structure.from_vtm_cfg`)."""
        from ..structure import from_vtm_cfg

        cfg = self._path("cfg", False)
        with open(cfg, encoding="utf-8", errors="replace") as f:
            return from_vtm_cfg(f.read(), n_frames, source=f"VTM cfg {os.path.basename(cfg)}")
