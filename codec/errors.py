"""Exceptions raised by the codec package.

All derive from :class:`CodecError` (a ``RuntimeError``) so callers can catch
every codec failure at once, while tests and the runner can tell a missing
tool (fix the installation) from a broken bitstream (fix the data).
"""
from __future__ import annotations

__all__ = ["CodecError", "CodecNotFoundError", "BitstreamError"]


class CodecError(RuntimeError):
    """An encoder or decoder failed.

    ``log`` holds the full tool output (stderr) when there is one, so the
    message itself can stay short.
    """

    def __init__(self, message: str, log: str = ""):
        super().__init__(message)
        self.log = log


class CodecNotFoundError(CodecError):
    """A needed binary (ffmpeg, VTM) or an ffmpeg encoder/decoder is missing."""


class BitstreamError(CodecError):
    """A bitstream could not be decoded: corrupt, truncated or of another codec."""
