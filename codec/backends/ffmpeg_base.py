"""Shared machinery for backends that run through ffmpeg.

Frames travel as raw planar video on stdin; the encoded elementary stream
comes back on stdout (no container unless the codec has no raw format), and
decoding pipes the stream back in and reads raw frames out, in the very pixel
format that was encoded so ffmpeg's scaler never touches the samples.

Luma-only frames are turned into the encoder's pixel format here:

* ``gray`` / ``gray10le`` (4:0:0) where the codec allows monochrome;
* ``yuv420p`` / ``yuv420p10le`` with both chroma planes at mid-grey
  (128 at 8 bit, 512 at 10 bit) otherwise.

An encoder may code another chroma format than the one it is fed: ffmpeg's libvvenc
takes only ``yuv420p10le``, yet codes 4:0:0 when told ``ChromaFormatIDC=400``; its
stream then decodes to ``gray10le``. :meth:`FFmpegCodec._input_chroma` (what the
encoder is fed) and :meth:`FFmpegCodec._chroma` (what it codes and the decoder
returns) say which.

When the encoder codes at a higher depth than the input (libvvenc takes only
10-bit input), luma is shifted up by ``x << 2`` (what ffmpeg's and VTM's 8->10
bit conversions do) and the decoder output is brought back with
``(x + 2) >> 2`` clipped to 255, which is exact for lossless coding.
"""
from __future__ import annotations

import re
from typing import ClassVar

import numpy as np

from ..errors import BitstreamError, CodecError
from ..ffmpeg import ffmpeg_exe, log_tail, require_decoder, require_encoder, run_ffmpeg
from .base import Bitstream, Codec

__all__ = ["FFmpegCodec", "frames_to_planar", "planar_to_luma", "frame_types"]

_EMPTY_OUTPUT_TRIES = 3

_PIX_FMTS = {
    ("420", 8): "yuv420p",
    ("420", 10): "yuv420p10le",
    ("400", 8): "gray",
    ("400", 10): "gray10le",
}


