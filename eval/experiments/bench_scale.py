"""Benchmark the runner's scale-out: the same real grid on 1 and on N Dask workers.

One small grid (MobileNetV2 features at a reduced short side, coded with the real codec, so the
cells are codec-bound like a study's) is prepared once: features, orders and references are
cached before any timing starts. Then the grid runs once per worker count, each time through a
fresh Dask ``LocalCluster`` (``inline`` adds the in-process runner as a baseline) into a fresh
results store. The wall time of each run includes starting the cluster and each worker's first
model load: that is what a user waits for.

Written to ``out`` (``bench_scale.json`` and ``bench_scale.csv``): wall time, cells per second
and the speed-up over the first Dask run, the machine's usable cores and load average before
and after each run (a loaded machine explains a poor speed-up), and whether every run produced
identical rows (bits and feature PSNR of every cell): scale-out must not change results.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from eval.experiments.config import CodingConfig, DataConfig, convert_fields, option

__all__ = ["BenchScaleConfig", "BenchScaleResult", "bench_scale", "machine_state", "compare_rows"]

DEFAULT_MODEL_ARGS = {"short_side": 256, "window": 128, "window_stride": 64}


@dataclass
class BenchScaleConfig:
    """Parameters of :func:`bench_scale` (its data default: 2 images of each split at a 256 px short side)."""

    orders: list[str] = option(factory=lambda: ["identity", "tsp-correlation"], metavar="NAME",
                               help="orders in the grid (learned on the calibration split; identity is always included)")
    workers_list: list[int] = option(factory=lambda: [1, 2], minimum=1, metavar="N",
                                     help="Dask LocalCluster sizes to time; the first is the speed-up baseline")
    inline: bool = option(False, help="also time the in-process runner (no Dask)")
    out: str = option("results/bench_scale", help="output folder (each run's store is made fresh)")
    quiet: bool = option(False, help="no progress bars")
    verbose: bool = option(False, short="-v", help="debug logging")
    data: DataConfig = option(factory=lambda: DataConfig(limit=2, model_args=dict(DEFAULT_MODEL_ARGS)), help="model and data")
    coding: CodingConfig = option(factory=CodingConfig, help="coding")

    def __post_init__(self):
        convert_fields(self)

    def check(self) -> None:
        self.coding.check()


def machine_state() -> dict:
    """Cores this process may use and the 1-minute load average (other jobs slow a benchmark down)."""
    from eval.pipeline.cluster import default_workers

    return {"usable_cores": default_workers(), "load_1min": round(os.getloadavg()[0], 2)}


def compare_rows(reference: list[dict], other: list[dict]) -> list[str]:
    """Keys whose bits or feature PSNR differ between two runs (or that only one run finished)."""
    ref = {r["key"]: (r.get("bits"), r.get("feature_psnr")) for r in reference if r["status"] == "ok"}
    oth = {r["key"]: (r.get("bits"), r.get("feature_psnr")) for r in other if r["status"] == "ok"}
    return sorted(k for k in set(ref) | set(oth) if ref.get(k) != oth.get(k))


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
    rows = summary.rows + summary.errors
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


@dataclass
class BenchScaleResult:
    """One timing record per run, whether all runs gave identical rows, and the summary written."""

    config: BenchScaleConfig
    records: list
    mismatches: dict
    summary: dict
    files: dict = field(default_factory=dict)

    @property
    def identical(self) -> bool:
        return all(not bad for bad in self.mismatches.values())

    @property
    def exit_code(self) -> int:
        return 3 if not self.identical or any(r["failed"] for r in self.records) else 0

    def text(self) -> str:
        lines = [f"{'run':>10} {'workers':>7} {'wall s':>8} {'cells/s':>8} {'speed-up':>8} {'cores':>6} {'load':>11} {'identical':>9}"]
        for r in self.records:
            lines.append(f"{r['run']:>10} {r['workers']:>7} {r['wall_s']:>8.1f} {r['cells_per_s']:>8.3f} "
                         f"{r['speedup_vs_dask_1st']:>7.2f}x {r['codec_cores_busy']!s:>6} {r['load_before']:>5}->{r['load_after']:<5} "
                         f"{str(r['rows_identical']):>9}")
        return "\n" + "\n".join(lines) + "\n"

    def notes(self) -> list[str]:
        if self.identical:
            return []
        return [f"error: runs differ in {sum(map(len, self.mismatches.values()))} cells: {self.mismatches}"]


def bench_scale(config: BenchScaleConfig, *, command: str | None = None, source: str | None = None) -> BenchScaleResult:
    """Time the grid of ``config`` once per worker count (see the module docstring)."""
    from eval.experiments.session import prepare, provenance, study_session
    from eval.pipeline.cell import make_jobs
    from eval.pipeline.features import prepare_references
    from eval.pipeline.orders import learn_orders

    config.check()
    progress = not config.quiet
    with study_session(config, "bench_scale", run=config, command=command, source=source) as folder:
        setup = prepare(config.data, config.coding, progress)
        orders = learn_orders(config.orders, setup.calib, folder.orders, provenance(setup), progress=progress)
        references = prepare_references(setup.adapter, setup.test, progress=progress)
        jobs = make_jobs(setup.test, references, orders.arrays(), setup.quantizer_dict, setup.codec_spec, config.coding.qps,
                         setup.model_spec, packing=config.coding.packing)
        print(f"grid: {len(setup.test)} test images x {len(orders)} orders x {len(config.coding.qps)} QPs = {len(jobs)} cells, "
              f"{setup.codec_spec}, model {setup.model_spec}; machine: {machine_state()}", file=sys.stderr)
        plan = ([("inline", 1, "inline")] if config.inline else []) + [(f"dask-{n}", n, "dask") for n in config.workers_list]
        records, rows_by_run = [], {}
        for label, workers, executor in plan:
            record, rows_by_run[label] = time_run(jobs, folder.root / "runs" / label, label, workers, executor, progress)
            records.append(record)
            print(f"{label:>10}: {record['wall_s']:8.1f} s wall (first row after {record['first_row_s']} s), "
                  f"{record['cells_per_s']:.3f} cells/s, codec busy on {record['codec_cores_busy']} cores, "
                  f"{record['failed']} failed, load {record['load_before']} -> {record['load_after']}", file=sys.stderr)
        result = _summarise(config, setup, orders, jobs, records, rows_by_run, plan[0][0])
        folder.write_json("bench_scale.json", result.summary)
        folder.write_csv("bench_scale.csv", records)
        result.files = {"results": f"{folder.root / 'bench_scale.json'}  {folder.root / 'bench_scale.csv'}"}
    return result


def _summarise(config, setup, orders, jobs, records, rows_by_run, first) -> BenchScaleResult:
    baseline = next(r for r in records if r["executor"] == "dask")
    mismatches = {}
    for r in records:
        r["speedup_vs_dask_1st"] = round(baseline["wall_s"] / r["wall_s"], 3)
        mismatches[r["run"]] = compare_rows(rows_by_run[first], rows_by_run[r["run"]])
        r["rows_identical"] = not mismatches[r["run"]]
    summary = {
        "grid": {"cells": len(jobs), "test_images": setup.test.ids, "orders": list(orders), "qps": list(config.coding.qps),
                 "codec": setup.codec_spec, "model": setup.model_spec},
        "machine": {"nproc": os.cpu_count(), **machine_state()},
        "runs": records,
        "speedup": {r["run"]: r["speedup_vs_dask_1st"] for r in records},
        "rows_identical": all(not bad for bad in mismatches.values()),
        "mismatched_keys": {k: v for k, v in mismatches.items() if v},
    }
    return BenchScaleResult(config, records, mismatches, summary)
