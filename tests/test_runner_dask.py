"""The Dask path of the runner: same rows as inline, crashed workers recorded, explicit scheduler address.

Job functions live at module level so worker processes import them by name (this folder
is on the spawned workers' ``sys.path`` because pytest puts it on the driver's).
"""

import os
import time

import dask
import numpy as np
import pytest
from dask.distributed import LocalCluster

from eval.pipeline.cell import Job
from eval.pipeline.cluster import WORKER_ENV, WORKER_PRELOAD, start_local_cluster
from eval.pipeline.runner import absolute_paths, run_grid
from eval.pipeline.store import ResultStore


def make_job(i: int, qp: int = 22, feature_path: str = "/nonexistent.npy") -> Job:
    return Job(
        image_id=f"img{i}", image_key=f"key{i}", feature_path=feature_path, reference_path="/nonexistent.npz",
        meta={"pixels": 100}, order_name="identity", order=(2, 0, 1), quantizer={"kind": "log"}, packing="temporal",
        codec="ffv1", qp=qp, model={"name": "fake"},
    )


def grid() -> list[Job]:
    return [make_job(i, qp) for i in range(3) for qp in (22, 27, 32)]


def fake_row(job: Job) -> dict:
    """A deterministic row that depends on every defining part of the job."""
    time.sleep(0.05)  # long enough that both workers get cells
    row = job.describe()
    digest = int(job.key[:8], 16)
    row.update(status="ok", error="", bits=digest % 10_000 + 8 * job.qp, feature_psnr=40.0 - job.qp / 2,
               task_stats={"n": len(job.order)}, pid=os.getpid())
    return row


def crash_on_img1(job: Job) -> dict:
    """Kills its worker process for image 1 (as a segfaulting encoder would), else a normal row."""
    if job.image_id == "img1" and job.qp == 27:
        os._exit(13)
    return fake_row(job)


def environment_row(job: Job) -> dict:
    """Reports the worker's thread settings after the core's own thread limiting."""
    from eval.pipeline.cell_process import limit_threads

    import torch

    limit_threads()
    row = fake_row(job)
    row.update(env={k: os.environ.get(k) for k in WORKER_ENV}, torch_threads=torch.get_num_threads())
    return row


def worker_state() -> dict:
    """What a worker holds before its first cell: modules already imported, thread settings, its parent."""
    import sys

    loaded = {m: m in sys.modules for m in ("torch", "sklearn.base")}  # this test module imports neither
    import torch

    return {"loaded": loaded, "env": {k: os.environ.get(k) for k in WORKER_ENV},
            "torch_threads": torch.get_num_threads(), "parent": os.getppid()}


def read_features_row(job: Job) -> dict:
    """Reads the job's feature file the way run_job does; checks the path it was given."""
    row = fake_row(job)
    row.update(absolute=os.path.isabs(job.feature_path), total=float(np.load(job.feature_path).sum()))
    return row


def comparable(rows):
    return {r["key"]: {k: v for k, v in r.items() if k not in ("pid", "host")} for r in rows}


def test_two_workers_give_the_same_rows_as_inline(tmp_path):
    jobs = grid()
    with ResultStore(tmp_path / "inline.sqlite") as store:
        inline = run_grid(jobs, store, workers=1, progress=False, fn=fake_row)
        inline_rows = store.rows()
    with ResultStore(tmp_path / "dask.sqlite") as store:
        dist = run_grid(jobs, store, workers=2, progress=False, fn=environment_row)
        dask_rows = store.rows()
    assert inline.finished == dist.finished == len(jobs)
    extra = ("env", "torch_threads")
    assert comparable(inline_rows) == {k: {c: v for c, v in r.items() if c not in extra} for k, r in comparable(dask_rows).items()}
    pids = {r["pid"] for r in dask_rows}
    assert os.getpid() not in pids and len(pids) == 2  # ran on both worker processes, not in the driver
    assert all(r["env"] == WORKER_ENV and r["torch_threads"] == 1 for r in dask_rows)


