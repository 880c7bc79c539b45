"""Frames of a video as samples, and a calibration/test split that is disjoint in time.

Decoding
--------
Frames are decoded once, in one pass, by the ffmpeg the package already uses
(:func:`codec.ffmpeg.ffmpeg_exe`: the static build in ``imageio-ffmpeg``), with the argument list of
:func:`decode_args`: every frame as it is decoded (``-fps_mode passthrough``: no frame is dropped or
repeated to fit a frame rate), converted to 8-bit RGB and written to a pipe as PPM (raw ``rgb24``
behind a short ``P6 W H 255`` header, so each frame says its own size and nothing has to be
probed first). ``-cpuflags 0`` switches off ffmpeg's SIMD code: the YUV -> RGB conversion of
swscale gives different bytes with and without it (measured on ``vtest.avi``: identical YUV from
the decoder, different RGB), so SIMD paths that vary with the CPU would make a frame's bytes, and
so every cached feature and the detector's reference detections, depend on the machine. The C
path costs about 10 % more time (2.7 s instead of 2.5 s for all 795 frames of ``vtest.avi``).

Frames become in-memory :class:`eval.data.images.Sample` objects (``image`` set, ``path`` None) with
ids ``<prefix>-f<index>`` (``vtest-f0123``), so their content digest
(:func:`eval.data.images.content_digest`, the feature cache's key) is the digest of the decoded
pixels, the same on every machine for the same video and ffmpeg.

The split
---------
:func:`time_split_indices` takes calibration frames from the start of the video and test frames
from a later stretch, ``gap`` frames after the last calibration frame, every ``stride``-th frame in
both. Neighbouring frames of a video are nearly the same picture: a random split would put
near-copies of test frames into calibration. The default (32 calibration frames every 8th from
frame 0, a gap of 40 frames, 64 test frames every 8th) spans ``vtest.avi``'s 795 frames:
calibration frames 0-248 (the first 25 s), test frames 288-792 (the last 50 s), at least 4 s
apart.

The module imports numpy and the package's stdlib-only ffmpeg locator, not torch, so
``tests/data/ssdlite/make_reference.py`` decodes with this very code in an environment without torch.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

from eval.data.images import Sample

__all__ = ["DEFAULT_SPLIT", "decode_args", "decode_frames", "frame_samples", "frame_index",
           "time_split_indices", "video_split", "installed_video"]

DEFAULT_SPLIT = {"n_calib": 32, "n_test": 64, "stride": 8, "gap": 40}
"""Parameters of the default :func:`video_split` (see the module docstring)."""

_ID = re.compile(r"^(?P<prefix>.+)-f(?P<index>\d+)$")


def decode_args(path: str | os.PathLike, n_frames: int | None = None) -> list[str]:
    """ffmpeg arguments (after the executable) that write the first ``n_frames`` frames (all when None)
    of ``path``'s first video stream to stdout as PPM ``rgb24`` images, without SIMD (module docstring)."""
    args = ["-hide_banner", "-nostdin", "-loglevel", "error", "-cpuflags", "0", "-i", str(path),
            "-map", "0:v:0", "-fps_mode", "passthrough"]
    if n_frames is not None:
        args += ["-frames:v", str(int(n_frames))]
    return args + ["-pix_fmt", "rgb24", "-c:v", "ppm", "-f", "image2pipe", "-"]


def _read_token(stream) -> bytes:
    """The next whitespace-delimited PPM header token (the single whitespace after it is consumed)."""
    token = b""
    while True:
        c = stream.read(1)
        if not c:
            return token
        if c.isspace():
            if token:
                return token
            continue
        token += c


def _read_ppm(stream, what: str) -> np.ndarray | None:
    """One binary PPM image from ``stream`` as ``H x W x 3`` uint8, or None at the end of the stream."""
    magic = stream.read(2)
    if not magic:
        return None
    if magic != b"P6":
        raise ValueError(f"{what}: ffmpeg wrote {magic!r} where a PPM frame should start; check FCM_FFMPEG")
    width, height, maxval = (int(_read_token(stream) or 0) for _ in range(3))
    if width <= 0 or height <= 0 or maxval != 255:
        raise ValueError(f"{what}: unexpected PPM header {width}x{height} max {maxval}; check FCM_FFMPEG")
    n = width * height * 3
    data = stream.read(n)
    if len(data) != n:
        raise ValueError(f"{what}: ffmpeg's output ended inside a frame ({len(data)} of {n} bytes)")
    return np.frombuffer(data, dtype=np.uint8).reshape(height, width, 3)


