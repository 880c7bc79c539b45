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
that is this machine's disk; on a cluster given by its scheduler address it must be a shared file system
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
and keeps every finished cell; a re-run (on a restarted scheduler, or inline) resumes. A cell that
cannot write (a full disk, a read-only folder: :func:`eval.pipeline.faults.resource_fault`) stops
the run the same way with one :class:`~eval.pipeline.faults.ResourceError`, its attempt not spent.
Error rows that earlier versions stored for such faults are not counted as attempts
(:func:`eval.pipeline.faults.is_machinery_error`).

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Sequence

from eval.pipeline.cell import Job, run_job
from eval.pipeline.cluster import SchedulerError, close_quietly, connect, lost_cluster, quiet_dask_logs
from eval.pipeline.faults import ResourceError, client_lost, is_machinery_exception, machinery_fault, resource_fault
from eval.pipeline.lock import StudyLock
from eval.pipeline.store import ResultStore

__all__ = ["RunSummary", "run_grid", "grid_rows", "longest_first", "absolute_paths"]

log = logging.getLogger(__name__)

@dataclass
class RunSummary:
    """What one :func:`run_grid` call did, and the grid's own rows as the store holds them afterwards."""

    total: int  # cells in the grid
    skipped: int  # already finished before this run
    finished: int  # finished in this run
    failed: int  # still failing after this run
    gave_up: int  # not tried: max_attempts already used up
    rows: list = field(default_factory=list)  # finished rows, one per job of the grid (see grid_rows)
    errors: list = field(default_factory=list)  # the latest error row of each job whose cell is not finished


def grid_rows(jobs: Sequence[Job], stored: Iterable[dict]) -> tuple[list[dict], list[dict]]:
    """``(finished rows, error rows)`` of ``jobs`` among the ``stored`` rows, in store order, one per job.

    A row is stored once per cell (its key), under the name of the job that coded it. Each job
    of the grid gets its own copy, named as the job names it (``order``, ``image_id`` and the
    job's ``extra`` columns), so two orders with the same permutation, which share their cells,
    are both reported, each under its own name.
    """
    by_key: dict[str, dict[tuple, dict]] = {}
    for job in jobs:
        names = {"order": job.order_name, "image_id": job.image_id, **job.extra}
        by_key.setdefault(job.key, {}).setdefault(tuple(sorted((k, repr(v)) for k, v in names.items())), names)
    rows, errors = [], []
    for row in stored:
        for names in by_key.get(row["key"], {}).values():
            (rows if row["status"] == "ok" else errors).append({**row, **names})
    return rows, errors


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

    The store's folder is locked for the run (:class:`~eval.pipeline.lock.StudyLock`): another
    process running a study there makes this raise :class:`~eval.pipeline.lock.StudyBusyError`.
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
        summary = _run_grid(jobs, store, workers, scheduler, max_attempts, progress, desc, on_row, fn, scheduler_timeout, executor)
        summary.rows, summary.errors = grid_rows(jobs, store.rows(status=None))
        return summary


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
        log.warning("%d cells failed %d times before and are not retried (raise max_attempts to retry)", gave_up, max_attempts)
    if not todo:
        return summary

    budget = {j.key: max_attempts - tried.get(j.key, 0) for j in todo}
    bar = _progress(len(todo), desc, progress)

    def record(row: dict, job: Job, retry: bool = True) -> bool:
        """Store a row; return True if the job should be retried now."""
        if row.get("resource_fault"):  # a full disk or a read-only folder: no attempt of the cell is spent
            raise ResourceError(f"cannot write while coding {job.image_id} {job.order_name} qp {job.qp}: "
                                f"{row['resource_fault']}; finished cells are stored; free space (or fix the permission) "
                                "and run the same command again to resume")
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
    fault = resource_fault(exc)
    if fault is not None:
        row["resource_fault"] = fault
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
        "model, or out of memory; re-run to retry it, or use fewer workers if memory is short"
    )


def _run_dask(todo: Sequence[Job], record, workers: int, scheduler: str | None, fn, timeout: float) -> None:
    import uuid

    try:
        from dask.distributed import as_completed
        from distributed.scheduler import KilledWorker
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise SchedulerError("dask.distributed is not installed: pip install distributed") from exc

    with quiet_dask_logs():
        client, cluster = connect(workers, scheduler, timeout)
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
                    if machinery_fault(fut, exc, client):  # not the cell's fault: store nothing for it
                        lost = True
                        raise lost_cluster(address, scheduler is None, exc) from exc
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
            if is_machinery_exception(exc) or (isinstance(exc, (OSError, TimeoutError)) and client_lost(client)):
                lost = True
                raise lost_cluster(address, scheduler is None, exc) from exc
            raise
        finally:
            close_quietly(client, cluster, mute=lost)


def _checked_call(fn, job: Job) -> dict:
    """Task body on a worker: run ``fn`` and check that it returned a row for ``job``."""
    return _checked_row(fn(job), job)
