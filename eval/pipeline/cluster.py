"""The Dask side of the runner: the package's only LocalCluster builder, connecting to a scheduler, its logs.

:func:`start_local_cluster` builds every local cluster (single-threaded worker processes forked
from :func:`prestart_workers`'s server); :func:`connect` gives the runner a client on a new
local cluster or on an existing scheduler, refusing bad or closed addresses at once; a lost
scheduler becomes one :class:`SchedulerError` line (:func:`lost_cluster`).
"""

from __future__ import annotations

import contextlib
import logging
import os

__all__ = ["SchedulerError", "WORKER_ENV", "WORKER_PRELOAD", "default_workers", "prestart_workers", "start_local_cluster",
           "connect", "quiet_dask_logs", "lost_cluster", "close_quietly"]

log = logging.getLogger(__name__)

#: environment of LocalCluster worker processes: one thread per worker, one worker per core
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

#: what a worker imports before its first cell (Dask, torch, scikit-learn through the quantizers, the
#: cell and the models): LocalCluster workers fork from one server process that imported these once
WORKER_PRELOAD = ("distributed", "numpy", "torch", "sklearn.base", "codec", "reorder", "eval.pipeline.cell", "eval.models")


class SchedulerError(RuntimeError):
    """The Dask scheduler cannot be reached or the cluster cannot start."""


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def prestart_workers() -> bool:
    """Start, in the background, the process that this driver's LocalCluster workers fork from.

    A worker started the default way (``spawn``) imports Dask, torch and scikit-learn itself
    before its first cell: about 4 s on this package's reference machine, paid by every worker
    of every cluster and counted in each cluster's start-up. Workers forked from a
    ``forkserver`` that imported :data:`WORKER_PRELOAD` once start with those modules loaded
    (shared copy-on-write). Called early (``studies.cli.run_study`` does so when a study will use
    local workers), the server's imports overlap the driver's own preparation (features,
    orders); :func:`start_local_cluster` calls it too, so it is never missing. The server gets
    :data:`WORKER_ENV` in its environment, so numpy and torch load there pinned to one thread;
    it imports nothing that starts threads, which keeps forking from it safe, and it ends with
    this driver. Idempotent; returns False where forkserver is unavailable (workers then spawn).
    """
    import multiprocessing
    from multiprocessing import forkserver

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return False
    saved = {name: os.environ.get(name) for name in WORKER_ENV}
    os.environ.update(WORKER_ENV)  # only the server process started now inherits this
    try:
        forkserver.set_forkserver_preload(list(WORKER_PRELOAD))
        forkserver.ensure_running()  # returns at once; the server imports, then serves forks
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return True


def start_local_cluster(workers: int):
    """A Dask ``LocalCluster`` of ``workers`` single-threaded worker processes on loopback: the package's only builder.

    One thread per worker and one worker per core (BLAS/OpenMP pinned to one thread in
    the workers), forked from :func:`prestart_workers`'s server where the platform has one
    (checked: that server runs one thread, with torch loaded), no dashboard, and the
    scheduler's small HTTP server on a free port (the default 8787 clashes with any other
    cluster on the machine). Raises :class:`SchedulerError`
    with what to do when the cluster cannot start.
    """
    import dask
    from dask.distributed import LocalCluster

    settings = {"distributed.scheduler.worker-saturation": 1.0}
    if prestart_workers():
        settings["distributed.worker.multiprocessing-method"] = "forkserver"
    try:
        with dask.config.set(settings):
            return LocalCluster(
                n_workers=int(workers),
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",  # this machine only: nothing listens on outside interfaces
                dashboard_address=None,
                scheduler_kwargs={"dashboard": False, "dashboard_address": "127.0.0.1:0"},
                # worker processes log below CRITICAL only when debugging (-v): their ERROR lines are comm
                # failures at shutdown (a heartbeat to a scheduler that is closing) or faults the driver
                # reports itself, as an error row or a one-line SchedulerError
                silence_logs=logging.ERROR if logging.getLogger().getEffectiveLevel() <= logging.INFO else logging.CRITICAL,
                env=dict(WORKER_ENV),
            )
    except Exception as exc:  # noqa: BLE001 - ports, spawn failures, resource limits
        raise SchedulerError(
            f"cannot start a Dask LocalCluster of {workers} workers ({type(exc).__name__}: {exc}); "
            "run with workers=1 (inline) or start a cluster and give its scheduler address (a script that "
            "calls run_grid must do so under `if __name__ == '__main__':`, as worker processes re-import it)"
        ) from exc


