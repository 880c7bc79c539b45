"""Run a grid of cells inline or on Dask distributed, storing each row as it finishes.

Executor choice: with ``workers == 1`` and no scheduler, jobs run inline in this process
(simple to debug, no start-up cost). Otherwise they go to Dask distributed: a
``LocalCluster`` of single-threaded worker processes sized to the request (default: the
machine's cores), or an existing cluster given by ``scheduler`` address. Jobs carry paths to
cached features on a shared path, not the arrays (a C2 map is ~56 MB of float32; paths keep
the scheduler light), and workers return rows to this driver, which is the only writer of
the :class:`~eval.store.ResultStore`: finished rows survive any crash, and a re-run
submits only the cells whose key is not finished yet.

A cell that fails (codec error, killed worker, bad file) is recorded with its error and
retried up to ``max_attempts`` times in total, counting earlier runs; the rest go on.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

from eval.core import Job, run_job
from eval.store import ResultStore

__all__ = ["RunSummary", "run_grid", "SchedulerError", "default_workers"]

log = logging.getLogger(__name__)


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
) -> RunSummary:
    """Run every job whose key is not finished in ``store``; return what happened.

    Duplicated jobs (same key) run once. ``fn`` turns a job into a row (default
    :func:`eval.core.run_job`; must be importable by the workers).
    """
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

    def record(row: dict, job: Job) -> bool:
        """Store a row; return True if the job should be retried."""
        store.put(row)
        if on_row is not None:
            on_row(row)
        if row["status"] == "ok":
            summary.finished += 1
            bar.update(1)
            return False
        budget[job.key] -= 1
        if budget[job.key] > 0:
            log.warning("cell %s (%s, %s, qp %s) failed, retrying: %s", job.key[:8], job.image_id, job.order_name, job.qp, row["error"])
            return True
        summary.failed += 1
        bar.update(1)
        log.error("cell %s (%s, %s, qp %s) failed: %s", job.key[:8], job.image_id, job.order_name, job.qp, row["error"])
        return False

    try:
        if workers <= 1 and scheduler is None:
            _run_inline(todo, record, fn)
        else:
            _run_dask(todo, record, workers, scheduler, fn)
    finally:
        bar.close()
    return summary


def _run_inline(todo: Iterable[Job], record, fn) -> None:
    if fn is run_job:  # inline jobs share this process: leave its thread settings alone
        fn = functools.partial(run_job, single_thread=False)
    for job in todo:
        while record(fn(job), job):
            pass


def _failure_row(job: Job, exc: BaseException) -> dict:
    row = job.describe()
    row.update(status="error", error=f"{type(exc).__name__}: {exc}")
    return row


def _run_dask(todo: Sequence[Job], record, workers: int, scheduler: str | None, fn) -> None:
    try:
        from dask.distributed import Client, LocalCluster, as_completed
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise SchedulerError("dask.distributed is not installed: pip install distributed") from exc

    cluster = None
    try:
        if scheduler is None:
            cluster = LocalCluster(
                n_workers=workers,
                threads_per_worker=1,
                processes=True,
                dashboard_address=None,
                silence_logs=logging.ERROR,
            )
            client = Client(cluster)
        else:
            client = Client(scheduler, timeout="15s")
    except (OSError, TimeoutError) as exc:
        where = scheduler or "a LocalCluster"
        raise SchedulerError(
            f"cannot reach Dask scheduler at {where}: {exc}; check the address (tcp://HOST:8786) "
            "and that `dask scheduler` is running, or drop --scheduler to use local workers"
        ) from exc

    try:
        futures = {}
        for job in todo:
            fut = client.submit(fn, job, pure=False)
            futures[fut] = job
        pending = as_completed(list(futures))
        for fut in pending:
            job = futures.pop(fut)
            try:
                row = fut.result()
            except Exception as exc:  # noqa: BLE001 - worker killed, unpicklable result, ...
                row = _failure_row(job, exc)
            if record(row, job):
                retry = client.submit(fn, job, pure=False)
                futures[retry] = job
                pending.add(retry)
    finally:
        client.close()
        if cluster is not None:
            cluster.close()
