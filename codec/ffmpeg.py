"""Locating and running ffmpeg.

The default ffmpeg is the static build shipped by the ``imageio-ffmpeg``
wheel (it has libvvenc, libx265, libsvtav1, libaom, libkvazaar, ffv1 and the
native ``vvc`` decoder). The environment variable ``FCM_FFMPEG`` points to
another binary and wins when set.

Everything is run with argument lists (never a shell), with stdin/stdout as
pipes and stderr captured, so failures can be reported with the end of the
tool's own log.
"""
from __future__ import annotations

import functools
import os
import subprocess
from collections.abc import Sequence

from .errors import CodecError, CodecNotFoundError

__all__ = [
    "ENV_FFMPEG",
    "ffmpeg_exe",
    "available_encoders",
    "available_decoders",
    "require_encoder",
    "require_decoder",
    "run_ffmpeg",
    "log_tail",
]

ENV_FFMPEG = "FCM_FFMPEG"


def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary to use.

    ``$FCM_FFMPEG`` when set (it must name an existing executable file),
    otherwise ``imageio_ffmpeg.get_ffmpeg_exe()``.

    Raises:
        CodecNotFoundError: no usable binary; the message says how to get one.
    """
    env = os.environ.get(ENV_FFMPEG)
    if env:
        if not os.path.isfile(env) or not os.access(env, os.X_OK):
            raise CodecNotFoundError(
                f"{ENV_FFMPEG}={env!r} is not an executable file; point it to an ffmpeg binary "
                f"or unset it to use the one from imageio-ffmpeg"
            )
        return env
    try:
        import imageio_ffmpeg
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise CodecNotFoundError(
            f"no ffmpeg: imageio-ffmpeg is not installed; run `pip install imageio-ffmpeg` "
            f"or set {ENV_FFMPEG} to an ffmpeg binary"
        ) from exc
    try:
        return imageio_ffmpeg.get_ffmpeg_exe()
    except RuntimeError as exc:
        raise CodecNotFoundError(
            f"imageio-ffmpeg found no ffmpeg binary ({exc}); reinstall imageio-ffmpeg "
            f"(`pip install --force-reinstall imageio-ffmpeg`) or set {ENV_FFMPEG}"
        ) from exc


@functools.lru_cache(maxsize=16)
def _list_components(exe: str, kind: str) -> frozenset[str]:
    """Names in ``ffmpeg -encoders`` / ``-decoders`` output (cached per binary)."""
    try:
        proc = subprocess.run(
            [exe, "-hide_banner", f"-{kind}"], capture_output=True, text=True, timeout=60
        )
    except OSError as exc:
        raise CodecNotFoundError(f"cannot run ffmpeg at {exe!r} ({exc}); set {ENV_FFMPEG} to a working binary") from exc
    if proc.returncode != 0:  # a broken binary: say so, rather than "has no encoder X"
        raise CodecError(
            f"ffmpeg at {exe} failed to list its {kind} (exit {proc.returncode}): {log_tail(proc.stderr)}; "
            f"set {ENV_FFMPEG} to a working ffmpeg binary or unset it to use the one from imageio-ffmpeg",
            log=proc.stderr,
        )
    names = set()
    seen_rule = False
    for line in proc.stdout.splitlines():
        if line.strip().startswith("------"):
            seen_rule = True
            continue
        parts = line.split()
        if seen_rule and len(parts) >= 2:
            names.add(parts[1])
    return frozenset(names)


def available_encoders(exe: str | None = None) -> frozenset[str]:
    """Encoder names the ffmpeg binary offers (cached)."""
    return _list_components(exe or ffmpeg_exe(), "encoders")


def available_decoders(exe: str | None = None) -> frozenset[str]:
    """Decoder names the ffmpeg binary offers (cached)."""
    return _list_components(exe or ffmpeg_exe(), "decoders")


def require_encoder(name: str, exe: str | None = None) -> str:
    """Return the ffmpeg path after checking it has encoder ``name``."""
    exe = exe or ffmpeg_exe()
    if name not in available_encoders(exe):
        raise CodecNotFoundError(
            f"ffmpeg at {exe} has no encoder {name!r}; use an ffmpeg built with it "
            f"(the imageio-ffmpeg >= 0.6 wheel has it) and point {ENV_FFMPEG} to it"
        )
    return exe


def require_decoder(name: str, exe: str | None = None) -> str:
    """Return the ffmpeg path after checking it has decoder ``name``."""
    exe = exe or ffmpeg_exe()
    if name not in available_decoders(exe):
        raise CodecNotFoundError(
            f"ffmpeg at {exe} has no decoder {name!r}; use an ffmpeg built with it "
            f"(the imageio-ffmpeg >= 0.6 wheel has it) and point {ENV_FFMPEG} to it"
        )
    return exe


_ERROR_WORDS = ("error", "invalid", "fail", "cannot", "can't", "not found", "unable", "unsupported", "too small")


def log_tail(log: str, n_lines: int = 4, max_chars: int = 900) -> str:
    """The informative part of a tool log on one line (`` | ``-joined).

    The first few lines that look like errors (they usually name the cause,
    e.g. an invalid parameter) followed by the last lines of the log.
    """
    lines = [ln.strip() for ln in log.replace("\r", "\n").splitlines() if ln.strip()]
    errors = [ln for ln in lines if any(w in ln.lower() for w in _ERROR_WORDS)][:3]
    picked = errors + [ln for ln in lines[-n_lines:] if ln not in errors]
    text = " | ".join(picked)
    return text if len(text) <= max_chars else text[: max_chars - 3] + "..."


def run_ffmpeg(
    args: Sequence[str],
    input: bytes | None = None,
    what: str = "ffmpeg",
    error: type[CodecError] = CodecError,
    exe: str | None = None,
    timeout: float | None = None,
) -> tuple[bytes, str]:
    """Run ``ffmpeg <args>`` and return ``(stdout bytes, stderr text)``.

    Args:
        args: arguments after the executable (a list, never a shell string).
        input: bytes fed to stdin (raw frames or a bitstream), or None.
        what: short description used in the error message ("libvvenc encode").
        error: exception class raised on a non-zero exit.
        exe: ffmpeg path (default :func:`ffmpeg_exe`).
        timeout: seconds before the process is killed (then ``error`` is raised).
    """
    exe = exe or ffmpeg_exe()
    cmd = [exe, *map(str, args)]
    try:
        proc = subprocess.run(
            cmd, input=input, capture_output=True, timeout=timeout,
            stdin=None if input is not None else subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        log = (exc.stderr or b"").decode("utf-8", "replace")
        raise error(f"{what} timed out after {timeout} s: {log_tail(log)}", log=log) from exc
    except OSError as exc:
        raise CodecNotFoundError(f"cannot run ffmpeg at {exe!r} ({exc}); set {ENV_FFMPEG} to a working binary") from exc
    log = proc.stderr.decode("utf-8", "replace")
    if proc.returncode != 0:
        raise error(f"{what} failed (ffmpeg exit {proc.returncode}): {log_tail(log)}", log=log)
    return proc.stdout, log
