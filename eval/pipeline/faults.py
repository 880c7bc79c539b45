"""Which failures belong to the machinery that runs cells, not to a cell: they are never a cell's attempt.

A lost Dask scheduler cancels every pending future, a connection closes while a result is
fetched, a cluster has no workers: none of that says anything about the cell, so the runner
stops the study with one line and stores nothing for the cells in flight
(:mod:`eval.pipeline.runner`), and stored error rows that earlier versions wrote for such
faults are not counted as attempts (:func:`is_machinery_error`, read by the results store).

Resource faults are the machine's, not the cell's, either: a full disk, a read-only or
unwritable folder (:func:`resource_fault`). A cell that meets one is not recorded and does not
spend an attempt; the study stops with one :class:`ResourceError` line, keeping every finished
cell, and the same command resumes once space or permission is back.
"""

from __future__ import annotations

import errno

from eval.errors import RESOURCE_ERRNOS

__all__ = ["is_machinery_error", "machinery_exceptions", "is_machinery_exception", "client_lost", "machinery_fault",
           "ResourceError", "resource_fault", "RESOURCE_ERRNOS"]

#: how child processes (ffmpeg, VTM) report those in their own words
_RESOURCE_WORDS = ("No space left on device", "Disk quota exceeded", "Read-only file system")


class ResourceError(RuntimeError):
    """The machine cannot write what a study needs (space, quota, read-only, permission): one line, no cell blamed."""


def resource_fault(exc: BaseException) -> str | None:
    """A one-line description when ``exc`` (or an exception it was raised from) is a resource fault, else None.

    Looks at ``OSError.errno`` along the ``__cause__``/``__context__`` chain, and at the words a
    child process (an encoder) uses for the same faults in its error text.
    """
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in RESOURCE_ERRNOS:
            where = f" ({exc.filename})" if getattr(exc, "filename", None) else ""
            return f"{exc.strerror or errno.errorcode.get(exc.errno, 'OSError')}{where}"
        text = str(exc)
        word = next((w for w in _RESOURCE_WORDS if w in text), None)
        if word is not None:
            return word
        exc = exc.__cause__ or exc.__context__
    return None

#: how error rows begin that earlier versions stored for faults of the Dask machinery (a lost
#: scheduler cancels every pending future), not of the cell; the runner no longer stores them
_MACHINERY_PREFIXES = ("FutureCancelledError", "FuturesCancelledError", "CancelledError", "CommClosedError",
                       "ClosedClientError")
_MACHINERY_WORDS = ("scheduler-connection-lost", "Client lost the connection to the scheduler")


def is_machinery_error(error: object) -> bool:
    """True for an error text that blames the cluster, not the cell: such attempts are not counted."""
    text = str(error or "").lstrip()
    return text.startswith(_MACHINERY_PREFIXES) or any(w in text for w in _MACHINERY_WORDS)


def machinery_exceptions() -> tuple[type, ...]:
    """Exceptions the cluster raises about itself, never a cell's own failure (when not raised by the task)."""
    from concurrent.futures import CancelledError

    from distributed.comm.core import CommClosedError

    types: list[type] = [CancelledError, CommClosedError]
    try:
        from distributed.client import ClosedClientError

        types.append(ClosedClientError)
    except ImportError:  # pragma: no cover - older distributed
        pass
    try:
        from distributed.scheduler import NoValidWorkerError, NoWorkerError

        types += [NoValidWorkerError, NoWorkerError]
    except ImportError:  # pragma: no cover - older distributed
        pass
    return tuple(types)


def is_machinery_exception(exc: BaseException) -> bool:
    return isinstance(exc, machinery_exceptions())


def client_lost(client) -> bool:
    """True when the client no longer talks to its scheduler (reconnecting, closing or closed)."""
    return getattr(client, "status", "running") not in ("running", "newly-created")


def machinery_fault(fut, exc: BaseException, client) -> bool:
    """Whether ``fut`` failed because of the cluster (scheduler lost, future cancelled, result not fetched).

    A task that raised on a worker (``status == "error"``) is the cell's failure, whatever it
    raised (a codec's own TimeoutError or OSError included), except the scheduler's own
    "no workers" errors. Anything else (a cancelled future, a comm error while fetching the
    result, a client that lost its scheduler) is the machinery's.
    """
    if is_machinery_exception(exc):
        return True
    status = getattr(fut, "status", None)
    if status == "error":
        return False
    if status in ("cancelled", "lost") or client_lost(client):
        return True
    return isinstance(exc, (OSError, TimeoutError))  # the finished result could not be fetched
