"""Exceptions raised by the ``eval`` package.

Each one subclasses the built-in exception a caller would naturally catch
(``ValueError`` for bad data, ``FileNotFoundError`` for a missing file), so
generic handlers keep working, while tests and the runner can tell them apart.
Messages are one line: what is wrong and what to do about it.
"""

from __future__ import annotations

import errno as _errno
import os

__all__ = ["ImageReadError", "RDCurveError", "FeatureError", "WeightsNotFoundError", "StorageError", "RESOURCE_ERRNOS"]

#: what an OSError's errno says when the machine, not the data, is at fault: a full disk or quota, a
#: read-only file system, no permission; each with the reason shown and what frees the way
RESOURCE_ERRNOS = {
    _errno.ENOSPC: ("no space left on the device", "free space there"),
    _errno.EDQUOT: ("disk quota exceeded", "free space there"),
    _errno.EROFS: ("read-only file system", "make it writable"),
    _errno.EACCES: ("permission denied", "make it writable"),
    _errno.EPERM: ("operation not permitted", "make it writable"),
}


class ImageReadError(ValueError):
    """An input image is missing, unreadable or not an image (message names the path and the reason)."""


class RDCurveError(ValueError):
    """A rate-distortion curve cannot be used for a Bjøntegaard delta (too few points, NaN, non-monotonic, no overlap)."""


class FeatureError(ValueError):
    """A model head produced unusable features (NaN/Inf, wrong shape or dtype)."""


class WeightsNotFoundError(FileNotFoundError):
    """Model weights are not installed; the message says which command installs them."""


class StorageError(OSError):
    """A file cannot be written for want of a resource (no space left, a read-only file system, no
    permission): the message names the folder and what to do, ``errno`` keeps the system's code.

    Not a fault of the data: a study stops with this one line and keeps what it finished.
    """

    def __init__(self, message: str, errno: int | None = None):
        super().__init__(message)
        self.errno = errno  # str() stays the one-line message (no strerror or filename is set)

    @classmethod
    def writing(cls, exc: OSError, what: str, folder: str | os.PathLike, elsewhere: str) -> "StorageError":
        """The error for ``exc``, raised while writing ``what`` in ``folder``; ``elsewhere`` says how to
        put it in another folder (e.g. "point the feature cache elsewhere (cache_dir)")."""
        reason, fix = RESOURCE_ERRNOS.get(exc.errno, (exc.strerror or str(exc) or type(exc).__name__, "check the disk"))
        return cls(f"cannot write {what} in {folder} ({reason}): {fix} or {elsewhere}", errno=exc.errno)
