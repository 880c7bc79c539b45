"""Results store and runner: rows survive, finished cells are never recomputed, failures are recorded."""

import json

import pytest

from eval.pipeline.cell import Job
from eval.pipeline.runner import run_grid
from codec.files import write_csv
from eval.pipeline.store import ResultStore, StoreError


def make_job(i: int, qp: int = 22, order_name: str = "identity") -> Job:
    return Job(
        image_id=f"img{i}", image_key=f"key{i}", feature_path="/nonexistent.npy", reference_path="/nonexistent.npz",
        meta={"pixels": 100}, order_name=order_name, order=(0, 1, 2), quantizer={"kind": "log"}, packing="temporal",
        codec="ffv1", qp=qp, model={"name": "fake"},
    )


CALLS = []


def fake_ok(job: Job) -> dict:
    CALLS.append(job.key)
    row = job.describe()
    row.update(status="ok", error="", bits=8 * job.qp, feature_psnr=30.0, task_stats={})
    return row


def fake_fail_once(job: Job) -> dict:
    CALLS.append(job.key)
    row = job.describe()
    if CALLS.count(job.key) == 1 and job.image_id == "img1":
        row.update(status="error", error="CodecError: encoder crashed")
    else:
        row.update(status="ok", error="", bits=1, feature_psnr=1.0, task_stats={})
    return row


def fake_always_fail(job: Job) -> dict:
    CALLS.append(job.key)
    row = job.describe()
    row.update(status="error", error="CodecNotFoundError: no ffmpeg")
    return row


@pytest.fixture(autouse=True)
def _reset_calls():
    CALLS.clear()


def test_store_keeps_rows_across_reopen(tmp_path):
    path = tmp_path / "r.sqlite"
    with ResultStore(path) as store:
        store.put({"key": "a", "status": "ok", "bits": 3})
        store.put({"key": "b", "status": "error", "error": "boom"})
    with ResultStore(path) as store:
        assert store.finished_keys() == {"a"}
        assert store.attempts() == {"b": 1}
        assert [r["bits"] for r in store.rows()] == [3]
        store.put({"key": "a", "status": "error", "error": "late failure"})  # never overwrites a finished cell
        assert store.rows()[0]["status"] == "ok"


def test_rerun_skips_finished_cells(tmp_path):
    jobs = [make_job(i, qp) for i in range(3) for qp in (22, 27)]
    with ResultStore(tmp_path / "r.sqlite") as store:
        first = run_grid(jobs, store, progress=False, fn=fake_ok)
        assert first.finished == 6 and first.skipped == 0
        assert len(CALLS) == 6
        CALLS.clear()
        second = run_grid(jobs + [make_job(9)], store, progress=False, fn=fake_ok)
    assert second.skipped == 6 and second.finished == 1
    assert CALLS == [make_job(9).key]


def test_duplicate_jobs_run_once(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store:
        summary = run_grid([make_job(0), make_job(0)], store, progress=False, fn=fake_ok)
    assert summary.total == 1 and len(CALLS) == 1


def test_failed_cell_is_retried_then_recorded(tmp_path):
    jobs = [make_job(0), make_job(1)]
    with ResultStore(tmp_path / "r.sqlite") as store:
        summary = run_grid(jobs, store, progress=False, fn=fake_fail_once, max_attempts=2)
        assert summary.finished == 2 and summary.failed == 0
        assert CALLS.count(make_job(1).key) == 2
        assert len(store.finished_keys()) == 2


def test_permanent_failure_does_not_stop_others_and_is_bounded(tmp_path):
    jobs = [make_job(0), make_job(1)]
    path = tmp_path / "r.sqlite"

    def mixed(job):
        return fake_always_fail(job) if job.image_id == "img0" else fake_ok(job)

    with ResultStore(path) as store:
        summary = run_grid(jobs, store, progress=False, fn=mixed, max_attempts=3)
        assert summary.failed == 1 and summary.finished == 1
        errors = store.rows(status="error")
        assert len(errors) == 1 and "no ffmpeg" in errors[0]["error"]
        assert store.attempts()[make_job(0).key] == 3
        CALLS.clear()
        again = run_grid(jobs, store, progress=False, fn=mixed, max_attempts=3)
    assert again.gave_up == 1 and CALLS == []  # attempts are counted across runs


def test_corrupt_store_file_gives_clear_error(tmp_path):
    path = tmp_path / "results.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a readable SQLite file"):
        ResultStore(path).finished_keys()


def test_csv_written_atomically_with_json_cells(tmp_path):
    out = write_csv(tmp_path / "x.csv", [{"a": 1, "b": {"k": 2}}, {"a": 3}])
    lines = out.read_text().splitlines()
    assert lines[0] == "a,b"
    assert json.loads(lines[1].split(",", 1)[1].strip('"').replace('""', '"')) == {"k": 2}
    assert not list(tmp_path.glob("*.tmp"))


def test_dask_cells_go_longest_first_and_keep_the_grid_order_on_ties():
    import dataclasses

    from eval.pipeline.runner import longest_first

    def job(name, shape, qp):
        j = make_job(0, qp=qp, order_name=name)
        return dataclasses.replace(j, meta={**j.meta, "shape": shape} if shape else {"pixels": 1})

    small = [job("a", [144, 64, 64], qp) for qp in (22, 37)]
    large = [job("b", [144, 64, 97], qp) for qp in (37, 22)]
    tie = job("c", [144, 64, 97], 22)
    unknown = job("d", None, 22)
    ordered = longest_first([unknown, *small, *large, tie])
    assert [(j.order_name, j.qp) for j in ordered] == [("b", 22), ("c", 22), ("b", 37), ("a", 22), ("a", 37), ("d", 22)]
