"""python-tsp's solvers, each run in a worker process that is killed at its time budget.

Registered solvers (python-tsp 0.5.0, installed by ``python -m eval.install``):

- ``python_tsp_dynamic_programming`` (alias ``python_tsp_exact``): its exact dynamic
  programme, for at most :data:`~reorder.tsp.base.EXACT_MAX_N` nodes;
- ``python_tsp_local_search`` (its 2-opt neighbourhood) and ``python_tsp_simulated_annealing``,
  both started from the package's nearest-neighbour path and given python-tsp's own
  ``max_processing_time`` a little under the budget, so they normally return by themselves;
  simulated annealing returns its final state, not the best it saw (python-tsp's choice);
- ``python_tsp_lin_kernighan`` and ``python_tsp_record_to_record`` (repeated Lin-Kernighan),
  which have no time limit of their own: python-tsp's Lin-Kernighan can loop forever (it ran
  for over 7 minutes on a 20-node matrix), so the limit here is what stops them.

Hard time limit
---------------
Every call runs python-tsp in a fresh interpreter (``sys.executable -c``, importing only numpy
and python-tsp: about 0.2-0.4 s to start, counted in the budget) that reads the matrix from
a temporary folder and writes its tour there. The parent waits until ``time_budget`` seconds
after the call began (:func:`python_tsp_budget` when None), then sends SIGTERM, and SIGKILL
:data:`TERMINATE_GRACE` seconds later, so a call never lasts much longer than its budget
(:data:`HARD_LIMIT_MARGIN` covers the grace and the cleanup).

On timeout the call does not fail: it returns the best path available and says so, with
:attr:`PathResult.timed_out` set and the solver label ``<name>(timed out: <what>)``. For
Lin-Kernighan and record-to-record the worker keeps the best tour it has found so far (it
watches python-tsp's tour updates) and writes it on SIGTERM (``timed out: best so far``);
otherwise, or when nothing came back, it is the nearest-neighbour path the search started
from (``timed out: nearest_neighbour``). Either is a valid path; callers that need the
solver's own answer check ``timed_out``.

Open paths: python-tsp solves closed tours, so the matrix gets the dummy node of
:func:`reorder.tsp.base._with_dummy`, as LKH and fast_tsp do.

Integer distances: the heuristics get ``D`` rounded to integers 0..10**6 (as LKH does, see
:func:`reorder.tsp.base._scale_to_int`; passed as float64, so sums stay exact). With float
distances python-tsp's Lin-Kernighan never returned on about 1 in 3 random 20-node matrices
(its tour length is updated incrementally and rounding lets an ejection chain "improve"
forever); with integer distances it returned on all 60 tried, in under 0.1 s. The exact
dynamic programme keeps the float distances.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from .base import (
    _LKH_MAX_INT,
    EXACT_MAX_N,
    TSP_SOLVERS,
    SolverUnavailableError,
    _scale_to_int,
    _tour_to_path,
    _with_dummy,
    needs,
    path_cost,
)
from .heuristics import _nearest_neighbour

__all__ = ["PYTHON_TSP_SOLVERS", "HARD_LIMIT_MARGIN", "TERMINATE_GRACE", "python_tsp_budget", "run_python_tsp"]

PYTHON_TSP_SOLVERS = ("dynamic_programming", "local_search", "simulated_annealing", "lin_kernighan",
                      "record_to_record")
"""python-tsp functions wrapped here (``solve_tsp_<name>``), registered as ``python_tsp_<name>``."""

TERMINATE_GRACE = 0.5
"""Seconds between SIGTERM (the worker writes its best tour so far) and SIGKILL."""

HARD_LIMIT_MARGIN = 1.0
"""A call returns within ``time_budget + HARD_LIMIT_MARGIN`` seconds (grace, cleanup, path checks)."""

_EXACT = ("dynamic_programming",)
_INCUMBENT = ("lin_kernighan", "record_to_record")  # no time limit of their own: watch their tour updates
_TIMED = ("local_search", "simulated_annealing")  # take python-tsp's max_processing_time


def python_tsp_budget(n: int) -> float:
    """Default hard time budget in seconds for python-tsp's solvers: 5 + n / 20, at most 60 (18 s at 256)."""
    return float(min(60.0, 5.0 + n / 20.0))


