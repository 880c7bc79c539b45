"""Run a grid of cells inline or on Dask distributed, storing each row as it finishes.

Executor choice: with ``workers == 1`` and no scheduler, jobs run inline in this process
(simple to debug, no start-up cost). Otherwise they go to Dask distributed: a
``LocalCluster`` of single-threaded worker processes sized to the request (default: the
machine's cores), or an existing cluster given by ``scheduler`` address.

Why features travel as files on a shared path, not as arrays in the task graph
------------------------------------------------------------------------------
A job carries the *paths* of its cached features and reference output, never the arrays:
a detectron2 C2 map is ~56 MB of float32 and one image is coded at every order x QP, so
shipping arrays would copy each map dozens of times through the scheduler (which keeps
task arguments in its own memory) and make a job's size depend on the model. A path is a
few bytes; each worker reads the one ``.npy`` it needs, once per cell. This needs the
feature cache on a path every worker can read under the same name: on a ``LocalCluster``
that is this machine's disk; on a ``--scheduler`` cluster it must be a shared file system
mounted at the same place on every host. :func:`run_grid` therefore makes every path in a
job absolute before submitting it (a relative ``.cache/features`` would otherwise be
resolved against each worker's own working directory), and the same holds for the
bitstream folder the workers write into. Workers also need this package importable
(``pip install -e .`` on every host) because jobs name :func:`eval.pipeline.cell.run_job` by module.

Rows come back to this driver, which is the only writer of the
:class:`~eval.pipeline.store.ResultStore`: finished rows survive any crash (each is committed on
its own), and a re-run submits only the cells whose key is not finished yet.

Failures
--------
A cell that fails (codec error, bad file, a job function that raised) is recorded with its
error and retried up to ``max_attempts`` times in total, counting earlier runs; the rest go
on. A cell whose worker process *dies* (segfault, ``os._exit``, out-of-memory kill) has
already been retried by the cluster itself (``distributed.scheduler.allowed-failures``
times on fresh workers) before Dask gives up with ``KilledWorker``; it is recorded as an
error row at once and not resubmitted in this run (it would most likely kill another
worker), and a later run retries it within ``max_attempts``.

Faults of the machinery are not attempts of a cell: when the scheduler is lost (its
process killed, the network gone: Dask then cancels every pending future with
``scheduler-connection-lost``), a connection closes while a result is fetched, or the
cluster has no workers for the cells (``NoWorkerError``), the run stops with one
:class:`SchedulerError` naming the scheduler address, stores nothing for the cells in flight,
and keeps every finished cell; a re-run (on a restarted scheduler, or inline) resumes.
Error rows that earlier versions stored for such faults are not counted as attempts
(:func:`eval.pipeline.store.is_machinery_error`).

The local cluster runs one single-threaded worker process per requested worker, forked from a
server that imported what a cell needs once (:func:`prestart_workers`), with
``OMP_NUM_THREADS``/``MKL_NUM_THREADS``/``OPENBLAS_NUM_THREADS`` = 1 in their environment
(``run_job`` also pins torch to one thread), and a scheduler that hands each worker one
cell at a time (``worker-saturation`` 1.0): cells are long, so nothing is lost by not
queueing a second cell on a worker, and a crashing cell then never takes a queued
neighbour down with it. Cells are submitted longest first (:func:`longest_first`: larger maps,
then lower QPs), so the last cells of a grid are short ones and no worker idles long at the end.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Sequence

from eval.pipeline.cell import Job, run_job
from eval.pipeline.store import ResultStore, StudyLock

__all__ = ["RunSummary", "run_grid", "longest_first", "SchedulerError", "default_workers", "absolute_paths", "start_local_cluster", "prestart_workers",
           "WORKER_ENV", "WORKER_PRELOAD"]

log = logging.getLogger(__name__)

#: environment of LocalCluster worker processes: one thread per worker, one worker per core
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}

#: what a worker imports before its first cell (Dask, torch, scikit-learn through the quantizers, the
#: cell and the models): LocalCluster workers fork from one server process that imported these once
WORKER_PRELOAD = ("distributed", "numpy", "torch", "sklearn.base", "codec", "reorder", "eval.pipeline.cell", "eval.models")


class SchedulerError(RuntimeError):
    """The Dask scheduler cannot be reached or the cluster cannot start."""


@dataclass
class RunSummary:
    total: int  # cells in the grid
    skipped: int  # already finished before this run
    finished: int  # finished in this run
    failed: int  # still failing after this run
    gave_up: int  # not tried: max_attempts already used up


def default_workers() -> int:
    """One worker per core this process may use."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="cell", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def absolute_paths(job: Job) -> Job:
    """``job`` with its feature, reference and bitstream paths made absolute (for remote workers).

    The cell key does not depend on these paths, so the job stays the same cell.
    """
    changes = {}
    for name in ("feature_path", "reference_path", "bitstream_dir"):
        value = getattr(job, name)
        if value and not os.path.isabs(value):
            changes[name] = os.path.abspath(value)
    return dataclasses.replace(job, **changes) if changes else job


