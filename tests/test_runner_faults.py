"""Faults of the machinery are not failures of a cell: a real external scheduler killed mid-run.

A `dask scheduler` and a `dask worker` run as separate processes on loopback; the cells sleep
(:mod:`_slow_jobs`, importable by the worker) so the scheduler can be killed while some are
finished and others are in flight. The run must stop with one SchedulerError naming the
address, keep the finished rows, store nothing for the lost cells, and resume inline.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from _slow_jobs import make_job, slow_row
from eval.pipeline.cluster import SchedulerError
from eval.pipeline.runner import run_grid
from eval.pipeline.faults import is_machinery_error
from eval.pipeline.store import ResultStore

ROOT = Path(__file__).resolve().parents[1]
TESTS = Path(__file__).resolve().parent


def _env(**extra) -> dict:
    return dict(os.environ, PYTHONPATH=os.pathsep.join([str(TESTS), str(ROOT), os.environ.get("PYTHONPATH", "")]), **extra)


def _wait_for(pattern: str, log: Path, proc: subprocess.Popen, timeout: float = 60.0) -> re.Match:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        m = re.search(pattern, log.read_text(errors="replace"))
        if m:
            return m
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise AssertionError(f"no {pattern!r} in {log} within {timeout:g} s:\n{log.read_text(errors='replace')[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - a process that ignores SIGKILL
        pass


@pytest.fixture
def cluster(tmp_path):
    """A real `dask scheduler` and one single-threaded `dask worker`, as processes of their own."""
    procs = []
    try:
        slog = tmp_path / "scheduler.log"
        with open(slog, "wb") as out:
            sched = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard"],
                stdout=out, stderr=subprocess.STDOUT, env=_env(), cwd=tmp_path, start_new_session=True)
        procs.append(sched)
        address = _wait_for(r"Scheduler at:\s+(tcp://127\.0\.0\.1:\d+)", slog, sched).group(1)
        wlog = tmp_path / "worker.log"
        with open(wlog, "wb") as out:
            worker = subprocess.Popen(
                [sys.executable, "-m", "distributed.cli.dask_worker", address, "--nworkers", "1", "--nthreads", "1",
                 "--host", "127.0.0.1", "--no-dashboard", "--death-timeout", "20"],
                stdout=out, stderr=subprocess.STDOUT, env=_env(FCM_TEST_CELL_SECONDS="1"), cwd=tmp_path, start_new_session=True)
        procs.append(worker)
        _wait_for(r"Registered to:", wlog, worker)
        yield address, sched
    finally:
        for proc in reversed(procs):
            _stop(proc)


def test_lost_scheduler_stores_no_failure_and_the_rerun_resumes(cluster, tmp_path):
    address, sched = cluster
    jobs = [make_job(i) for i in range(6)]
    path = tmp_path / "results.sqlite"
    seen = []

    def kill_after_two(row):  # on the driver, right after the row is committed
        seen.append(row["status"])
        if len(seen) == 2:
            sched.send_signal(signal.SIGKILL)

    t0 = time.monotonic()
    with ResultStore(path) as store:
        with pytest.raises(SchedulerError) as info:
            run_grid(jobs, store, scheduler=address, progress=False, fn=slow_row, on_row=kill_after_two,
                     max_attempts=2, scheduler_timeout=10)
        assert time.monotonic() - t0 < 60
        message = str(info.value)
        assert message.startswith(f"lost the Dask scheduler at {address} (FutureCancelledError: scheduler-connection-lost)")
        assert "finished cells are stored" in message and "re-run to resume" in message and "\n" not in message
        assert seen == ["ok", "ok"]
        ok = store.finished_keys()
        assert len(ok) == 2 and all(r["status"] == "ok" for r in store.rows())
        assert store.rows(status="error") == [] and store.attempts() == {}  # nothing stored for the lost cells
        assert len(store) == 2

    with ResultStore(path) as store:  # the user drops --scheduler: inline, every cell
        again = run_grid(jobs, store, workers=1, progress=False, fn=slow_row, max_attempts=2)
        assert (again.skipped, again.finished, again.failed, again.gave_up) == (2, 4, 0, 0)
        assert store.finished_keys() == {j.key for j in jobs}


def test_cell_errors_on_a_real_cluster_stay_cell_failures(cluster, tmp_path):
    """A task that raises (even OSError or TimeoutError, as a codec may) is the cell's failure, not the cluster's."""
    import _slow_jobs

    address, _ = cluster
    jobs = [make_job(i) for i in range(3)]
    with ResultStore(tmp_path / "results.sqlite") as store:
        summary = run_grid(jobs, store, scheduler=address, progress=False, fn=_slow_jobs.failing_row, max_attempts=1)
        errors = {r["image_id"]: r["error"] for r in store.rows(status="error")}
    assert (summary.finished, summary.failed) == (1, 2)
    assert errors["img1"].startswith("OSError: disk on fire") and errors["img2"].startswith("TimeoutError: encoder hung")


def test_error_rows_of_an_older_version_for_a_lost_scheduler_are_retried(tmp_path):
    """A store written before this fix: every lost cell recorded as failed twice ("FutureCancelledError ...")."""
    jobs = [make_job(i) for i in range(4)]
    path = tmp_path / "results.sqlite"
    lost = ("FutureCancelledError: cell-{k}-abc-2 cancelled for reason: unknown.",
            "FutureCancelledError: cell-{k}-abc-1 cancelled for reason: scheduler-connection-lost.\n"
            "Client lost the connection to the scheduler. Please check your connection and re-run your work.")
    with ResultStore(path) as store:
        store.put(_fast_row(jobs[0]))
        for job, text in zip(jobs[1:3], lost):
            for _ in range(2):
                store.put({**job.describe(), "status": "error", "error": text.format(k=job.key[:12])})
        for _ in range(2):  # a real failure stays counted
            store.put({**jobs[3].describe(), "status": "error", "error": "CodecError: libvvenc encode failed"})
        assert store.attempts() == {jobs[3].key: 2}
        summary = run_grid(jobs, store, workers=1, progress=False, fn=_fast_row, max_attempts=2)
        assert (summary.skipped, summary.finished, summary.gave_up) == (1, 2, 1)
        assert store.finished_keys() == {j.key for j in jobs[:3]}
    assert is_machinery_error("CommClosedError: in <TCP (closed) ...>: Stream is closed")
    assert not is_machinery_error("CodecError: libvvenc encode timed out after 600 s")
    assert not is_machinery_error("TimeoutError: encoder hung")


def test_a_machinery_error_row_does_not_use_up_the_attempts_of_a_later_real_failure(tmp_path):
    job = make_job(0)
    with ResultStore(tmp_path / "results.sqlite") as store:
        for _ in range(2):
            store.put({**job.describe(), "status": "error", "error": "FutureCancelledError: x cancelled for reason: unknown."})
        store.put({**job.describe(), "status": "error", "error": "CodecError: bad"})
        assert store.attempts() == {job.key: 1}


def _fast_row(job):
    return {**job.describe(), "status": "ok", "error": "", "bits": 1, "feature_psnr": 1.0, "task_stats": {}}
