"""Job functions for tests that run cells on separate worker processes (a `dask worker` imports them by name).

Kept apart from the test modules so an external worker can import them with only this folder on its path.
"""

from __future__ import annotations

import os
import time

from eval.pipeline.cell import Job


def make_job(i: int, qp: int = 22) -> Job:
    """A cell of a fake grid: nothing on disk, only a key and the columns of a row."""
    return Job(
        image_id=f"img{i}", image_key=f"slow{i}", feature_path="/nonexistent.npy", reference_path="/nonexistent.npz",
        meta={"pixels": 100}, order_name="identity", order=(1, 0), quantizer={"kind": "log"}, packing="temporal",
        codec="ffv1", qp=qp, model={"name": "fake"},
    )


def slow_row(job: Job) -> dict:
    """An ``ok`` row after ``FCM_TEST_CELL_SECONDS`` (default 1) seconds of sleep, so a test can act mid-grid."""
    time.sleep(float(os.environ.get("FCM_TEST_CELL_SECONDS", "1")))
    row = job.describe()
    row.update(status="ok", error="", bits=8 * job.qp, feature_psnr=40.0 - job.qp / 2, task_stats={}, pid=os.getpid())
    return row


def failing_row(job: Job) -> dict:
    """Raises on the worker for images 1 and 2 (an OSError and a TimeoutError, as a codec wrapper might)."""
    if job.image_id == "img1":
        raise OSError("disk on fire")
    if job.image_id == "img2":
        raise TimeoutError("encoder hung")
    row = job.describe()
    row.update(status="ok", error="", bits=1, feature_psnr=1.0, task_stats={})
    return row