def longest_first(jobs: Sequence[Job]) -> list[Job]:
    """``jobs`` in the order workers should take them: the likely longest cells first.

    Workers take cells in submission order, so the grid's last cells decide how long the
    other workers sit idle at the end. A cell's time is the codec's, which grows with the
    coded map (``meta["shape"]``: channels x height x width) and falls with the QP (more bits
    at a low QP): larger maps first, then the lower QP first; ties keep the grid's order.
    Cells without a known shape go last, in their order.
    """
    def cost(job: Job):
        shape = job.meta.get("shape") if isinstance(job.meta, dict) else None
        try:
            size = 1
            for n in shape:
                size *= int(n)
        except (TypeError, ValueError):
            return (1, 0, 0)
        return (0, -size, int(job.qp))

    return sorted(jobs, key=cost)


def run_grid(
    jobs: Sequence[Job],
    store: ResultStore,
    workers: int = 1,
    scheduler: str | None = None,
    max_attempts: int = 2,
    progress: bool = True,
    desc: str = "coding",
    on_row: Callable[[dict], None] | None = None,
    fn: Callable[[Job], dict] = run_job,
    scheduler_timeout: float = 15.0,
    executor: str = "auto",
) -> RunSummary:
    """Run every job whose key is not finished in ``store``; return what happened.

    Duplicated jobs (same key) run once. ``fn`` turns a job into a row (default
    :func:`eval.pipeline.cell.run_job`; must be importable by the workers, i.e. defined in a
    module, not in ``__main__``). ``scheduler_timeout`` is how long (seconds) to try to
    reach ``scheduler`` before raising :class:`SchedulerError`. ``executor`` is
    ``"auto"`` (inline for one worker without a scheduler, else Dask), ``"inline"`` or
    ``"dask"`` (a LocalCluster even for one worker, e.g. to time the cluster itself).

    The store's folder is locked for the run (:class:`~eval.pipeline.store.StudyLock`): another
    process running a study there makes this raise :class:`~eval.pipeline.store.StudyBusyError`.
    A lost scheduler (or a cluster left without workers) raises :class:`SchedulerError` and
    stores nothing for the cells in flight; finished cells stay stored and a re-run resumes.
    """
    if executor not in ("auto", "inline", "dask"):
        raise ValueError(f"executor={executor!r}; use 'auto', 'inline' or 'dask'")
    if executor == "inline" and scheduler is not None:
        raise ValueError("executor='inline' runs in this process; drop the scheduler address or use executor='dask'")
    if int(max_attempts) < 1:
        raise ValueError(f"max_attempts={max_attempts!r}; use 1 or more (tries per failing cell, counted across runs)")
    if scheduler is None and int(workers) < 1:
        raise ValueError(f"workers={workers!r}; use 1 (inline) or more (Dask LocalCluster)")
    path = getattr(store, "path", None)  # one study per folder: a second one is refused (StudyBusyError)
    with StudyLock(Path(path).parent) if path is not None else contextlib.nullcontext():
        return _run_grid(jobs, store, workers, scheduler, max_attempts, progress, desc, on_row, fn, scheduler_timeout, executor)


