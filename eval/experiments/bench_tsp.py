"""Benchmark the open-path TSP solvers of :mod:`reorder.tsp`: path cost against the best found, and time.

For every matrix, each solver's path cost is reported relative to the best path any
solver found for that matrix (``gap_pct`` = 100 * (cost / best - 1)), with its wall time.

Matrices (``source``):

- ``random``: two synthetic kinds per size. ``points``: Euclidean distances between
  uniform random points in the unit square (the classic TSP benchmark). ``corr``:
  ``1 - r`` between random channels built as ``tanh(Z B) + noise`` with a 6-dimensional
  latent ``Z``, i.e. channels on a low-dimensional manifold like real feature maps.
- ``features``: ``1 - r`` (``metric``) of real CNN channels, accumulated over calibration
  images with :func:`reorder.similarity.distance_matrix`. With ``features = DIR`` the
  ``.npy`` files there ([C, H, W] each, all with the same C) are used and a size n < C takes
  the first n channels (sizes above C are skipped). Without it, the package's
  MobileNetV2 adapter (:class:`eval.models.mobilenet.MobileNetV2Adapter`, its preprocessing
  and ImageNet weights; ``python -m eval.install`` puts them in place) runs on the bundled
  colour photos (:func:`eval.data.images.sample_photos`). n = 144 is the
  embedded default split (``features[4].conv[0]``, 144 channels at stride 4). One layer
  has at most 960 channels, so larger n takes the expanded activations of blocks 4, 5, ...
  in turn, each average-pooled to the grid of the coarsest block taken, until n channels
  are collected: a real similarity structure (one network's channels, including the
  near-duplicates and dead channels real layers have) at the sizes of a detector's
  256-channel C2 or of larger layers. Concatenating several images' channels instead would
  add artificial between-image structure.

Solvers that are slow on big inputs are skipped above a size (``SLOW_LIMITS``; override
with ``limits=False``). python-tsp's solvers get ``slow_budget`` seconds each, a hard limit
(their worker process is killed there, see :mod:`reorder.tsp.pytsp`): every such run's
seconds are checked against its budget (``budget + HARD_LIMIT_MARGIN``; a run over it stops
the benchmark with an error), and a run stopped at its limit is marked ``timed out`` with the
fallback path it returned. fast_tsp's budget (its own, soft) is recorded too.
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from eval.experiments.config import ConfigError, convert_fields, option
from reorder.similarity import SIMILARITY_METRICS, distance_matrix
from reorder.tsp import (HARD_LIMIT_MARGIN, SOLVERS, SolverUnavailableError, available_solvers, canonical_solver,
                         fast_tsp_budget, solve_path)

__all__ = ["BenchTspConfig", "BenchTspResult", "bench_tsp", "check_budget", "CSV_COLUMNS", "SLOW_LIMITS"]

DEFAULT_SIZES = [144, 256, 1024, 2048]

SLOW_LIMITS = {
    "python_tsp_dynamic_programming": 13,
    "christofides": 256,
    "greedy": 1024,
    "exact": 13,
}
"""Largest n each slow solver is run at by default (pure Python or O(n**3) parts); python-tsp's
heuristics run at every size because their time limit is hard."""

BUDGETED = tuple(s for s in SOLVERS if s.startswith("python_tsp_"))
"""Solvers with a hard time limit (killed at ``--slow-budget`` seconds; checked in :func:`run`)."""




@dataclass
class BenchTspConfig:
    """Parameters of :func:`bench_tsp`."""

    sizes: list[int] = option(factory=lambda: list(DEFAULT_SIZES), minimum=2, metavar="N", help="matrix sizes")
    solvers: list[str] | None = option(None, metavar="NAME", help="solvers to compare (default: every installed one; see reorder.tsp.SOLVERS)")
    source: str = option("both", choices=("random", "features", "both"), help="synthetic matrices, real feature channels, or both")
    features: str | None = option(None, metavar="DIR", help="folder of [C, H, W] .npy features")
    metric: str = option("correlation", choices=SIMILARITY_METRICS, help="distance for feature matrices")
    repeats: int = option(1, minimum=1, help="runs per solver and matrix (seeds 0, 1, ...)")
    budget: float | None = option(None, minimum=0, help="time_budget passed to every solver (s)")
    slow_budget: float = option(30.0, minimum=0, help="hard time budget of python-tsp's solvers (s; they are killed there)")
    limits: bool = option(True, help="skip slow solvers above their size limit (--no-limits runs them at every size)")
    seed: int = option(0, help="seed of the random matrices")
    out: str | None = option(None, metavar="CSV", help="write one row per run here")

    def __post_init__(self):
        convert_fields(self)


# --------------------------------------------------------------------------------------------- matrices


def random_points(n: int, seed: int) -> np.ndarray:
    """Euclidean distances of ``n`` uniform random points in the unit square."""
    P = np.random.default_rng(seed).random((n, 2))
    return np.sqrt(((P[:, None, :] - P[None, :, :]) ** 2).sum(-1))


def random_corr(n: int, seed: int, latent: int = 6, pixels: int = 400) -> np.ndarray:
    """``1 - r`` of ``n`` random channels ``tanh(Z B) + 0.3 noise`` on a ``latent``-dimensional manifold."""
    rng = np.random.default_rng(seed)
    X = np.tanh(rng.standard_normal((n, latent)) @ rng.standard_normal((latent, pixels)))
    X += 0.3 * rng.standard_normal((n, pixels))
    D = 1.0 - np.corrcoef(X)
    D = np.maximum((D + D.T) / 2, 0.0)
    np.fill_diagonal(D, 0.0)
    return D


def mobilenet_features(n: int, n_images: int = 4):
    """Yield, per bundled colour photo, ``n`` real channels [n, H, W] (see the module docstring for the layers).

    The package's MobileNetV2 adapter preprocesses each photo as the studies do; forward hooks
    catch the expanded activations of blocks 4, 5, ... until ``n`` channels are collected, each
    pooled to the grid of the coarsest block taken.
    """
    import torch
    import torch.nn.functional as F

    from eval.data.images import sample_photos
    from eval.models import make_model

    adapter = make_model("mobilenet_v2")
    model = adapter.model
    blocks = list(range(4, len(model.features) - 1))
    caught: dict[int, torch.Tensor] = {}
    hooks = [model.features[b].conv[0].register_forward_hook(lambda _m, _i, out, b=b: caught.__setitem__(b, out))
             for b in blocks]
    try:
        for sample in sample_photos()[:n_images]:
            caught.clear()
            with torch.inference_mode():
                model.features(adapter.preprocess(sample.load()))
            taken, total = [], 0
            for b in blocks:
                taken.append(caught[b][0])
                total += caught[b].shape[1]
                if total >= n:
                    break
            grid = taken[-1].shape[-2:]
            feats = torch.cat([t if t.shape[-2:] == grid else F.adaptive_avg_pool2d(t, grid) for t in taken])
            yield feats[:n].numpy().astype(np.float32)
    finally:
        for hk in hooks:
            hk.remove()


def folder_features(directory: str | os.PathLike, n: int):
    files = sorted(Path(directory).glob("*.npy"))
    if not files:
        raise ConfigError("features", f"{directory}: no .npy files there; give a folder of [C, H, W] feature arrays")
    for f in files:
        x = np.load(f, allow_pickle=False)
        if x.ndim != 3:
            raise ConfigError("features", f"{f} has shape {x.shape}, expected [C, H, W]")
        if x.shape[0] < n:
            raise ConfigError("features", f"{f} has {x.shape[0]} channels, fewer than n={n}")
        yield x[:n]


def feature_channels(directory) -> int | None:
    if directory is None:
        return None
    files = sorted(Path(directory).glob("*.npy"))
    return int(np.load(files[0], mmap_mode="r").shape[0]) if files else None


def matrices(source: str, sizes, metric: str, features_dir, seed: int):
    """Yield (kind, n, D) for each requested matrix."""
    for n in sizes:
        if source in ("random", "both"):
            yield "points", n, random_points(n, seed + n)
            yield "corr", n, random_corr(n, seed + n)
        if source in ("features", "both"):
            if features_dir is not None:
                c = feature_channels(features_dir)
                if c is None or n > c:
                    print(f"  skipping features n={n}: the folder's features have {c} channels", file=sys.stderr)
                    continue
                D = distance_matrix(folder_features(features_dir, n), metric=metric)
                yield f"features-{metric}", n, D
            else:
                t0 = time.perf_counter()
                D = distance_matrix(mobilenet_features(n), metric=metric)
                print(f"  features n={n}: MobileNetV2 similarity in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
                yield f"mobilenet-{metric}", n, D


# --------------------------------------------------------------------------------------------- the benchmark


@dataclass
class BenchTspResult:
    """One row per solver run: path cost, its gap to the best path found for the matrix, seconds, budget."""

    config: BenchTspConfig
    rows: list
    files: dict = field(default_factory=dict)
    exit_code: int = 0

    def text(self) -> str:
        lines = [f"{'matrix':<22}{'n':>6}  {'solver':<32}{'gap %':>9}{'seconds':>10}{'budget':>8}  note"]
        for r in self.rows:
            budget = "-" if r["budget"] is None else f"{r['budget']:.1f}"
            lines.append(f"{r['matrix']:<22}{r['n']:>6}  {r['solver']:<32}{r['gap_pct']:>9.4f}{r['seconds']:>10.2f}"
                         f"{budget:>8}  {note(r)}".rstrip())
        return "\n".join(lines)

    def notes(self) -> list[str]:
        return [f"wrote {len(self.rows)} rows to {self.config.out}"] if self.config.out else []


def bench_tsp(config: BenchTspConfig, *, command: str | None = None, source: str | None = None) -> BenchTspResult:
    """Solve every matrix of ``config`` with every solver; gaps are relative to the best path found per matrix."""
    from codec.files import write_csv

    solvers = [canonical_solver(s) for s in config.solvers] if config.solvers else available_solvers()
    rows: list[dict] = []
    for kind, n, D in matrices(config.source, config.sizes, config.metric, config.features, config.seed):
        print(f"== {kind} n={n}", file=sys.stderr)
        runs = [r for solver in solvers if config.limits is False or n <= SLOW_LIMITS.get(solver, n)
                for r in _solve(D, kind, n, solver, config)]
        best = min(r["cost"] for r in runs) if runs else float("nan")
        for r in runs:
            r["best"] = best
            r["gap_pct"] = 100.0 * (r["cost"] / best - 1.0) if best > 0 else 0.0
        rows += runs
    if config.out:
        write_csv(config.out, rows, CSV_COLUMNS)
    return BenchTspResult(config, rows)


def _solve(D, kind: str, n: int, solver: str, config: BenchTspConfig) -> list[dict]:
    """``config.repeats`` runs of one solver on one matrix (none when the solver is not installed)."""
    budget = config.budget
    if budget is None and solver in BUDGETED:
        budget = config.slow_budget
    if budget is None and solver == "fast_tsp":
        budget = fast_tsp_budget(n)  # the default solve_path uses: recorded, so the table shows it
    runs = []
    for rep in range(config.repeats):
        try:
            res = solve_path(D, solver=solver, seed=rep, time_budget=budget)
        except SolverUnavailableError as exc:
            print(f"  {solver}: skipped ({exc})", file=sys.stderr)
            break
        print(f"  {solver:<32} rep {rep}: cost {res.cost:.6g} in {res.seconds:.2f} s ({res.solver})", file=sys.stderr, flush=True)
        check_budget(solver, res.seconds, budget)
        runs.append(dict(matrix=kind, n=n, solver=solver, used=res.solver, repeat=rep, cost=res.cost,
                         seconds=res.seconds, budget=budget, timed_out=res.timed_out))
    return runs


#: columns of the CSV written to ``out``
CSV_COLUMNS = ["matrix", "n", "solver", "used", "repeat", "cost", "best", "gap_pct", "seconds", "budget", "timed_out"]


def check_budget(solver: str, seconds: float, budget: float | None) -> None:
    """Raise RuntimeError when a hard-limited solver ran past ``budget + HARD_LIMIT_MARGIN`` seconds."""
    if solver in BUDGETED and budget is not None and seconds > budget + HARD_LIMIT_MARGIN:
        raise RuntimeError(f"{solver} ran {seconds:.2f} s, past its hard budget of {budget:.2f} s "
                           f"(+ {HARD_LIMIT_MARGIN} s margin): the time limit did not hold")


def note(row: dict) -> str:
    """The table's note: what a timed-out run returned, or that a soft budget was overrun."""
    if row["timed_out"]:
        used = row["used"]
        return used[used.index("(") + 1:-1] if "(" in used else "timed out"
    if row["budget"] is not None and row["seconds"] > row["budget"] + HARD_LIMIT_MARGIN:
        return "over its (soft) budget"
    return ""