def connect(workers: int, scheduler: str | None, timeout: float):
    """A Dask client on a new LocalCluster or on the cluster at ``scheduler``; SchedulerError otherwise."""
    from dask.distributed import Client

    if scheduler is None:
        cluster = start_local_cluster(workers)
        try:
            return Client(cluster, timeout=f"{max(timeout, 30)}s"), cluster
        except BaseException:
            cluster.close()
            raise
    _check_address(scheduler, timeout)
    try:
        return Client(scheduler, timeout=f"{timeout}s"), None
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise _unreachable(scheduler, " ".join(str(exc).split()) or type(exc).__name__) from exc


def _unreachable(address: str, detail: str) -> SchedulerError:
    return SchedulerError(
        f"cannot reach Dask scheduler at {address!r} ({detail}); check the address (tcp://HOST:8786) and that "
        "`dask scheduler` is running there, or drop the scheduler address to use local workers"
    )


def _check_address(address: str, timeout: float) -> None:
    """Refuse a malformed address and, for tcp, a closed port, before a Client is made.

    A plain socket answers "connection refused" at once (Dask's client would keep retrying
    until its timeout) and leaves no half-made Client behind to complain when collected.
    """
    import socket

    from distributed.comm.addressing import parse_address, parse_host_port

    try:
        scheme, location = parse_address(str(address))
        host, port = parse_host_port(location) if scheme == "tcp" else (None, None)
    except (ValueError, TypeError) as exc:
        raise SchedulerError(
            f"scheduler {address!r} is not a Dask scheduler address ({exc}); use tcp://HOST:8786, "
            "or drop the scheduler address to use local workers"
        ) from exc
    if scheme != "tcp":
        return  # tls://, ws://, ...: Dask's own connection attempt reports those
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except socket.timeout as exc:
        raise _unreachable(address, f"no answer within {timeout:g} s") from exc
    except OSError as exc:
        raise _unreachable(address, exc.strerror or str(exc)) from exc


def _set_dask_log_level(level: int) -> dict[str, int]:
    """Set ``distributed`` and its loggers with levels of their own (Dask's config gives
    ``distributed.client`` one) to ``level``; return their levels before."""
    names = ["distributed"] + [n for n in list(logging.root.manager.loggerDict) if n.startswith("distributed.")
                               and getattr(logging.root.manager.loggerDict[n], "level", logging.NOTSET)]
    before = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(level)
    return before


@contextlib.contextmanager
def quiet_dask_logs():
    """Keep the in-process scheduler's and nannies' chatter off the study's stderr unless debugging (-v).

    Failures that matter come back as error rows; what Dask logs below ERROR here (workers
    registering, a slow worker killed at shutdown) is noise to a study's user.
    """
    dask_log = logging.getLogger("distributed")
    before = dask_log.level
    if logging.getLogger().getEffectiveLevel() > logging.INFO:
        dask_log.setLevel(logging.ERROR)
    try:
        yield
    finally:
        dask_log.setLevel(before)


def lost_cluster(address: str, local: bool, exc: BaseException) -> SchedulerError:
    reason = getattr(exc, "reason", None)  # FutureCancelledError: scheduler-connection-lost, ...
    detail = str(reason) if isinstance(reason, str) else " ".join(str(exc).split())
    detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if len(detail) > 160:
        detail = detail[:157] + "..."
    no_workers = "NoWorkerError" in detail or "NoValidWorkerError" in detail
    what = f"the Dask cluster at {address} has no workers for the cells" if no_workers else f"lost the Dask scheduler at {address}"
    todo = ("start workers for it" if no_workers else "start the scheduler again (or drop the scheduler address)") if not local else \
        "check memory and the ports on 127.0.0.1 (or use workers=1)"
    return SchedulerError(f"{what} ({detail}); finished cells are stored; {todo} and re-run to resume")


def close_quietly(client, cluster, mute: bool = False) -> None:
    """Close the client and the local cluster, in bounded time even when the scheduler is gone.

    ``mute``: the scheduler was lost, so Dask's own errors while closing (the cancelled
    reconnect attempt, refused connections) are noise after the one-line SchedulerError.
    """
    before = _set_dask_log_level(logging.CRITICAL + 1) if mute else {}
    try:
        client.close(timeout=10)
    except Exception as exc:  # noqa: BLE001 - a client of a lost scheduler may fail to close cleanly
        log.debug("closing the Dask client: %s", exc)
    finally:
        try:
            if cluster is not None:
                cluster.close()
        finally:
            for name, level in before.items():
                logging.getLogger(name).setLevel(level)
