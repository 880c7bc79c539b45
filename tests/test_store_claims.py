"""Two studies on one --out never code the same cell twice: the folder is locked, the second study refused.

The choice: one lock per study folder (``OUT/.study.lock``, an exclusive flock), not claims
on cells. A study needs every cell of its grid for its report and writes the whole folder
(results.csv, summary.json, orders/, config.toml), so a second study there could only wait
or report a partial grid; refused at once, its user learns which process holds the folder.
The kernel drops the lock when its holder dies in any way, so there is no stale lock to
take over.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from _slow_jobs import make_job
from eval.pipeline.runner import run_grid
from eval.pipeline.lock import StudyBusyError, StudyLock
from eval.pipeline.store import ResultStore, StoreError

ROOT = Path(__file__).resolve().parents[1]


def hold_lock(folder: Path) -> subprocess.Popen:
    """Another process that holds the study lock of ``folder`` until it is killed."""
    code = textwrap.dedent(f"""
        import sys, time
        from eval.pipeline.lock import StudyLock
        lock = StudyLock({str(folder)!r}).acquire()
        print("held", flush=True)
        time.sleep(120)
    """)
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait(timeout=30)


def test_lock_is_reentrant_in_a_process_and_records_its_owner(tmp_path):
    with StudyLock(tmp_path) as outer:
        info = outer.owner()
        assert info["pid"] == os.getpid() and info["host"] == socket.gethostname() and info["started"]
        with StudyLock(tmp_path):  # the study's entry point and run_grid both take it
            pass
        assert outer.owner()["pid"] == os.getpid()  # still held after the inner release
    assert StudyLock(tmp_path).owner() == {}  # released: no owner recorded


def test_a_folder_held_by_another_process_is_refused_at_once(tmp_path):
    holder = hold_lock(tmp_path)
    try:
        t0 = time.monotonic()
        with pytest.raises(StudyBusyError) as info:
            StudyLock(tmp_path).acquire()
        assert time.monotonic() - t0 < 5
        assert str(info.value) == (f"another study (pid {holder.pid} on {socket.gethostname()}, since "
                                   f"{StudyLock(tmp_path).owner()['started']}) is running in {tmp_path}; "
                                   "wait for it or use another output folder (out)")
        assert isinstance(info.value, StoreError)  # studies print it as one line and exit 2
        calls = []
        with ResultStore(tmp_path / "results.sqlite") as store:
            with pytest.raises(StudyBusyError):  # run_grid locks the store's folder too
                run_grid([make_job(0)], store, progress=False, fn=calls.append)
            assert calls == [] and len(store) == 0
    finally:
        stop(holder)


def test_the_lock_of_a_killed_study_is_free_at_once(tmp_path):
    holder = hold_lock(tmp_path)
    holder.send_signal(signal.SIGKILL)  # no clean-up of any kind
    holder.wait(timeout=30)
    with StudyLock(tmp_path) as lock:
        assert lock.owner()["pid"] == os.getpid()


@pytest.mark.slow
def test_second_study_on_the_same_out_is_refused_and_no_cell_is_coded_twice(tmp_path):
    args = [
        sys.executable, "-m", "studies.search_order", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
        "--model-arg", "short_side=96", "--model-arg", "window=64", "--model-arg", "window_stride=32",
        "--limit", "2", "--orders", "identity", "--qps", "32", "37", "--packing", "tiled", "--workers", "1", "--quiet",
        "--compare-quantizers", "none", "--compare-pipelines", "none",
    ]
    lock_file = tmp_path / "out" / StudyLock.FILENAME
    with open(tmp_path / "first.log", "wb") as log:
        first = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            try:
                if json.loads(lock_file.read_text()).get("pid") == first.pid:
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.05)
        assert first.poll() is None, (tmp_path / "first.log").read_text()[-2000:]
        second = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert first.poll() is None, "the first study ended before the second one was refused"
        assert second.returncode == 2, second.stderr[-2000:]
        last = second.stderr.strip().splitlines()[-1]
        assert re.fullmatch(rf"error: another study \(pid {first.pid} on \S+, since [-0-9: ]+\) is running in "
                            rf"{re.escape(str(tmp_path / 'out'))}; wait for it or use another output folder \(out\)", last), last
        assert first.wait(timeout=400) == 0, (tmp_path / "first.log").read_text()[-2000:]
    finally:
        stop(first)
    text = (tmp_path / "first.log").read_text()
    n_cells = int(re.search(r"= (\d+) cells", text).group(1))
    assert f"{n_cells} cells coded now, 0 reused" in text
    con = sqlite3.connect(tmp_path / "out" / "results.sqlite")
    assert con.execute("SELECT status, COUNT(*), MAX(attempts) FROM results GROUP BY status").fetchall() == [("ok", n_cells, 1)]
    con.close()