def frames_to_planar(frames: np.ndarray, chroma: str, coded_depth: int, input_depth: int) -> bytes:
    """Luma frames [N, H, W] -> raw planar bytes (``gray*`` or ``yuv420p*`` layout)."""
    n, h, w = frames.shape
    dtype = np.dtype("<u2") if coded_depth > 8 else np.dtype(np.uint8)
    luma = frames.astype(dtype)
    if coded_depth > input_depth:
        luma <<= coded_depth - input_depth
    if chroma == "400":
        return luma.tobytes()
    if h % 2 or w % 2:
        raise ValueError(f"4:2:0 needs even frame sizes, got {h}x{w}")
    ch = np.full((n, 2 * (h // 2) * (w // 2)), 1 << (coded_depth - 1), dtype=dtype)
    return np.concatenate([luma.reshape(n, -1), ch], axis=1).tobytes()


def planar_to_luma(buf: bytes, n: int, h: int, w: int, chroma: str, coded_depth: int, output_depth: int,
                   what: str) -> np.ndarray:
    """Raw planar bytes -> luma [N, H, W] (uint8 for 8-bit output, uint16 for 10-bit)."""
    dtype = np.dtype("<u2") if coded_depth > 8 else np.dtype(np.uint8)
    frame_samples = h * w if chroma == "400" else h * w + 2 * (h // 2) * (w // 2)
    expected = n * frame_samples * dtype.itemsize
    if len(buf) != expected:
        got = len(buf) / (frame_samples * dtype.itemsize)
        raise BitstreamError(
            f"{what}: decoder produced {got:g} frames of {h}x{w} instead of {n}; the bitstream is truncated "
            f"or corrupt: encode the features again"
        )
    y = np.frombuffer(buf, dtype=dtype).reshape(n, frame_samples)[:, : h * w].reshape(n, h, w)
    out_dtype = np.uint8 if output_depth == 8 else np.uint16
    if coded_depth > output_depth:
        shift = coded_depth - output_depth
        y = (y.astype(np.uint32) + (1 << (shift - 1))) >> shift
        return np.minimum(y, (1 << output_depth) - 1).astype(out_dtype)
    return y.astype(out_dtype)


class FFmpegCodec(Codec):
    """Base for ffmpeg backends.

    Subclasses set ``encoder`` / ``decoder`` (ffmpeg component names),
    ``muxer`` / ``demuxer`` (stream formats) and implement
    :meth:`_encoder_args`; they may override :meth:`_chroma` and
    :meth:`_coded_depth`. Option ``threads`` is expected in ``OPTIONS``.
    """

    encoder: ClassVar[str] = ""
    decoder: ClassVar[str] = ""
    muxer: ClassVar[str] = ""
    demuxer: ClassVar[str] = ""

    # ------------------------------------------------------------ hooks
    def _chroma(self) -> str:
        """The chroma format coded (and decoded): ``"420"`` or ``"400"``."""
        return self.options.get("chroma") or "420"

    def _input_chroma(self) -> str:
        """The chroma format of the raw frames the encoder is fed (default: the coded one)."""
        return self._chroma()

    def _coded_depth(self, bit_depth: int) -> int:
        """Sample depth handed to the encoder for ``bit_depth`` input."""
        return bit_depth

    def _encoder_args(self, qp: int, bit_depth: int) -> list[str]:  # pragma: no cover - abstract
        raise NotImplementedError

    def _check_output(self, data: bytes, log: str) -> None:
        """Extra checks of the encoded stream (override)."""

    def _explain_failure(self, log: str, shape: tuple[int, int, int], qp: int) -> str | None:
        """A hint about a known cause of an encoder failure, or None (override)."""
        return None

    # ------------------------------------------------------------ plumbing
    def check_available(self) -> None:
        exe = ffmpeg_exe()
        require_encoder(self.encoder, exe)
        require_decoder(self.decoder, exe)

    def pix_fmt(self, bit_depth: int) -> str:
        """ffmpeg pixel format of the coded (and decoded) frames."""
        return _PIX_FMTS[(self._chroma(), self._coded_depth(bit_depth))]

    def input_pix_fmt(self, bit_depth: int) -> str:
        """ffmpeg pixel format of the frames handed to the encoder."""
        return _PIX_FMTS[(self._input_chroma(), self._coded_depth(bit_depth))]

    def _threads(self) -> str:
        return str(self.options.get("threads", 1))

    def encode_command(self, n: int, h: int, w: int, qp: int, bit_depth: int) -> list[str]:
        """ffmpeg arguments (without the executable) that encode raw frames on stdin to stdout."""
        return [
            "-hide_banner", "-nostdin", "-nostats", "-loglevel", "info",
            "-f", "rawvideo", "-pix_fmt", self.input_pix_fmt(bit_depth), "-video_size", f"{w}x{h}",
            "-framerate", "1", "-i", "pipe:0",
            "-map", "0:v:0", "-fps_mode", "passthrough", "-frames:v", str(n),
            "-c:v", self.encoder, "-threads", self._threads(), *self._encoder_args(qp, bit_depth),
            "-f", self.muxer, "pipe:1",
        ]

    def decode_command(self, bit_depth: int) -> list[str]:
        """ffmpeg arguments that decode a stream on stdin to raw frames on stdout."""
        return [
            "-hide_banner", "-nostdin", "-loglevel", "error", "-xerror",
            "-threads", self._threads(), "-c:v", self.decoder, "-f", self.demuxer, "-i", "pipe:0",
            "-map", "0:v:0", "-fps_mode", "passthrough",
            "-f", "rawvideo", "-pix_fmt", self.pix_fmt(bit_depth), "pipe:1",
        ]

    def _encode(self, frames: np.ndarray, qp: int, bit_depth: int) -> Bitstream:
        n, h, w = frames.shape
        raw = frames_to_planar(frames, self._input_chroma(), self._coded_depth(bit_depth), bit_depth)
        # libvvenc in the imageio-ffmpeg build now and then exits 0 with no output at all
        # ("Output file is empty", about 1 encode in 100 while several run at once; measured).
        # The encoders are deterministic, so trying again yields the very stream a clean run gives.
        for _ in range(_EMPTY_OUTPUT_TRIES):
            try:
                data, log = run_ffmpeg(self.encode_command(n, h, w, qp, bit_depth), input=raw,
                                       what=f"{self.name} encode ({self.encoder}, qp {qp})", error=CodecError)
            except CodecError as exc:
                hint = self._explain_failure(exc.log, frames.shape, qp)
                if hint:
                    raise CodecError(f"{self.name} encode failed: {hint}", log=exc.log) from exc
                raise
            if data:
                break
        else:
            raise CodecError(f"{self.name} encode produced an empty bitstream {_EMPTY_OUTPUT_TRIES} times in a row; "
                             "see the log attribute and check the ffmpeg build", log=log)
        self._check_output(data, log)
        return Bitstream(data=data, n_frames=n, height=h, width=w, bit_depth=bit_depth, codec=self.spec(), log=log)

    def _decode(self, bitstream: Bitstream) -> np.ndarray:
        if not bitstream.data:
            raise BitstreamError(f"{self.name} decode: the bitstream is empty; encode the features again")
        bd = bitstream.bit_depth
        if bd not in self.bit_depths:
            raise BitstreamError(f"{self.name} decode: bitstream says bit_depth={bd}, codec supports {self.bit_depths}")
        try:
            raw, _ = run_ffmpeg(self.decode_command(bd), input=bitstream.data,
                                what=f"{self.name} decode ({self.decoder})", error=BitstreamError)
        except BitstreamError as exc:
            raise BitstreamError(
                f"{self.name} decode: the {self.decoder} decoder rejected the {len(bitstream.data)}-byte bitstream "
                f"(truncated, corrupt or made by another codec; encode the features again, or decode it with the "
                f"codec that made it): {log_tail(exc.log, n_lines=1)}", log=exc.log,
            ) from exc
        return planar_to_luma(raw, bitstream.n_frames, bitstream.height, bitstream.width, self._chroma(),
                              self._coded_depth(bd), bd, what=f"{self.name} decode")


_SHOWINFO = re.compile(r"\bn:\s*(\d+)\b.*?\biskey:(\d)\s+type:(\w)")


def frame_types(codec: "FFmpegCodec", bitstream: Bitstream) -> list[str]:
    """Picture types ('I', 'P', 'B', ...) in output order, as ffmpeg's decoder reports them.

    Uses the ``showinfo`` filter; a key frame is reported as 'I'. Useful to
    check the intra period an encoder really used.
    """
    codec._check_bitstream(bitstream)
    args = ["-hide_banner", "-nostdin", "-loglevel", "info", "-threads", "1", "-c:v", codec.decoder,
            "-f", codec.demuxer, "-i", "pipe:0", "-map", "0:v:0", "-fps_mode", "passthrough",
            "-vf", "showinfo", "-f", "null", "-"]
    _, log = run_ffmpeg(args, input=bitstream.data, what=f"{codec.name} frame types", error=BitstreamError)
    types = {}
    for m in _SHOWINFO.finditer(log):
        types[int(m.group(1))] = "I" if m.group(2) == "1" else m.group(3)
    return [types[k] for k in sorted(types)]


def join_params(*parts: str, sep: str = ":") -> str:
    """Join non-empty ``key=value`` groups with ``sep``."""
    return sep.join(p for p in parts if p)