def test_worker_that_dies_is_recorded_and_the_rest_finish(tmp_path):
    jobs = grid()
    crasher = make_job(1, 27).key
    path = tmp_path / "r.sqlite"
    # one death is enough to give up on a cell (the default, 3 retries, would kill 4 workers)
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}), ResultStore(path) as store:
        summary = run_grid(jobs, store, workers=2, max_attempts=2, progress=False, fn=crash_on_img1)
        assert summary.finished == len(jobs) - 1 and summary.failed == 1
        errors = store.rows(status="error")
        assert [r["key"] for r in errors] == [crasher]
        assert errors[0]["error"].startswith("KilledWorker: the worker process died") and "re-run" in errors[0]["error"]
        assert store.attempts() == {crasher: 1}  # not resubmitted in the same run
    with ResultStore(path) as store:  # a later run retries only that cell
        again = run_grid(jobs, store, workers=1, max_attempts=2, progress=False, fn=fake_row)
        assert (again.skipped, again.finished, again.failed) == (len(jobs) - 1, 1, 0)
        assert store.finished_keys() == {j.key for j in jobs}


def test_external_scheduler_gets_absolute_feature_paths(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    feats = tmp_path / "feats"
    feats.mkdir()
    jobs = []
    for i in range(2):
        np.save(feats / f"{i}.npy", np.full((3, 4, 4), i + 1, dtype=np.float32))
        jobs.append(make_job(i, feature_path=f"feats/{i}.npy"))  # relative, as a default --cache-dir gives
    assert absolute_paths(jobs[0]).key == jobs[0].key
    assert absolute_paths(jobs[0]).feature_path == str(feats / "0.npy")
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=None, host="127.0.0.1") as cluster:
        with ResultStore(tmp_path / "r.sqlite") as store:
            summary = run_grid(jobs, store, scheduler=cluster.scheduler_address, progress=False, fn=read_features_row)
            rows = {r["image_id"]: r for r in store.rows()}
    assert summary.finished == 2
    assert rows["img0"]["absolute"] and rows["img1"]["absolute"]
    assert rows["img0"]["total"] == 48.0 and rows["img1"]["total"] == 96.0


def test_job_function_that_raises_or_returns_garbage_is_an_error_row(tmp_path):
    jobs = grid()[:2]
    with ResultStore(tmp_path / "r.sqlite") as store:
        summary = run_grid(jobs, store, workers=1, max_attempts=1, progress=False, fn=len)
        errors = store.rows(status="error")
    assert summary.failed == 2 and len(errors) == 2
    assert all(e["error"].startswith("TypeError:") for e in errors)


def test_bad_worker_count_is_refused(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store, pytest.raises(ValueError, match="workers=0; use 1"):
        run_grid(grid(), store, workers=0, progress=False, fn=fake_row)


def test_local_workers_start_with_the_cell_modules_loaded_and_one_thread():
    """Workers fork from a server that imported torch and scikit-learn once, under WORKER_ENV;
    the driver's own environment is left as it was."""
    assert {"torch", "sklearn.base"} <= set(WORKER_PRELOAD)
    driver_env = {k: os.environ.get(k) for k in WORKER_ENV}
    cluster = start_local_cluster(2)
    try:
        from dask.distributed import Client

        with Client(cluster) as client:
            states = list(client.run(worker_state).values())
    finally:
        cluster.close()
    assert len(states) == 2
    for state in states:
        assert state["loaded"] == {"torch": True, "sklearn.base": True}  # imported before any task ran
        assert state["env"] == WORKER_ENV and state["torch_threads"] == 1
        assert state["parent"] != os.getpid()  # forked by the server, not spawned by this driver
    assert {k: os.environ.get(k) for k in WORKER_ENV} == driver_env
    import psutil  # a dependency of distributed

    servers = [p for p in psutil.Process().children() if "multiprocessing.forkserver" in " ".join(p.cmdline())]
    assert len(servers) == 1 and servers[0].num_threads() == 1  # forking from it is safe: no thread is lost
