"""eval.pipeline.cell_process.keep_heap: a cell's large buffers are reused from the heap, not faulted in again each cell."""

import ctypes
import subprocess
import sys
import textwrap

import pytest

from eval.pipeline import cell, cell_process


def _glibc() -> bool:
    try:
        return hasattr(ctypes.CDLL(None), "gnu_get_libc_version")
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not (sys.platform.startswith("linux") and _glibc()), reason="mallopt is glibc's")

# Four ~24 MB float64 arrays alive at once (a cell's float64 copies of a 144 x 128 x 170 map and
# the PSNR's difference), freed, then allocated again: the faults of the second round tell whether
# the first round's memory was kept (a few) or handed back and faulted in anew (thousands).
ROUNDS = textwrap.dedent("""
    import resource, sys
    import numpy as np
    from eval.pipeline import cell_process
    if sys.argv[1] == "keep":
        assert cell_process.keep_heap() is True
    def round_():
        arrays = [np.ones(3_000_000) for _ in range(4)]
        del arrays
    faults = []
    for _ in range(3):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        round_()
        faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    print(faults[-1])
""")


def _last_round_faults(mode: str) -> int:
    out = subprocess.run([sys.executable, "-c", ROUNDS, mode], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[-1])


def test_kept_heap_reuses_large_buffers_without_page_faults():
    kept, default = _last_round_faults("keep"), _last_round_faults("default")
    assert kept < 100  # 96 MB come back from the heap: next to no faults
    assert default > 10 * max(kept, 10)  # glibc's defaults trim and fault the same 96 MB in again


def test_keep_heap_is_set_once_per_process_and_run_job_sets_it(monkeypatch):
    calls = []
    monkeypatch.setattr(cell_process, "_HEAP_KEPT", None)
    real_cdll = ctypes.CDLL

    def counting_cdll(*args, **kwargs):
        calls.append(args)
        return real_cdll(*args, **kwargs)

    monkeypatch.setattr(ctypes, "CDLL", counting_cdll)
    job = cell.Job(image_id="x", image_key="k", feature_path="/nonexistent.npy", reference_path="/nonexistent.npz",
                   meta={"pixels": 1}, order_name="identity", order=(0, 1), quantizer={}, packing="temporal",
                   codec="ffv1", qp=0, model={"name": "mobilenet_v2"})
    row = cell.run_job(job, single_thread=False)  # fails at the feature file, after setting the heap up
    assert row["status"] == "error"
    assert cell_process._HEAP_KEPT is True and len(calls) == 1
    assert cell_process.keep_heap() is True and len(calls) == 1  # not again
