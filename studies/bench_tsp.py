"""Benchmark the open-path TSP solvers of :mod:`reorder.tsp`: path cost against the best found, and time.

    python -m studies.bench_tsp                                   # sizes 144 256 1024 2048, random + features
    python -m studies.bench_tsp --sizes 256 2048 --source random --solvers default lkh fast_tsp
    python -m studies.bench_tsp --source features --features DIR --out results/bench_tsp.csv

For every matrix, each solver's path cost is reported relative to the best path any
solver found for that matrix (``gap_pct`` = 100 * (cost / best - 1)), with its wall time.

Matrices (``--source``):

- ``random``: two synthetic kinds per size. ``points``: Euclidean distances between
  uniform random points in the unit square (the classic TSP benchmark). ``corr``:
  ``1 - r`` between random channels built as ``tanh(Z B) + noise`` with a 6-dimensional
  latent ``Z``, i.e. channels on a low-dimensional manifold like real feature maps.
- ``features``: ``1 - r`` (``--metric``) of real CNN channels, accumulated over calibration
  images with :func:`reorder.similarity.distance_matrix`. With ``--features DIR`` the
  ``.npy`` files there ([C, H, W] each, all with the same C) are used and a size n < C takes
  the first n channels (sizes above C are skipped). Without it, torchvision's
  MobileNetV2 (ImageNet weights from the torch hub cache; random weights, with a warning,
  when the file is missing) runs on scikit-image's bundled colour photos. n = 144 is the
  embedded default split (``features[4].conv[0]``, 144 channels at stride 4). One layer
  has at most 960 channels, so larger n takes the expanded activations of blocks 4, 5, ...
  in turn, each average-pooled to the grid of the coarsest block taken, until n channels
  are collected: a real similarity structure (one network's channels, including the
  near-duplicates and dead channels real layers have) at the sizes of a detector's
  256-channel C2 or of larger layers. Concatenating several images' channels instead would
  add artificial between-image structure.

Solvers that are slow on big inputs are skipped above a size (``SLOW_LIMITS``; override
with ``--no-limits``). python-tsp's solvers get ``--slow-budget`` seconds each, a hard limit
(their worker process is killed there, see :mod:`reorder.tsp.pytsp`): every such run's
seconds are checked against its budget (``budget + HARD_LIMIT_MARGIN``; a run over it stops
the benchmark with an error), and a run stopped at its limit is marked ``timed out`` with the
fallback path it returned. fast_tsp's budget (its own, soft) is recorded too.

    python -m studies.bench_tsp --source random --sizes 144 256 1024 --slow-budget 5 \
        --solvers lkh fast_tsp python_tsp_local_search python_tsp_simulated_annealing \
                  python_tsp_lin_kernighan python_tsp_record_to_record
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import numpy as np

from codec.files import write_csv
from reorder.similarity import METRICS, distance_matrix
from reorder.tsp import (
    HARD_LIMIT_MARGIN,
    SOLVERS,
    SolverUnavailableError,
    available_solvers,
    canonical_solver,
    fast_tsp_budget,
    solve_path,
)
from studies import cli

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


def _photos() -> list[np.ndarray]:
    try:
        from eval.data.images import sample_photos

        return [s.load() for s in sample_photos()]
    except Exception:  # the eval package is optional here: fall back to scikit-image directly
        from skimage import data

        names = ["astronaut", "coffee", "chelsea", "rocket", "motorcycle_left", "hubble_deep_field"]
        out = []
        for name in names:
            img = getattr(data, name, None)
            if img is not None:
                a = img()
                if a.ndim == 3 and a.shape[2] >= 3:
                    out.append(a[..., :3])
        return out


def _mobilenet():
    import torch
    import torchvision

    from eval.errors import WeightsNotFoundError
    from eval.models.weights import mobilenet_v2_weights_path

    model = torchvision.models.mobilenet_v2(weights=None)
    try:
        model.load_state_dict(torch.load(mobilenet_v2_weights_path(), map_location="cpu", weights_only=True))
    except WeightsNotFoundError:
        warnings.warn("MobileNetV2 ImageNet weights not found (python -m eval.install); using random weights")
    return model.eval()


def mobilenet_features(n: int, n_images: int = 4, short_side: int = 512):
    """Yield, per photo, ``n`` real channels [n, H, W] (see the module docstring for the layer choice)."""
    import torch
    import torch.nn.functional as F

    model = _mobilenet()
    blocks = list(range(4, 18))
    caught: dict[int, torch.Tensor] = {}
    hooks = [model.features[b].conv[0].register_forward_hook(
        lambda _m, _i, out, b=b: caught.__setitem__(b, out)) for b in blocks]
    from eval.models.mobilenet import IMAGENET_MEAN, IMAGENET_STD

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)
    try:
        for img in _photos()[:n_images]:
            x = torch.as_tensor(np.array(img)).permute(2, 0, 1)[None].float() / 255.0
            h, w = x.shape[-2:]
            s = short_side / min(h, w)
            x = F.interpolate(x, size=(round(h * s), round(w * s)), mode="bilinear", antialias=True, align_corners=False)
            caught.clear()
            with torch.no_grad():
                model.features((x - mean) / std)
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
        raise ValueError(f"--features {directory}: no .npy files there; give a folder of [C, H, W] feature arrays")
    for f in files:
        x = np.load(f, allow_pickle=False)
        if x.ndim != 3:
            raise ValueError(f"--features: {f} has shape {x.shape}, expected [C, H, W]")
        if x.shape[0] < n:
            raise ValueError(f"--features: {f} has {x.shape[0]} channels, fewer than n={n}")
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


# --------------------------------------------------------------------------------------------- main


def build_parser() -> argparse.ArgumentParser:
    p = cli.study_parser("studies.bench_tsp", __doc__)
    p.add_argument("--sizes", type=int, nargs="+", default=DEFAULT_SIZES, metavar="N")
    p.add_argument("--solvers", nargs="+", default=None, metavar="NAME",
                   help="solvers to compare (default: every installed one; see reorder.tsp.SOLVERS)")
    p.add_argument("--source", choices=["random", "features", "both"], default="both")
    p.add_argument("--features", default=None, metavar="DIR", help="folder of [C, H, W] .npy features")
    p.add_argument("--metric", choices=METRICS, default="correlation", help="distance for feature matrices")
    p.add_argument("--repeats", type=int, default=1, help="runs per solver and matrix (seeds 0, 1, ...)")
    p.add_argument("--budget", type=float, default=None, help="time_budget passed to every solver (s)")
    p.add_argument("--slow-budget", type=float, default=30.0,
                   help="hard time budget of python-tsp's solvers (s; they are killed there)")
    p.add_argument("--no-limits", action="store_true", help="run slow solvers at every size")
    p.add_argument("--seed", type=int, default=0, help="seed of the random matrices")
    p.add_argument("--out", default=None, metavar="CSV", help="write one row per run here")
    return p


def run(args) -> list[dict]:
    solvers = [canonical_solver(s) for s in args.solvers] if args.solvers else available_solvers()
    rows: list[dict] = []
    for kind, n, D in matrices(args.source, args.sizes, args.metric, args.features, args.seed):
        print(f"== {kind} n={n}", file=sys.stderr)
        runs = []
        for solver in solvers:
            if not args.no_limits and n > SLOW_LIMITS.get(solver, n):
                continue
            budget = args.budget
            if budget is None and solver in BUDGETED:
                budget = args.slow_budget
            if budget is None and solver == "fast_tsp":
                budget = fast_tsp_budget(n)  # the default solve_path uses: recorded, so the table shows it
            for rep in range(args.repeats):
                try:
                    res = solve_path(D, solver=solver, seed=rep, time_budget=budget)
                except SolverUnavailableError as exc:
                    print(f"  {solver}: skipped ({exc})", file=sys.stderr)
                    break
                print(f"  {solver:<32} rep {rep}: cost {res.cost:.6g} in {res.seconds:.2f} s ({res.solver})",
                      file=sys.stderr, flush=True)
                check_budget(solver, res.seconds, budget)
                runs.append(dict(matrix=kind, n=n, solver=solver, used=res.solver, repeat=rep, cost=res.cost,
                                 seconds=res.seconds, budget=budget, timed_out=res.timed_out))
        best = min(r["cost"] for r in runs) if runs else float("nan")
        for r in runs:
            r["best"] = best
            r["gap_pct"] = 100.0 * (r["cost"] / best - 1.0) if best > 0 else 0.0
        rows += runs
        print(f"{'matrix':<22}{'n':>6}  {'solver':<32}{'gap %':>9}{'seconds':>10}{'budget':>8}  note")
        for r in runs:
            budget = "-" if r["budget"] is None else f"{r['budget']:.1f}"
            print(f"{r['matrix']:<22}{r['n']:>6}  {r['solver']:<32}{r['gap_pct']:>9.4f}{r['seconds']:>10.2f}"
                  f"{budget:>8}  {note(r)}".rstrip())
        sys.stdout.flush()
    if args.out:
        write_csv(args.out, rows, CSV_COLUMNS)
        print(f"wrote {len(rows)} rows to {args.out}", file=sys.stderr)
    return rows


#: columns of the CSV that --out writes
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


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
