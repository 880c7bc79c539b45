"""SIGTERM is handled like Ctrl-C: a one-line message, exit status 143, no process left behind, rows kept.

A tiny real study on a 2-worker LocalCluster (workers and their ffmpeg children are
processes of its own) gets SIGTERM, as from `kill`, systemd or a batch scheduler, once a
row is stored.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import psutil  # a dependency of distributed
import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def study_args(tmp: Path) -> list[str]:
    """8 cells: 2 test photos at a 96 px short side, tiled, identity (+ the study's anchors), 2 QPs."""
    return [
        sys.executable, "-m", "studies.search_order", "--out", str(tmp / "out"), "--cache-dir", str(tmp / "cache"),
        "--model-arg", "short_side=96", "--model-arg", "window=64", "--model-arg", "window_stride=32",
        "--limit", "2", "--orders", "identity", "--qps", "32", "37", "--packing", "tiled", "--workers", "2", "--quiet",
        "--compare-quantizers", "none", "--compare-pipelines", "none",
    ]


def ok_rows(db: Path) -> dict[str, str]:
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    except sqlite3.Error:
        return {}
    try:
        return dict(con.execute("SELECT key, row FROM results WHERE status='ok'"))
    except sqlite3.Error:  # not created yet
        return {}
    finally:
        con.close()


def alive(procs) -> list:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.NoSuchProcess:
            pass
    return out


def wait_gone(procs, pgid: int, timeout: float = 30.0) -> list:
    """What is still running of ``procs`` and of the process group after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        left = alive(procs)
        try:
            os.killpg(pgid, 0)
            group = True
        except ProcessLookupError:
            group = False
        if group:  # zombies of the group (reparented to init) are reaped soon; count only live ones
            left += [p for p in alive(psutil.process_iter()) if p not in left and _pgid(p) == pgid]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _pgid(p) -> int | None:
    try:
        return os.getpgid(p.pid)
    except (ProcessLookupError, PermissionError):
        return None


def test_sigterm_exits_143_cleans_up_and_the_rerun_resumes(tmp_path):
    args = study_args(tmp_path)
    db = tmp_path / "out" / "results.sqlite"
    log_path = tmp_path / "terminated.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not ok_rows(db) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert proc.poll() is None, "the study ended before it could be terminated:\n" + log_path.read_text()[-2000:]
        children = psutil.Process(proc.pid).children(recursive=True)  # scheduler helpers, workers, ffmpeg
        assert len(children) >= 2, children  # the two worker processes at least
        proc.send_signal(signal.SIGTERM)  # the driver only, as `kill PID` does
        rc = proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    text = log_path.read_text()
    assert rc == 143, text[-2000:]
    assert text.rstrip().splitlines()[-1] == "terminated: finished cells are stored; run the same command again to resume"
    assert "Traceback" not in text
    left = wait_gone(children, proc.pid)
    assert not left, f"left behind: {[(p.pid, p.name()) for p in left]}"

    kept = ok_rows(db)
    n_cells = int(re.search(r"= (\d+) cells", text).group(1))
    assert 1 <= len(kept) < n_cells
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"{n_cells - len(kept)} cells coded now, {len(kept)} reused" in again.stderr
    final = ok_rows(db)
    assert len(final) == n_cells and all(final[k] == v for k, v in kept.items())
    print(f"terminated with {len(kept)} of {n_cells} cells stored; re-run: {n_cells - len(kept)} coded, {len(kept)} reused")
