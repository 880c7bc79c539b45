"""Benchmark where a cell's time goes: the codec (encode, decode) against everything else.

Features, orders and references are prepared (and cached) first; then the grid is coded
inline, one cell at a time, into a fresh results store, so every cell's time is its own. Each
row carries ``encode_seconds``, ``decode_seconds``, ``tail_seconds`` (the model tail on the
decoded features) and ``cell_seconds`` (the whole cell); the rest of a cell (loading features,
quantizing, packing, unpacking, metrics, writing the bitstream) is ``other``. The result gives
each stage's share of the same run's total cell time and the non-codec share (tail + other),
written as ``bench_pipeline.json`` / ``bench_pipeline.csv``. Shares are only meaningful on an
otherwise idle machine: the load average before and after is recorded too.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import dataclass, field

from eval.experiments.config import CodingConfig, DataConfig, RunConfig, convert_fields, option

__all__ = ["BenchPipelineConfig", "BenchPipelineResult", "bench_pipeline", "stage_split", "STAGES"]

STAGES = ("encode", "decode", "tail", "other")


@dataclass
class BenchPipelineConfig:
    """Parameters of :func:`bench_pipeline` (the cells always run inline, one at a time)."""

    orders: list[str] = option(factory=lambda: ["identity", "tsp-correlation"], metavar="NAME",
                               help="orders to code (reorder.make_orderer names; learned on the calibration split)")
    data: DataConfig = option(factory=DataConfig, help="model and data")
    coding: CodingConfig = option(factory=CodingConfig, help="coding")
    run: RunConfig = option(factory=lambda: RunConfig(out="results/bench_pipeline"), help="running")

    def __post_init__(self):
        convert_fields(self)

    def check(self) -> None:
        self.coding.check()


def stage_split(rows: list[dict]) -> dict:
    """Seconds and shares per stage over finished rows: ``{"cells", "total", "seconds": {...}, "share": {...}, "non_codec_share"}``."""
    ok = [r for r in rows if r.get("status") == "ok" and r.get("cell_seconds") is not None]
    if not ok:
        raise ValueError("no finished cell with timings; see results.sqlite for the failed cells")
    seconds = {"encode": sum(float(r["encode_seconds"]) for r in ok),
               "decode": sum(float(r["decode_seconds"]) for r in ok),
               "tail": sum(float(r["tail_seconds"]) for r in ok)}
    total = sum(float(r["cell_seconds"]) for r in ok)
    seconds["other"] = max(0.0, total - sum(seconds.values()))
    share = {k: v / total for k, v in seconds.items()}
    return {"cells": len(ok), "total": total, "seconds": seconds, "share": share,
            "non_codec_share": share["tail"] + share["other"]}


@dataclass
class BenchPipelineResult:
    config: BenchPipelineConfig
    split: dict
    files: dict = field(default_factory=dict)
    exit_code: int = 0

    def text(self) -> str:
        s = self.split
        lines = [f"{s['cells']} cells inline, {s['total']:.1f} s of cell time ({s['wall']:.1f} s wall), "
                 f"load {s['load_before']} -> {s['load_after']}", f"{'stage':<8}{'seconds':>10}{'share':>8}"]
        lines += [f"{stage:<8}{s['seconds'][stage]:>10.2f}{s['share'][stage]:>8.1%}" for stage in STAGES]
        lines.append(f"non-codec share (tail + other): {s['non_codec_share']:.1%}")
        return "\n" + "\n".join(lines)

    def notes(self) -> list[str]:
        return []


def bench_pipeline(config: BenchPipelineConfig, *, command: str | None = None, source: str | None = None) -> BenchPipelineResult:
    """Code the grid of ``config`` inline into a fresh store and split its cell time by stage."""
    from eval.experiments.session import prepare, provenance, study_session
    from eval.pipeline.cell import make_jobs
    from eval.pipeline.features import prepare_references
    from eval.pipeline.orders import learn_orders
    from eval.pipeline.runner import run_grid
    from eval.study_folder import StudyFolder

    config.check()
    progress = config.run.progress
    with study_session(config, "bench_pipeline", command=command, source=source) as folder:
        setup = prepare(config.data, config.coding, progress)
        orders = learn_orders(config.orders, setup.calib, folder.orders, provenance(setup), progress=progress)
        references = prepare_references(setup.adapter, setup.test, progress=progress)
        jobs = make_jobs(setup.test, references, orders.arrays(), setup.quantizer_dict, setup.codec_spec, config.coding.qps,
                         setup.model_spec, packing=config.coding.packing)
        shutil.rmtree(folder.root / "timed_run", ignore_errors=True)  # every cell is coded again: this is a timing
        load_before = os.getloadavg()[0]
        t0 = time.perf_counter()
        with StudyFolder(folder.root / "timed_run").results_store() as store:
            grid = run_grid(jobs, store, workers=1, executor="inline", max_attempts=1, progress=progress, desc="bench_pipeline")
        split = stage_split(grid.rows + grid.errors)
        split.update(wall=time.perf_counter() - t0, load_before=round(load_before, 2), load_after=round(os.getloadavg()[0], 2),
                     grid={"test_images": setup.test.ids, "orders": list(orders), "qps": list(config.coding.qps),
                           "codec": setup.codec_spec, "model": setup.model_spec})
        folder.write_json("bench_pipeline.json", split)
        folder.write_csv("bench_pipeline.csv", [{"stage": s, "seconds": split["seconds"][s], "share": split["share"][s]}
                                                for s in STAGES])
    return BenchPipelineResult(config, split, {"results": f"{folder.root / 'bench_pipeline.json'}  {folder.root / 'bench_pipeline.csv'}"})
