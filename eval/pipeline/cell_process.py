"""What a process that runs cells sets up once: models kept loaded, one thread, a heap that keeps its buffers.

:func:`eval.pipeline.cell.run_job` calls these in whichever process runs the cell (a Dask
worker, or the study's own process when inline); none of them changes a result, only how
fast the next cell starts.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any

__all__ = ["use_adapter", "loaded_adapter", "keep_heap", "limit_threads", "torch_threads", "TAIL_THREADS",
           "MMAP_THRESHOLD", "TRIM_THRESHOLD"]

_ADAPTERS: dict[str, Any] = {}


def use_adapter(model: dict, adapter) -> None:
    """Let cells of ``model`` run on an adapter this process already loaded (no second model load inline)."""
    _ADAPTERS[json.dumps(model, sort_keys=True)] = adapter


def loaded_adapter(model: dict):
    """Model adapters are loaded once per worker process and reused across jobs."""
    key = json.dumps(model, sort_keys=True)
    if key not in _ADAPTERS:
        from eval.models import make_model

        _ADAPTERS[key] = make_model(model["name"], **model.get("kwargs", {}))
    return _ADAPTERS[key]


#: glibc ``mallopt`` parameters (malloc.h) and the values :func:`keep_heap` sets
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 1024 * 1024  # glibc's largest accepted value on 64-bit (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 1024 * 1024 * 1024
_HEAP_KEPT: bool | None = None


def keep_heap() -> bool:
    """Keep freed memory in this process's heap for the next cell instead of handing it back to the OS.

    A cell allocates and frees the same large buffers every time (float64 copies of the map
    in the quantizer and the feature PSNR, the tail's activations), each a few MB to ~30 MB.
    glibc's defaults serve them with fresh ``mmap`` pages or trim them off the heap top when
    freed, so every cell page-faults them in again, zero-filled, and numpy asks for huge pages
    on large arrays: on a virtual machine that takes back freed guest memory this made the
    quantizer ~20x and the feature PSNR ~10x slower inside a cell than in a warm loop, a third
    of the non-codec time (``studies.bench_pipeline``). With the mmap threshold at its maximum
    (32 MiB) and a 1 GiB trim threshold, buffers up to 32 MiB come from the heap, which keeps
    its peak size, so from the second cell on they are reused without a fault. Only memory
    management changes (results are bitwise the same); larger buffers are mmapped as before.

    Called once per process by :func:`run_job` (a worker process, or the study's own process
    when inline). glibc only; returns False where ``mallopt`` is not available or refused.
    """
    global _HEAP_KEPT
    if _HEAP_KEPT is None:
        _HEAP_KEPT = False
        try:
            import ctypes

            libc = ctypes.CDLL(None)
            mallopt = getattr(libc, "mallopt", None)
            if mallopt is not None and hasattr(libc, "gnu_get_libc_version"):  # glibc's mallopt, not another libc's
                mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
                # both set explicitly: setting either turns off glibc's dynamic threshold adjustment
                _HEAP_KEPT = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
        except (OSError, AttributeError):  # pragma: no cover - no C library to load (not Linux/glibc)
            pass
    return _HEAP_KEPT


def limit_threads() -> None:
    """One job per core: keep torch and BLAS from oversubscribing the machine."""
    try:
        import torch

        if torch.get_num_threads() != 1:
            torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a dependency
        pass


#: torch threads the model tail runs on, wherever it runs (a worker, the study's own process inline, the
#: reference tail): a 1x1 convolution's sum over input channels is split by thread count (oneDNN), so the
#: tail's outputs, and every task statistic after them, changed in their last bits (1e-5 relative)
#: between --workers 1 (inline, all cores) and --workers 2 (one thread per worker)
TAIL_THREADS = 1


@contextlib.contextmanager
def torch_threads(n: int):
    """torch's intra-op thread count is ``n`` inside the block and what it was after (no-op when already ``n``)."""
    import torch

    before = torch.get_num_threads()
    if before != n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        if before != n:
            torch.set_num_threads(before)