# Runs in a fresh interpreter: argv = folder, solver name, seed, deadline (time.monotonic, system-wide on
# Linux and macOS). Reads folder/in.npz (D, x0); writes folder/out.npy, or folder/best.npy on SIGTERM.
_WORKER = r"""
import os, signal, sys
if sys.path and sys.path[0] in ("", os.getcwd()):
    del sys.path[0]
import random, time
import numpy as np
folder, name, seed, deadline = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

from codec.files import atomic_save_npy  # light: no backends, no scikit-learn


def save(tour, fname):
    atomic_save_npy(os.path.join(folder, fname), np.asarray(tour, dtype=np.int64))

data = np.load(os.path.join(folder, "in.npz"))
D, x0 = data["D"], [int(v) for v in data["x0"]]
random.seed(seed)
np.random.seed(seed)
best = {"tour": None, "cost": float("inf")}

def offer(tour):
    t = np.asarray(tour, dtype=np.int64)
    c = float(D[t, np.roll(t, -1)].sum())
    if c < best["cost"]:
        best["tour"], best["cost"] = t.copy(), c

def on_term(signum, frame):
    if best["tour"] is not None:
        save(best["tour"], "best.npy")
    os._exit(3)

if name in ("lin_kernighan", "record_to_record") and hasattr(__import__("python_tsp.heuristics.lin_kernighan",
                                                                        fromlist=["x"]), "_successors_to_cycle"):
    from python_tsp.heuristics import lin_kernighan as lk
    to_cycle = lk._successors_to_cycle
    def watched(successors):
        cycle = to_cycle(successors)
        offer(cycle)
        return cycle
    lk._successors_to_cycle = watched  # called on every improved tour
    offer(x0)
    signal.signal(signal.SIGTERM, on_term)
if name == "dynamic_programming":
    from python_tsp.exact import solve_tsp_dynamic_programming as solve
    tour, _ = solve(D)
else:
    import python_tsp.heuristics as h
    solve = getattr(h, "solve_tsp_" + name)
    if name in ("local_search", "simulated_annealing"):
        left = deadline - time.monotonic()
        tour, _ = solve(D, x0=x0, max_processing_time=max(0.01, left - min(0.5, 0.1 * left) - 0.05))
    else:
        tour, _ = solve(D, x0=x0)
signal.signal(signal.SIGTERM, signal.SIG_DFL)
save(tour, "out.npy")
"""


def _python_tsp_function(name: str):
    try:
        module = importlib.import_module("python_tsp.exact" if name in _EXACT else "python_tsp.heuristics")
    except ImportError:
        raise SolverUnavailableError(
            f"solver 'python_tsp_{name}' needs python-tsp 0.5.0; install it with `python -m eval.install` "
            "(pinned, --no-deps: its tsplib95 pins networkx < 3)"
        ) from None
    fn = getattr(module, f"solve_tsp_{name}", None)
    if fn is None:
        raise SolverUnavailableError(
            f"solver 'python_tsp_{name}' needs python-tsp 0.5.0 (this one has no solve_tsp_{name}); "
            "install it with `python -m eval.install`"
        )
    return fn


def _extend(D: np.ndarray, start: int | None) -> np.ndarray:
    """Float D with a last dummy node, as :func:`reorder.tsp.base._with_dummy` builds it for integers."""
    n = D.shape[0]
    ext = np.zeros((n + 1, n + 1))
    ext[:n, :n] = D
    row = np.zeros(n) if start is None else np.full(n, 2.0 * float(D.max()) + 1.0)
    if start is not None:
        row[start] = 0.0
    ext[n, :n] = ext[:n, n] = row
    return ext


