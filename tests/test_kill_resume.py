"""A real study on two Dask workers, SIGKILLed mid-grid, then resumed: nothing lost, nothing recomputed.

The killed run and an uninterrupted run share the feature cache, so both code the same
features; VVenC with one thread is deterministic, so the resumed study must end with the
very rows of the uninterrupted one.
"""

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
N_CELLS = 2 * 2 * 4  # test images x orders x QPs, before orders the package ships for the model (read from the output)


def study_args(out: Path, cache: Path, workers: int = 2) -> list[str]:
    """The spec's tiny configuration, with channels tiled into one frame per image.

    Tiled, because with one 24x24 channel per frame (temporal packing at short side 96)
    libvvenc rejects the first test image's pictures at QP <= 32 (ffmpeg's wrapper allows
    one byte per luma sample per picture), and the mosaic is also the cheaper grid to code.
    """
    return [
        sys.executable, "-m", "studies.search_order",
        "--out", str(out), "--cache-dir", str(cache),
        "--model-arg", "short_side=96", "--model-arg", "window=64", "--model-arg", "window_stride=32",
        "--limit", "2", "--orders", "identity", "tsp-correlation", "--qps", "22", "27", "32", "37",
        "--packing", "tiled", "--workers", str(workers), "--quiet", "--compare-quantizers", "none", "--compare-pipelines", "none",
    ]


def ok_rows(db: Path) -> dict[str, str]:
    """key -> stored row text of finished cells (read-only look at a store another process writes)."""
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return dict(con.execute("SELECT key, row FROM results WHERE status='ok'"))
    finally:
        con.close()


def count_ok(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        return len(ok_rows(db))
    except sqlite3.Error:  # table not created yet
        return 0


def group_is_gone(pgid: int, timeout: float = 30.0) -> bool:
    """True once no process of the group is left (workers, nanny, ffmpeg included)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        time.sleep(0.1)
    return False


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("kill_resume")
    # inline (one worker): the resumed Dask run must also match another executor
    proc = subprocess.run(study_args(tmp / "full", tmp / "cache", workers=1), cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    n_cells = int(re.search(r"= (\d+) cells", proc.stderr).group(1))
    assert n_cells >= N_CELLS and f"{n_cells} cells coded now, 0 reused" in proc.stderr
    return tmp, n_cells


def test_sigkill_then_resume_loses_nothing_and_recomputes_nothing(uninterrupted):
    tmp, n_cells = uninterrupted
    out = tmp / "killed"
    db = out / "results.sqlite"
    args = study_args(out, tmp / "cache")
    log = open(tmp / "killed.log", "wb")  # a file, not a pipe nobody reads: the study never blocks on it
    proc = subprocess.Popen(args, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while count_ok(db) < 2 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the study finished before it could be killed"
        os.killpg(proc.pid, signal.SIGKILL)  # driver, scheduler, nanny, workers and their ffmpeg at once
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL
    assert group_is_gone(proc.pid), "a worker process survived the kill"

    kept = ok_rows(db)
    assert 2 <= len(kept) < n_cells

    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=400)
    assert again.returncode == 0, again.stderr[-3000:]
    m = re.search(r"(\d+) cells coded now, (\d+) reused", again.stderr)
    assert m, again.stderr[-2000:]
    assert (int(m.group(1)), int(m.group(2))) == (n_cells - len(kept), len(kept))
    print(f"killed with {len(kept)} of {n_cells} cells stored; resumed run: {m.group(0)}")  # evidence, shown with -rP

    final = ok_rows(db)
    assert all(final[k] == text for k, text in kept.items())  # finished rows kept byte for byte
    full = ok_rows(tmp / "full" / "results.sqlite")
    assert set(final) == set(full) and len(final) == n_cells

    def measured(rows):
        return {k: (json.loads(t)["bits"], json.loads(t)["feature_psnr"]) for k, t in rows.items()}

    assert measured(final) == measured(full)  # same bits and feature PSNR as a run never interrupted
