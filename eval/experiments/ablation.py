"""Ablations: what each choice in learning and coding an order is worth, as BD-rate vs identity.

Grid: similarity metric x distance normalization x TSP solver (orders learned on the
calibration split) under every coding setting quantizer x codec preset x packing. Each cell is
a BD-rate against the identity order coded in the same setting on the same test images.
Besides the grid, for each ``reference_orders`` orderer (default ``tsp-correlation``): the
fixed order learned on the whole calibration split, the per-image oracle (the order learned on
each test image itself, the upper bound of a fixed order) and the calibration-size curve
(orders learned on the first k calibration images).

With several quantizers, presets or packings, each row also gives the BD-rate of the variant
against itself in the first setting (``vs 1st setting``).

Every cell goes through the shared core into one ``results.sqlite``: re-running with more
axis values codes only the new cells. Outputs in ``run.out``: ``ablation.csv`` (one row per
setting x variant), ``results.csv`` (one row per variant x coded cell), ``summary.json``,
learned orders under ``orders/``, ``oracle/``, ``calib_size/``.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from eval.experiments.config import (DEFAULT_QPS, CodingConfig, ConfigError, DataConfig, RunConfig, check_codec_qps, check_packing,
                                     check_quantizer, convert_fields, option)

__all__ = ["AblateConfig", "AblateResult", "ablate"]


@dataclass
class AblateConfig:
    """Parameters of :func:`ablate`: the axes of the grid and the coding settings."""

    metrics: list[str] = option(factory=lambda: ["correlation", "mse"], help="similarity metrics of the TSP orders (reorder names)")
    normalizations: list[str] = option(factory=lambda: ["none", "zscore"],
                                       help="how channels are normalized before their distances are measured (reorder.similarity)")
    solvers: list[str] = option(factory=lambda: ["default"], help="TSP solvers")
    grid: bool = option(True, help="the metric x normalization x solver grid (--no-grid: only the reference orders)")
    quantizers: list[str] = option(factory=lambda: ["log"], help="quantizer specs (fitted on calibration) or saved JSON files")
    presets: list[str] = option(factory=lambda: ["faster"], help="codec presets ('default' = the codec's own)")
    packings: list[str] = option(factory=lambda: ["temporal"], help="channel packings: temporal, tiled")
    reference_orders: list[str] = option(factory=lambda: ["tsp-correlation"], optional_list=True,
                                         help="orderers for the fixed order, the per-image oracle and the calibration-size curve")
    oracle: bool = option(True, help="per-image oracle orders")
    calib_sizes: list[int] | None = option(None, minimum=1, optional_list=True,
                                           help="calibration-set sizes k (first k images); default 1 2 4 8 up to the split's "
                                           "size, and the full split; an empty list to skip")
    codec: str = option("vvenc", help="codec registry spec; presets are added to it")
    qps: list[int] = option(factory=lambda: list(DEFAULT_QPS), minimum=0, help="quantisation parameters of the RD curves")
    bd_method: str = option("pchip", choices=("pchip", "cubic"), help="BD-rate interpolation")
    data: DataConfig = option(factory=DataConfig, help="model and data")
    run: RunConfig = option(factory=lambda: RunConfig(out="results/ablate"), help="running")

    def __post_init__(self):
        convert_fields(self)

    def check(self) -> None:
        from eval import ablation as ab

        if not self.quantizers:
            raise ConfigError("quantizers", "give at least one quantizer")
        for p in self.presets:
            check_codec_qps(ab.codec_with_preset(self.codec, p), self.qps)
        for p in self.packings:
            check_packing(p, "packings")
        for q in self.quantizers:
            check_quantizer(q, "quantizers")


@dataclass
class AblateResult:
    """The ablation table (one row per setting x variant), its notes, and what the grid did."""

    config: AblateConfig
    table: list
    notes_: list
    task_name: str
    failed: list
    grid: object  # RunSummary
    files: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0 if not self.failed else 3

    def text(self) -> str:
        from eval import ablation as ab

        parts = [ab.format_ablation(self.table, task_name=self.task_name)]
        if self.config.grid:
            for s in dict.fromkeys((r["quantizer"], r["preset"], r["packing"]) for r in self.table):
                for solver in self.config.solvers:
                    where = {"quantizer": s[0], "preset": s[1], "packing": s[2], "solver": solver}
                    parts.append(f"BD feature PSNR % (metric x normalization), solver {solver}, {' | '.join(map(str, s))}:\n"
                                 + ab.pivot(self.table, "metric", "normalization", "bd_feature_psnr", where))
        parts += ab.reference_summary(self.table, list(dict.fromkeys(self.config.reference_orders)))
        return "\n" + "\n\n".join(parts) + "\n"

    def notes(self) -> list[str]:
        lines = []
        if self.failed:
            lines.append(f"{len(self.failed)} cell(s) failed and are recorded in results.sqlite (re-run to retry):")
            lines += [f"  {r['image_id']} {r['order']} qp {r['qp']}: {r['error']}" for r in self.failed[:10]]
        lines += [f"note: {n}" for n in self.notes_]
        g = self.grid
        lines.append(f"{g.finished} cells coded now, {g.skipped} reused from an earlier run, {g.failed} failed; {self.seconds:.0f} s")
        return lines


def ablate(config: AblateConfig, *, command: str | None = None, source: str | None = None) -> AblateResult:
    """Run the ablation of ``config`` (see the module docstring)."""
    from eval import ablation as ab
    from eval.experiments.session import study_session
    from eval.pipeline.runner import run_grid

    config.check()
    t_start = time.perf_counter()
    with study_session(config, "ablate", command=command, source=source) as folder:
        setup, plan, settings = _plan(config, folder)
        print(f"ablation: {len(settings)} coding setting(s) x {len({v for _, v in plan.keys})} variants on {len(setup.test)} "
              f"test images x {len(config.qps)} QPs = {len({j.key for j in plan.jobs})} distinct cells "
              f"({config.run.workers} worker{'s' if config.run.workers != 1 else ''})", file=sys.stderr)
        with folder.results_store() as store:
            grid = run_grid(plan.jobs, store, desc="ablation", **config.run.grid_kwargs())
        task = setup.adapter.task
        table, notes = ab.ablation_table(plan, grid.rows, task, method=config.bd_method)
        _write(config, folder, setup, settings, grid.rows, table, notes)
    files = {"ablation table": folder.root / "ablation.csv", "cells": folder.results_csv, "summary": folder.summary_json,
             "orders": f"{folder.root / 'orders'}, {folder.root / 'oracle'}, {folder.root / 'calib_size'}"}
    return AblateResult(config, table, notes, task.name, grid.errors, grid, files, time.perf_counter() - t_start)


def _plan(config: AblateConfig, folder):
    """The model, the coding settings, every order (grid, fixed, oracle, calibration sizes) and the plan of cells."""
    import numpy as np

    from codec import make_codec
    from eval import ablation as ab
    from eval.experiments.session import prepare, provenance
    from eval.pipeline.features import prepare_references
    from eval.pipeline.orders import learn_orders
    from eval.pipeline.setup import fit_quantizer

    progress = config.run.progress
    codec_specs = [ab.codec_with_preset(config.codec, p) for p in config.presets]
    setup = prepare(config.data, CodingConfig(quantizer=config.quantizers[0], qps=config.qps), progress, codec=codec_specs[0])
    quantizers = {config.quantizers[0]: setup.quantizer_dict}
    for spec in config.quantizers[1:]:
        quantizers[spec] = fit_quantizer(spec, setup.calib).to_dict()
    codecs = {p: make_codec(spec).spec() for p, spec in zip(config.presets, codec_specs)}
    settings = ab.coding_settings(quantizers, codecs, config.packings)
    refs = list(dict.fromkeys(config.reference_orders))
    n_calib = len(setup.calib)
    sizes = config.calib_sizes if config.calib_sizes is not None else [k for k in (1, 2, 4, 8) if k < n_calib] + [n_calib]
    sizes = sizes if refs else []
    variants = ab.grid_variants(config.metrics, config.normalizations, config.solvers) if config.grid else []
    prov = provenance(setup)
    orders = learn_orders([v.orderer for v in variants] + refs, setup.calib, folder.orders, prov, progress=progress)
    oracle = ab.learn_per_image_orders(refs, setup.test, folder.order_folder("oracle"), prov, progress) \
        if config.oracle and refs else {}
    by_size = ab.learn_calibration_size_orders(refs, setup.calib, sizes, folder.order_folder("calib_size"), prov, progress) \
        if sizes else {}
    references = prepare_references(setup.adapter, setup.test, progress=progress)
    plan = ab.AblationPlan(setup.test, references, list(config.qps), setup.model_spec,
                           bitstream_dir=config.run.bitstream_dir(folder))
    identity = np.arange(setup.calib.n_channels, dtype=np.int64)
    for s in settings:
        ab.add_variants(plan, s, identity, orders, variants, refs, oracle, by_size, n_calib)
    return setup, plan, settings


def _write(config: AblateConfig, folder, setup, settings, rows, table, notes) -> None:
    from eval import ablation as ab
    from eval.study_folder import RESULT_COLUMNS

    folder.write_csv("ablation.csv", table, ab.TABLE_COLUMNS)
    extra_cols = ["study", "kind", "variant", "metric", "normalization", "solver", "reference", "k", "quantizer_label", "preset"]
    folder.write_csv("results.csv", rows, RESULT_COLUMNS + extra_cols)
    folder.write_json("summary.json", {
        "table": table, "notes": notes, "model": setup.model_spec, "qps": list(config.qps), "calibration": setup.calib.ids,
        "test": setup.test.ids, "settings": [s.label for s in settings],
        "quantizers": {s.quantizer: s.quantizer_dict for s in settings}, "codecs": {s.preset: s.codec for s in settings},
        "task_metric": setup.adapter.task.name, "bd_method": config.bd_method,
    })