def _run_grid(jobs, store, workers, scheduler, max_attempts, progress, desc, on_row, fn, scheduler_timeout, executor) -> RunSummary:
    unique: dict[str, Job] = {}
    for job in jobs:
        unique.setdefault(job.key, job)
    done = store.finished_keys()
    tried = store.attempts()
    todo = [j for k, j in unique.items() if k not in done and tried.get(k, 0) < max_attempts]
    gave_up = sum(1 for k in unique if k not in done and tried.get(k, 0) >= max_attempts)
    summary = RunSummary(total=len(unique), skipped=len(unique) - len(todo) - gave_up, finished=0, failed=0, gave_up=gave_up)
    if gave_up:
        log.warning("%d cells failed %d times before and are not retried (raise --max-attempts to retry)", gave_up, max_attempts)
    if not todo:
        return summary

    budget = {j.key: max_attempts - tried.get(j.key, 0) for j in todo}
    bar = _progress(len(todo), desc, progress)

    def record(row: dict, job: Job, retry: bool = True) -> bool:
        """Store a row; return True if the job should be retried now."""
        try:
            store.put(row)
        except ValueError as exc:  # a row the store cannot hold (bad status, not JSON): record why instead
            row = _failure_row(job, exc)
            store.put(row)
        if on_row is not None:
            on_row(row)
        if row["status"] == "ok":
            summary.finished += 1
            bar.update(1)
            return False
        budget[job.key] -= 1
        if retry and budget[job.key] > 0:
            log.warning("cell %s (%s, %s, qp %s) failed, retrying: %s", job.key[:8], job.image_id, job.order_name, job.qp, row["error"])
            return True
        summary.failed += 1
        bar.update(1)
        bar.set_postfix(failed=summary.failed, refresh=False)
        log.error("cell %s (%s, %s, qp %s) failed: %s", job.key[:8], job.image_id, job.order_name, job.qp, row["error"])
        return False

    try:
        if executor == "inline" or (executor == "auto" and workers <= 1 and scheduler is None):
            _run_inline(todo, record, fn)
        else:
            _run_dask([absolute_paths(j) for j in longest_first(todo)], record, workers, scheduler, fn, scheduler_timeout)
    finally:
        bar.close()
    return summary


def _call(fn, job: Job) -> dict:
    """Inline call with the same contract as a Dask task: an exception becomes an error row."""
    try:
        return _checked_row(fn(job), job)
    except Exception as exc:  # noqa: BLE001 - recorded against the cell, the grid goes on
        return _failure_row(job, exc)


def _run_inline(todo: Iterable[Job], record, fn) -> None:
    if fn is run_job:  # inline jobs share this process: leave its thread settings alone
        fn = functools.partial(run_job, single_thread=False)
    for job in todo:
        while record(_call(fn, job), job):
            pass


def _failure_row(job: Job, exc: BaseException, error: str | None = None) -> dict:
    row = job.describe()
    row.update(status="error", error=error or f"{type(exc).__name__}: {exc}".strip())
    return row


def _checked_row(row, job: Job) -> dict:
    """A job function's result, checked to be a storable row for this job."""
    if not isinstance(row, dict) or row.get("status") not in ("ok", "error"):
        raise TypeError(f"job function returned {type(row).__name__}, not a row dict with status 'ok' or 'error'")
    if row.get("key") != job.key:
        raise ValueError(f"job function returned a row for key {row.get('key')!r}, expected {job.key!r}")
    return row


def _killed_message(job: Job, exc: BaseException) -> str:
    tries = getattr(exc, "allowed_failures", None)
    tries = f"{tries + 1} workers" if isinstance(tries, int) else "its worker"
    return (
        f"KilledWorker: the worker process died while coding this cell ({tries} tried it): a crash in the codec or "
        "model, or out of memory; re-run to retry it, or use fewer --workers if memory is short"
    )


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
            "run with --workers 1 (inline) or start a cluster and pass --scheduler ADDRESS (a script that "
            "calls run_grid must do so under `if __name__ == '__main__':`, as worker processes re-import it)"
        ) from exc


def _connect(workers: int, scheduler: str | None, timeout: float):
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
        "`dask scheduler` is running there, or drop --scheduler to use local workers"
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
            f"--scheduler {address!r} is not a Dask scheduler address ({exc}); use tcp://HOST:8786, "
            "or drop --scheduler to use local workers"
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
def _quiet_dask_logs():
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