def _valid_tour(tour, size: int) -> bool:
    t = np.asarray(tour)
    return t.ndim == 1 and t.size == size and np.array_equal(np.sort(t), np.arange(size))


def run_python_tsp(name: str, D: np.ndarray, start: int | None, seed: int, time_budget: float | None,
                   integer: bool = True):
    """Run ``python_tsp.solve_tsp_<name>`` on ``D`` under a hard time limit; ``(path, label, timed_out)``.

    See the module docstring for the worker, the limit and what a timeout returns.
    ``integer=False`` gives the heuristics the float distances instead (on which
    Lin-Kernighan may never return: for tests of the limit and for experiments).
    """
    t0 = time.monotonic()
    n = D.shape[0]
    if name in _EXACT and n > EXACT_MAX_N:
        raise ValueError(f"solver 'python_tsp_{name}' solves at most {EXACT_MAX_N} channels exactly, got {n}; "
                         "use python_tsp_local_search, lkh or default for larger problems")
    _python_tsp_function(name)  # SolverUnavailableError before any work
    budget = python_tsp_budget(n) if time_budget is None else float(time_budget)
    deadline = t0 + budget
    label = f"python_tsp_{name}"
    fallback = _nearest_neighbour(D, start, seed)
    with tempfile.TemporaryDirectory(prefix="fcm-python-tsp-") as folder:
        # dummy last (node n); x0 starts at the dummy, the node python-tsp keeps first
        if name in _EXACT or not integer:
            ext = _extend(D, start)
        else:
            ext = _with_dummy(_scale_to_int(D, _LKH_MAX_INT), start).astype(np.float64)
        np.savez(os.path.join(folder, "in.npz"), D=ext, x0=np.concatenate([[n], fallback]))
        proc = subprocess.Popen([sys.executable, "-c", _WORKER, folder, name, str(int(seed)), repr(deadline)],
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            try:
                _, err = proc.communicate(timeout=max(0.0, deadline - time.monotonic()))
                timed_out = False
            except subprocess.TimeoutExpired:
                timed_out = True
                proc.terminate()  # SIGTERM: the Lin-Kernighan workers write their best tour so far
                try:
                    _, err = proc.communicate(timeout=TERMINATE_GRACE)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    _, err = proc.communicate()
        finally:  # never leave a worker behind (Ctrl-C, errors): Lin-Kernighan may not stop by itself
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if not timed_out:
            out = os.path.join(folder, "out.npy")
            if proc.returncode != 0 or not os.path.isfile(out):
                last = (err or "").strip().splitlines()[-1:] or [f"exit status {proc.returncode}"]
                raise RuntimeError(f"solver {label} failed in its worker process: {last[0]}")
            tour = np.load(out)
            if not _valid_tour(tour, n + 1):
                raise RuntimeError(f"solver {label} returned an invalid tour")
            return _tour_to_path(tour.tolist(), n), label, False
        best = os.path.join(folder, "best.npy")
        if os.path.isfile(best):
            tour = np.load(best)
            if _valid_tour(tour, n + 1):
                path = _tour_to_path(tour.tolist(), n)
                if path_cost(D, path) <= path_cost(D, fallback):
                    return path, f"{label}(timed out: best so far)", True
    return fallback, f"{label}(timed out: nearest_neighbour)", True


def _register(name: str, *aliases: str):
    def solve(D, start, seed, time_budget):
        return run_python_tsp(name, D, start, seed, time_budget)

    solve.__name__ = solve.__qualname__ = f"python_tsp_{name}"
    solve.__doc__ = f"python-tsp's solve_tsp_{name} in a worker process killed at the time budget."
    TSP_SOLVERS.register(f"python_tsp_{name}", *aliases)(needs(check=lambda: _python_tsp_function(name))(solve))


for _name in PYTHON_TSP_SOLVERS:
    _register(_name, *(("python_tsp_exact",) if _name in _EXACT else ()))
