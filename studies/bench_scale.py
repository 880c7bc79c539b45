"""Benchmark the runner's scale-out: the same real grid on 1 and on N Dask workers.

    python -m studies.bench_scale                          # 2 test images x 2 orders x 4 QPs, 1 vs 2 workers
    python -m studies.bench_scale --workers-list 1 2 4 --inline --out results/bench_scale

One small grid (MobileNetV2 features at a reduced short side, coded with the real codec,
so the cells are codec-bound like a study's) is prepared once: features, orders and
references are cached before any timing starts. Then the grid runs once per worker count,
each time through a fresh Dask ``LocalCluster`` (``--inline`` adds the in-process runner
as a baseline) into a fresh results store. The wall time of each run includes starting
the cluster and each worker's first model load: that is what a user waits for.

Printed and written to ``--out`` (``bench_scale.json`` and ``bench_scale.csv``): wall time,
cells per second and the speed-up over one Dask worker, the machine's usable cores and
load average before and after each run (a loaded machine explains a poor speed-up), and
whether every run produced identical rows (bits and feature PSNR of every cell): scale-out
must not change results.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time
from pathlib import Path

from studies import cli

DEFAULT_MODEL_ARGS = [("short_side", 256), ("window", 128), ("window_stride", 64)]


def build_parser() -> argparse.ArgumentParser:
    parser = cli.study_parser("studies.bench_scale", __doc__)
    cli.add_data_arguments(parser)
    cli.add_coding_arguments(parser)
    parser.set_defaults(limit=2, model_arg=list(DEFAULT_MODEL_ARGS))
    parser.add_argument("--orders", nargs="+", default=["identity", "tsp-correlation"], metavar="NAME",
                        help="orders in the grid (learned on the calibration split; identity is always included)")
    parser.add_argument("--workers-list", nargs="+", type=int, default=[1, 2], metavar="N",
                        help="Dask LocalCluster sizes to time; the first is the speed-up baseline")
    parser.add_argument("--inline", action="store_true", help="also time the in-process runner (no Dask)")
    parser.add_argument("--out", default="results/bench_scale", help="output folder (each run's store is made fresh)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser


def main(argv=None) -> int:
    return cli.run_study(build_parser(), run, argv)


def machine_state() -> dict:
    """Cores this process may use and the 1-minute load average (other jobs slow a benchmark down)."""
    from eval.pipeline.cluster import default_workers

    return {"usable_cores": default_workers(), "load_1min": round(os.getloadavg()[0], 2)}


def time_run(jobs, folder: Path, label: str, workers: int, executor: str, progress: bool) -> tuple[dict, list[dict]]:
    """Run ``jobs`` into a fresh store in ``folder``; return the timing record and the rows."""
    from eval.pipeline.runner import run_grid
    from eval.study_folder import StudyFolder

    shutil.rmtree(folder, ignore_errors=True)
    before = machine_state()
    arrivals = []
    t0 = time.perf_counter()
    with StudyFolder(folder).results_store() as store:
        summary = run_grid(jobs, store, workers=workers, executor=executor, max_attempts=2, progress=progress, desc=label,
                           on_row=lambda row: arrivals.append(time.perf_counter() - t0))
        wall = time.perf_counter() - t0
        rows = store.rows(status=None)
    after = machine_state()
    codec_cpu = sum((r.get("encode_cpu_seconds") or 0) + (r.get("decode_cpu_seconds") or 0) for r in rows)
    record = {
        "run": label, "executor": executor, "workers": workers, "cells": summary.total, "finished": summary.finished,
        "failed": summary.failed, "wall_s": round(wall, 2), "cells_per_s": round(summary.total / wall, 3),
        # start-up (cluster, worker imports, first model load) shows in when the first row arrives
        "first_row_s": round(arrivals[0], 2) if arrivals else None,
        # codec CPU seconds (ffmpeg children) over the coding part of the wall time: how many
        # cores the run really got; well below the worker count means other jobs took the rest
        "codec_cpu_s": round(codec_cpu, 2),
        "codec_cores_busy": round(codec_cpu / max(wall - (arrivals[0] if arrivals else 0), 1e-9), 2) if codec_cpu else None,
        "load_before": before["load_1min"], "load_after": after["load_1min"],
    }
    return record, rows


def compare_rows(reference: list[dict], other: list[dict]) -> list[str]:
    """Keys whose bits or feature PSNR differ between two runs (or that only one run finished)."""
    ref = {r["key"]: (r.get("bits"), r.get("feature_psnr")) for r in reference if r["status"] == "ok"}
    oth = {r["key"]: (r.get("bits"), r.get("feature_psnr")) for r in other if r["status"] == "ok"}
    return sorted(k for k in set(ref) | set(oth) if ref.get(k) != oth.get(k))


def run(args) -> int:
    from eval.pipeline.cell import make_jobs
    from eval.pipeline.features import prepare_references
    from eval.pipeline.orders import learn_orders
    from eval.study_folder import StudyFolder

    if any(n < 1 for n in args.workers_list):
        raise ValueError(f"--workers-list {args.workers_list}: every worker count must be 1 or more")
    folder = StudyFolder(args.out)
    out = folder.root
    setup = cli.prepare(args)
    orders = learn_orders(args.orders, setup.calib, folder.orders, cli.provenance(setup), progress=not args.quiet)
    references = prepare_references(setup.adapter, setup.test, progress=not args.quiet)
    jobs = make_jobs(setup.test, references, orders.arrays(), setup.quantizer_dict,
                     setup.codec_spec, args.qps, setup.model_spec, packing=args.packing)
    print(f"grid: {len(setup.test)} test images x {len(orders)} orders x {len(args.qps)} QPs = {len(jobs)} cells, "
          f"{setup.codec_spec}, model {setup.model_spec}; machine: {machine_state()}", file=sys.stderr)

    plan = [("inline", 1, "inline")] if args.inline else []
    plan += [(f"dask-{n}", n, "dask") for n in args.workers_list]
    records, rows_by_run = [], {}
    for label, workers, executor in plan:
        record, rows = time_run(jobs, out / "runs" / label, label, workers, executor, not args.quiet)
        records.append(record)
        rows_by_run[label] = rows
        print(f"{label:>10}: {record['wall_s']:8.1f} s wall (first row after {record['first_row_s']} s), "
              f"{record['cells_per_s']:.3f} cells/s, codec busy on {record['codec_cores_busy']} cores, "
              f"{record['failed']} failed, load {record['load_before']} -> {record['load_after']}", file=sys.stderr)

    baseline = next(r for r in records if r["executor"] == "dask")
    first = plan[0][0]
    mismatches = {}
    for r in records:
        r["speedup_vs_dask_1st"] = round(baseline["wall_s"] / r["wall_s"], 3)
        bad = compare_rows(rows_by_run[first], rows_by_run[r["run"]])
        r["rows_identical"] = not bad
        mismatches[r["run"]] = bad
    identical = all(not bad for bad in mismatches.values())

    print()
    print(f"{'run':>10} {'workers':>7} {'wall s':>8} {'cells/s':>8} {'speed-up':>8} {'cores':>6} {'load':>11} {'identical':>9}")
    for r in records:
        print(f"{r['run']:>10} {r['workers']:>7} {r['wall_s']:>8.1f} {r['cells_per_s']:>8.3f} "
              f"{r['speedup_vs_dask_1st']:>7.2f}x {r['codec_cores_busy']!s:>6} {r['load_before']:>5}->{r['load_after']:<5} "
              f"{str(r['rows_identical']):>9}")
    summary = {
        "grid": {"cells": len(jobs), "test_images": setup.test.ids, "orders": list(orders), "qps": list(args.qps),
                 "codec": setup.codec_spec, "model": setup.model_spec},
        "machine": {"nproc": os.cpu_count(), **machine_state()},
        "runs": records,
        "speedup": {r["run"]: r["speedup_vs_dask_1st"] for r in records},
        "rows_identical": identical,
        "mismatched_keys": {k: v for k, v in mismatches.items() if v},
    }
    folder.write_json("bench_scale.json", summary)
    folder.write_csv("bench_scale.csv", records)
    print(f"\nresults: {out / 'bench_scale.json'}  {out / 'bench_scale.csv'}")
    if not identical:
        print(f"error: runs differ in {sum(map(len, mismatches.values()))} cells: {mismatches}", file=sys.stderr)
        return 3
    return 0 if all(r["failed"] == 0 for r in records) else 3


if __name__ == "__main__":
    sys.exit(main())
