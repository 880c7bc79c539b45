"""Bad input to a study never gives a wrong table: name collisions, duplicate orders, resource faults, late checks.

Each case ends in a one-line error (exit 2, before any cell is coded where the input is known up front), a
warning recorded in summary.json, or a correct result.
"""

import errno
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eval.pipeline.faults import ResourceError, resource_fault
from eval.pipeline.runner import run_grid
from eval.pipeline.store import ResultStore
from tests._slow_jobs import make_job

ROOT = Path(__file__).resolve().parents[1]


def study(tmp_path, *extra, out="out", timeout=600):
    argv = [sys.executable, "-m", "studies.search_order", "--out", str(tmp_path / out), "--cache-dir", str(tmp_path / "cache"),
            "--model-arg", "short_side=160", "--model-arg", "window=64", "--model-arg", "window_stride=32",
            "--limit", "1", "--workers", "1", "--quiet", "--orders", "identity", "tsp-correlation", "--no-bundled-orders",
            "--compare-quantizers", "none", "--compare-pipelines", "none", "--bootstrap", "0", *extra]
    return subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def one_line(proc) -> str:
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    return lines[0]


# ---------------------------------------------------------------------------------------- checked before any work


@pytest.mark.parametrize("extra, words", [
    (["--qps", "70", "27"], ["--qps", "70 outside vvenc's range 0..63"]),
    (["--packing", "diagonal"], ["--packing", "unknown packing 'diagonal'"]),
    (["--compare-quantizers", "bogus:x=1"], ["--compare-quantizers", "unknown quantizer 'bogus'"]),
    (["--limit", "-1"], ["--limit", "-1 is below the smallest value allowed, 1"]),
    (["--bootstrap", "-5"], ["--bootstrap", "-5 is below the smallest value allowed, 0"]),
    (["--quantizer", "missing.json"], ["--quantizer", "missing.json: file not found"]),
    (["--order-file", "identity=x.json"], ["--order-file", "'identity' is already the anchor order"]),
    (["--order-file", "tsp-correlation=x.json"], ["--order-file", "'tsp-correlation' is already another order"]),
])
def test_bad_options_stop_before_anything_runs(tmp_path, extra, words):
    proc = study(tmp_path, *extra, timeout=120)
    line = one_line(proc)
    for w in words:
        assert w in line, line
    assert not (tmp_path / "out").exists()  # refused before the folder, the model or a cell


@pytest.mark.slow
@pytest.mark.parametrize("compared", [["--compare-quantizers", "recommended"], []])
def test_compare_orders_not_in_the_study_stop_before_any_cell(tmp_path, compared):
    # also without any compared run that would code them: a misspelt name is refused, not ignored
    proc = study(tmp_path, *compared, "--compare-orders", "bogus", "--qps", "32", "37", timeout=300)
    line = one_line(proc)
    assert "--compare-orders" in line and "bogus" in line
    with ResultStore(tmp_path / "out" / "results.sqlite") as store:
        assert len(store) == 0


def test_a_bad_quantizer_file_is_named(tmp_path):
    bad = tmp_path / "q.json"
    bad.write_text('{"name": "log"}')
    proc = study(tmp_path, "--quantizer", str(bad), timeout=300)
    line = one_line(proc)
    assert line.startswith("error: --quantizer: ") and str(bad) in line and "not a saved quantizer" in line
    assert not (tmp_path / "out").exists()  # read up front, before the model or a cell


# ---------------------------------------------------------------------------------------- orders


@pytest.mark.slow
def test_an_order_equal_to_another_is_reported_under_both_names(tmp_path):
    copy = tmp_path / "copy.json"
    copy.write_text(json.dumps(list(range(144))))
    proc = study(tmp_path, "--order-file", f"copy={copy}", "--qps", "22", "27", "32", "37")
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["bd_rate"]) == {"identity", "tsp-correlation", "copy"}
    assert summary["bd_rate"]["copy"]["feature_psnr"] == pytest.approx(0.0, abs=1e-9)  # identity's own cells
    assert any("identity, copy are the same permutation" in w for w in summary["warnings"])
    rows = (out / "results.csv").read_text().splitlines()
    assert sum(",copy," in r for r in rows) == 4 and sum(",identity," in r for r in rows) == 4
    assert sum(r.startswith("copy,") for r in (out / "mpeg_per_qp.csv").read_text().splitlines()) == 4
    assert "8 cells coded now" in proc.stderr  # 3 orders x 4 QPs named, 2 permutations coded