def decode_frames(path: str | os.PathLike, indices: Iterable[int], exe: str | None = None) -> dict[int, np.ndarray]:
    """The frames ``indices`` (0-based, in decoding order) of the video at ``path``: ``{index: H x W x 3 uint8}``.

    One ffmpeg run decodes up to the last wanted frame (:func:`decode_args`); the other frames are
    read and dropped. Raises ``FileNotFoundError`` for a missing file, ``ValueError`` when the video
    has fewer frames than asked for, :class:`codec.errors.CodecError` when ffmpeg fails.
    """
    from codec.errors import CodecError
    from codec.ffmpeg import ffmpeg_exe, log_tail

    wanted = sorted({int(i) for i in indices})
    if not wanted:
        return {}
    if wanted[0] < 0:
        raise ValueError(f"frame indices must be >= 0, got {wanted[0]}")
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"video {p} does not exist; check the path (or run `python -m eval.install` for vtest.avi)")
    cmd = [exe or ffmpeg_exe(), *decode_args(p, wanted[-1] + 1)]
    out: dict[int, np.ndarray] = {}
    keep = set(wanted)
    with tempfile.TemporaryFile() as err:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=err)
        n = 0
        try:
            while (frame := _read_ppm(proc.stdout, str(p))) is not None:
                if n in keep:
                    out[n] = frame.copy()  # a writeable array that owns its memory
                n += 1
        finally:
            proc.stdout.close()
            rc = proc.wait()
        if rc != 0:
            err.seek(0)
            raise CodecError(f"ffmpeg could not decode {p} (exit {rc}): {log_tail(err.read().decode('utf-8', 'replace'))}")
    if n <= wanted[-1]:
        raise ValueError(f"video {p} has {n} frames but frame {wanted[-1]} was asked for; "
                         "ask for fewer frames or a smaller stride/gap")
    return out


def frame_samples(path: str | os.PathLike, indices: Sequence[int], prefix: str | None = None,
                  exe: str | None = None) -> list[Sample]:
    """In-memory samples of the frames ``indices`` of ``path`` (in the given order), ids ``<prefix>-f<index:04d>``.

    ``prefix`` defaults to the file's stem (``vtest`` for ``vtest.avi``).
    """
    prefix = Path(path).stem if prefix is None else str(prefix)
    frames = decode_frames(path, indices, exe=exe)
    return [Sample(id=f"{prefix}-f{int(i):04d}", path=None, image=frames[int(i)]) for i in indices]


def frame_index(sample_id: str) -> int:
    """The frame index in a frame sample's id (``vtest-f0123`` -> 123); ``ValueError`` for other ids."""
    m = _ID.match(str(sample_id))
    if m is None:
        raise ValueError(f"{sample_id!r} is not a video frame id (<prefix>-f<index>, e.g. vtest-f0123)")
    return int(m.group("index"))


def time_split_indices(n_calib: int = DEFAULT_SPLIT["n_calib"], n_test: int = DEFAULT_SPLIT["n_test"],
                       stride: int = DEFAULT_SPLIT["stride"], gap: int = DEFAULT_SPLIT["gap"],
                       start: int = 0) -> tuple[list[int], list[int]]:
    """Frame indices ``(calibration, test)``, disjoint in time.

    Calibration: ``start, start + stride, ...`` (``n_calib`` frames). Test: ``n_test`` frames every
    ``stride``-th, the first one ``gap`` frames after the last calibration frame, so every test frame is
    at least ``gap`` frames later than every calibration frame.
    """
    for label, v, low in (("n_calib", n_calib, 1), ("n_test", n_test, 1), ("stride", stride, 1),
                          ("gap", gap, 1), ("start", start, 0)):
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise ValueError(f"{label}={v!r} must be an integer >= {low}")
    calib = [int(start + k * stride) for k in range(n_calib)]
    first = calib[-1] + gap
    test = [int(first + k * stride) for k in range(n_test)]
    return calib, test


def installed_video(name: str = "vtest.avi") -> Path:
    """Path of the installed opencv-doc video (``FileNotFoundError`` naming ``python -m eval.install`` when missing)."""
    from eval.data.installed import opencv_doc_file

    return opencv_doc_file(name)


def video_split(path: str | os.PathLike | None = None, n_calib: int = DEFAULT_SPLIT["n_calib"],
                n_test: int = DEFAULT_SPLIT["n_test"], stride: int = DEFAULT_SPLIT["stride"],
                gap: int = DEFAULT_SPLIT["gap"], start: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Calibration and test frame samples of ``path`` (default: the installed ``vtest.avi``),
    chosen by :func:`time_split_indices`; one decoding pass for both."""
    path = installed_video() if path is None else Path(path)
    calib_idx, test_idx = time_split_indices(n_calib, n_test, stride, gap, start)
    samples = frame_samples(path, calib_idx + test_idx)
    return samples[:n_calib], samples[n_calib:]