def _run_dask(todo: Sequence[Job], record, workers: int, scheduler: str | None, fn, timeout: float) -> None:
    import uuid

    try:
        from dask.distributed import as_completed
        from distributed.scheduler import KilledWorker
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise SchedulerError("dask.distributed is not installed: pip install distributed") from exc

    with _quiet_dask_logs():
        client, cluster = _connect(workers, scheduler, timeout)
        address = scheduler or getattr(cluster, "scheduler_address", None) or "?"
        lost = False  # the scheduler is gone: closing the client then only logs tracebacks of its reconnect attempts
        tries: dict[str, int] = {}
        run_token = uuid.uuid4().hex[:8]  # a shared scheduler may see the same cells from another run

        def submit(job: Job):
            tries[job.key] = tries.get(job.key, 0) + 1
            # readable task names on a dashboard; unique per run and try, so a retry is a new task
            key = f"cell-{job.key[:12]}-{run_token}-{tries[job.key]}"
            return client.submit(_checked_call, fn, job, key=key, pure=False)

        try:
            futures = {submit(job): job for job in todo}
            pending = as_completed(list(futures))
            for fut in pending:
                job = futures.pop(fut)
                retry = True
                try:
                    row = fut.result()
                except KilledWorker as exc:  # the cluster already retried it on fresh workers
                    row, retry = _failure_row(job, exc, _killed_message(job, exc)), False
                except Exception as exc:  # noqa: BLE001 - fn raised, unpicklable result, ... or the cluster failed
                    if _machinery_fault(fut, exc, client):  # not the cell's fault: store nothing for it
                        lost = True
                        raise _lost_cluster(address, scheduler is None, exc) from exc
                    row = _failure_row(job, exc)
                finally:
                    fut.release()
                if record(row, job, retry=retry):
                    retry_fut = submit(job)
                    futures[retry_fut] = job
                    pending.add(retry_fut)
        except SchedulerError:
            raise
        except Exception as exc:  # submit / as_completed on a client that lost its scheduler (not a store or callback error)
            if _is_machinery_exception(exc) or (isinstance(exc, (OSError, TimeoutError)) and _client_lost(client)):
                lost = True
                raise _lost_cluster(address, scheduler is None, exc) from exc
            raise
        finally:
            _close_quietly(client, cluster, mute=lost)


def _machinery_exceptions() -> tuple[type, ...]:
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


def _is_machinery_exception(exc: BaseException) -> bool:
    return isinstance(exc, _machinery_exceptions())


def _client_lost(client) -> bool:
    """True when the client no longer talks to its scheduler (reconnecting, closing or closed)."""
    return getattr(client, "status", "running") not in ("running", "newly-created")


def _machinery_fault(fut, exc: BaseException, client) -> bool:
    """Whether ``fut`` failed because of the cluster (scheduler lost, future cancelled, result not fetched).

    A task that raised on a worker (``status == "error"``) is the cell's failure, whatever it
    raised (a codec's own TimeoutError or OSError included), except the scheduler's own
    "no workers" errors. Anything else (a cancelled future, a comm error while fetching the
    result, a client that lost its scheduler) is the machinery's.
    """
    if _is_machinery_exception(exc):
        return True
    status = getattr(fut, "status", None)
    if status == "error":
        return False
    if status in ("cancelled", "lost") or _client_lost(client):
        return True
    return isinstance(exc, (OSError, TimeoutError))  # the finished result could not be fetched


def _lost_cluster(address: str, local: bool, exc: BaseException) -> SchedulerError:
    reason = getattr(exc, "reason", None)  # FutureCancelledError: scheduler-connection-lost, ...
    detail = str(reason) if isinstance(reason, str) else " ".join(str(exc).split())
    detail = f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__
    if len(detail) > 160:
        detail = detail[:157] + "..."
    no_workers = "NoWorkerError" in detail or "NoValidWorkerError" in detail
    what = f"the Dask cluster at {address} has no workers for the cells" if no_workers else f"lost the Dask scheduler at {address}"
    todo = ("start workers for it" if no_workers else "start the scheduler again (or drop --scheduler)") if not local else \
        "check memory and the ports on 127.0.0.1 (or use --workers 1)"
    return SchedulerError(f"{what} ({detail}); finished cells are stored; {todo} and re-run to resume")


def _close_quietly(client, cluster, mute: bool = False) -> None:
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


def _checked_call(fn, job: Job) -> dict:
    """Task body on a worker: run ``fn`` and check that it returned a row for ``job``."""
    return _checked_row(fn(job), job)
