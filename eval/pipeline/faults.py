"""Which failures belong to the machinery that runs cells, not to a cell: they are never a cell's attempt.

A lost Dask scheduler cancels every pending future, a connection closes while a result is
fetched, a cluster has no workers: none of that says anything about the cell, so the runner
stops the study with one line and stores nothing for the cells in flight
(:mod:`eval.pipeline.runner`), and stored error rows that earlier versions wrote for such
faults are not counted as attempts (:func:`is_machinery_error`, read by the results store).
"""

from __future__ import annotations

__all__ = ["is_machinery_error", "machinery_exceptions", "is_machinery_exception", "client_lost", "machinery_fault"]

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