# ---------------------------------------------------------------------------------------- resource faults


def full_disk(job):
    """A job function whose bitstream write finds the disk full for image 1."""
    if job.image_id == "img1":
        raise OSError(errno.ENOSPC, "No space left on device", "/out/bitstreams/x.bin")
    row = job.describe()
    row.update(status="ok", error="", bits=1, feature_psnr=1.0, task_stats={})
    return row


def test_disk_full_stops_the_run_without_spending_the_cells_attempt(tmp_path):
    path = tmp_path / "results.sqlite"
    jobs = [make_job(0), make_job(1), make_job(2)]
    with ResultStore(path) as store, pytest.raises(ResourceError) as info:
        run_grid(jobs, store, progress=False, fn=full_disk, max_attempts=2)
    msg = str(info.value)
    assert "\n" not in msg and "No space left on device" in msg and "run the same command again" in msg
    with ResultStore(path) as store:
        assert store.finished_keys() == {jobs[0].key}  # the finished cell is kept
        assert store.attempts() == {}  # nothing recorded against the cell that met the full disk
    with ResultStore(path) as store:  # space is back: the same grid resumes and finishes
        summary = run_grid(jobs, store, progress=False, fn=_ok_row, max_attempts=2)
    assert summary.skipped == 1 and summary.finished == 2 and summary.failed == 0 and summary.gave_up == 0


def _ok_row(job):
    row = job.describe()
    row.update(status="ok", error="", bits=1, feature_psnr=1.0, task_stats={})
    return row


@pytest.mark.parametrize("exc, expected", [
    (OSError(errno.ENOSPC, "No space left on device"), "No space left on device"),
    (PermissionError(errno.EACCES, "Permission denied", "/ro/x"), "Permission denied (/ro/x)"),
    (OSError(errno.EROFS, "Read-only file system"), "Read-only file system"),
    (RuntimeError("vvenc encode failed: [out] av_interleaved_write_frame(): No space left on device"), "No space left on device"),
    (OSError(errno.EIO, "Input/output error"), None),
    (ValueError("a bad cell"), None),
])
def test_resource_faults_are_told_from_cell_failures(exc, expected):
    assert resource_fault(exc) == expected
    try:  # the cause chain counts too
        raise ValueError("codec wrapper") from exc
    except ValueError as wrapped:
        assert resource_fault(wrapped) == expected


def test_a_resource_fault_writing_a_result_is_one_line(tmp_path, capsys):
    from studies import cli

    with pytest.raises(SystemExit) as info, cli.friendly_errors({}):
        raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "figures" / "bd_rate.png"))
    assert info.value.code == 2
    err = [ln for ln in capsys.readouterr().err.splitlines() if ln.strip()]
    assert len(err) == 1 and "No space left on device" in err[0] and "run the same command again" in err[0]


def test_run_job_marks_a_full_disk_while_saving_the_bitstream(tmp_path, monkeypatch):
    """The real cell: a bitstream write that meets a full disk marks the row as the machine's fault."""
    from codec import make_quantizer
    from eval.pipeline import cell

    features = np.random.default_rng(0).random((4, 32, 32), dtype=np.float32)
    np.save(tmp_path / "f.npy", features)
    job = cell.Job(image_id="x", image_key="k", feature_path=str(tmp_path / "f.npy"), reference_path="/nonexistent.npz",
                   meta={"pixels": 32 * 32}, order_name="identity", order=(0, 1, 2, 3),
                   quantizer=make_quantizer("log").fit([features]).to_dict(), packing="temporal", codec="ffv1",
                   qp=0, model={"name": "mobilenet_v2"}, bitstream_dir=str(tmp_path / "bits"))

    def no_space(path, data):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("codec.files.atomic_write_bytes", no_space)
    row = cell.run_job(job, single_thread=False)
    assert row["status"] == "error" and row["resource_fault"].startswith("No space left on device")
