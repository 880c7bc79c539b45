"""Benchmark codecs, presets and packings on real features: bits, quality, CPU time, ordering gain.

Each configuration ``SPEC[@PACKING]`` (codec registry spec, packing ``temporal`` unless given)
codes the test images with the identity order and the orders learned on the calibration split
(``orders``, default ``tsp-correlation``) at its QP set (``qps``; AV1 codecs, whose quantizer
index is on another scale, use ``qps_av1``). All cells go through the shared core into
``OUT/results.sqlite``, so a re-run codes only what is missing.

The table gives per configuration: encoder/decoder CPU seconds per image and QP point, the
BD-rate of its identity-order curve against ``reference`` (default ``vvenc:preset=medium``, or
the slowest finished configuration), and the ordering gain (learned order vs identity) it
measures, with its distance to the reference's gain. VTM is added to the default list when
FCM_VTM_ENCODER, FCM_VTM_DECODER and FCM_VTM_CFG are set. A codec that is missing or fails is
reported as ``failed: <reason>`` and the others go on (exit status 0 while at least one
configuration finished).

Outputs in ``run.out``: ``bench_codec.csv``, ``bench_codec.json``, ``results.csv``,
``bench_codec.png`` (BD-rate and ordering gain against CPU seconds), ``rd_codecs.png``
(identity-order RD curves of all configurations), ``ordering_gain.png`` (gain bars).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from eval.analysis.codec_bench import DEFAULT_AV1_QPS
from eval.experiments.config import (DEFAULT_QPS, CodingConfig, ConfigError, DataConfig, RunConfig, check_quantizer,
                                     convert_fields, option)

__all__ = ["BenchCodecConfig", "BenchCodecResult", "bench_codec"]



@dataclass
class BenchCodecConfig:
    """Parameters of :func:`bench_codec`."""

    codecs: list[str] | None = option(None, metavar="SPEC[@PACKING]",
                                      help="configurations to compare (default: vvenc faster/fast/medium, vvenc faster@tiled, "
                                      "x265, svtav1, aom; plus vtm when FCM_VTM_ENCODER/FCM_VTM_DECODER/FCM_VTM_CFG are set)")
    packing: str = option("temporal", help="packing of configurations written without @PACKING")
    qps: list[int] = option(factory=lambda: list(DEFAULT_QPS), minimum=0, help="QPs of VVC/HEVC codecs (0..63 / 0..51 scale)")
    qps_av1: list[int] = option(factory=lambda: list(DEFAULT_AV1_QPS), minimum=0,
                                help="quantizer indices (0..63) of AV1 codecs (svtav1, aom): another scale, chosen to span the same quality")
    reference: str | None = option(None, metavar="SPEC[@PACKING]",
                                   help="configuration the others' BD-rates are measured against (default vvenc:preset=medium "
                                   "when configured, else the slowest finished one)")
    quantizer: str = option("log", help="quantizer spec fitted on calibration features, or a saved JSON file")
    orders: list[str] = option(factory=lambda: ["tsp-correlation"], metavar="NAME",
                               help="orders learned on the calibration split whose gain over identity each codec measures")
    bd_method: str = option("pchip", choices=("pchip", "cubic"), help="BD-rate interpolation")
    data: DataConfig = option(factory=DataConfig, help="model and data")
    run: RunConfig = option(factory=lambda: RunConfig(out="results/bench_codec", keep_bitstreams=False), help="running")

    def __post_init__(self):
        convert_fields(self)

    def configs(self):
        from eval.analysis import codec_bench as bm

        try:
            return bm.parse_configs(self.codecs or bm.default_configs(), default_packing=self.packing)
        except ValueError as exc:
            raise ConfigError("codecs", str(exc)) from None

    def reference_label(self, configs) -> str | None:
        """The reference configuration's label among ``configs`` (a typo fails before any coding)."""
        from eval.analysis import codec_bench as bm

        if not self.reference:
            return None
        ref = bm.parse_config(self.reference, self.packing)
        label = next((c.label for c in configs if c.key == ref.key), None)
        if label is None:
            raise ConfigError("reference", f"{self.reference!r} is not one of the codecs "
                              f"({', '.join(c.label for c in configs)}); add it there or name one of them")
        return label

    def check(self) -> None:
        self.reference_label(self.configs())
        check_quantizer(self.quantizer)


@dataclass
class BenchCodecResult:
    """The benchmark table (one row per configuration), its reference and the run's counts."""

    config: BenchCodecConfig
    table: list
    reference: str | None
    main_order: str
    task_name: str
    notes_: list
    grid: object  # RunSummary
    files: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0 if any(t["cells_ok"] for t in self.table) else 3

    def text(self) -> str:
        from eval.analysis import codec_bench as bm

        parts = [bm.format_benchmark_table(self.table, self.reference, order=self.main_order, task_name=self.task_name),
                 bm.format_points_table(self.table)]
        agreement = bm.agreement_lines(self.table, self.reference, order=self.main_order)
        if agreement:
            parts.append("\n".join(agreement))
        return "\n" + "\n\n".join(parts) + "\n"

    def notes(self) -> list[str]:
        lines = ["notes:\n  " + "\n  ".join(self.notes_[:20])] if self.notes_ else []
        lines += [f"{t['config']}: {t['status']}" for t in self.table if t["status"] != "ok"]
        g = self.grid
        lines.append(f"{g.finished} cells coded now, {g.skipped} reused, {g.failed} failed, {g.gave_up} not retried; "
                     f"{self.seconds:.0f} s")
        return lines


def bench_codec(config: BenchCodecConfig, *, command: str | None = None, source: str | None = None) -> BenchCodecResult:
    """Code the test images with every codec configuration of ``config`` and tabulate them (see the module docstring)."""
    from eval.analysis import codec_bench as bm
    from eval.experiments.session import prepare, provenance, study_session
    from eval.pipeline.cell import make_jobs
    from eval.pipeline.features import prepare_references
    from eval.pipeline.orders import learn_orders
    from eval.pipeline.runner import run_grid

    config.check()
    t_start = time.perf_counter()
    configs, run = config.configs(), config.run
    with study_session(config, "bench_codec", command=command, source=source) as folder:
        usable = next((c.codec for c in configs if not c.error), "vvenc")
        setup = prepare(config.data, CodingConfig(quantizer=config.quantizer), run.progress, check_codec=False, codec=usable)
        orders = learn_orders(["identity", *config.orders], setup.calib, folder.orders, provenance(setup), progress=run.progress)
        references = prepare_references(setup.adapter, setup.test, progress=run.progress)
        qps = {c.label: bm.qps_for(c, config.qps, config.qps_av1) for c in configs}
        jobs = [job for c in configs for job in make_jobs(
            setup.test, references, orders.arrays(), setup.quantizer_dict, c.codec, qps[c.label], setup.model_spec,
            packing=c.packing, bitstream_dir=run.bitstream_dir(folder))]
        for c in configs:
            if c.error:
                print(f"warning: {c.label}: {c.error}; its cells will fail", file=sys.stderr)
        print(f"coding {len(setup.test)} test images x {len(orders)} orders x {len(configs)} codec configurations "
              f"= {len(jobs)} cells ({run.workers} worker{'s' if run.workers != 1 else ''})", file=sys.stderr)
        with folder.results_store() as store:
            grid = run_grid(jobs, store, desc="bench_codec", **run.grid_kwargs())
        table, notes, reference = bm.codec_benchmark_table(
            grid.rows + grid.errors, configs, task=setup.adapter.task, images=setup.test.ids, qps=qps, orders=list(orders),
            reference=config.reference_label(configs), method=config.bd_method)
        main_order = next((o for o in config.orders if o != "identity"), "identity")
        result = BenchCodecResult(config, table, reference, main_order, getattr(setup.adapter.task, "name", "task"), notes, grid)
        result.seconds = time.perf_counter() - t_start
        _write(result, folder, setup, configs, qps)
    return result


def _write(result: BenchCodecResult, folder, setup, configs, qps) -> None:
    """results.csv, bench_codec.csv/json and the three figures."""
    from eval.analysis import codec_bench as bm
    from eval.plots import bd_cpu_scatter, bd_rate_bars, plot_rd_curves

    table, reference, order, g = result.table, result.reference, result.main_order, result.grid
    folder.write_results(g.rows + g.errors)
    folder.write_csv("bench_codec.csv", bm.flat_table(table))
    folder.write_json("bench_codec.json", {
        "reference": reference, "order": order, "task_metric": result.task_name, "bd_method": result.config.bd_method,
        "table": [{k: v for k, v in t.items() if not k.startswith("_")} for t in table],
        "agreement": bm.agreement_lines(table, reference, order=order), "notes": result.notes_,
        "run": {"coded_now": g.finished, "reused": g.skipped, "failed": g.failed, "gave_up": g.gave_up, "cells": g.total,
                "seconds": round(result.seconds, 1)},
        "model": setup.model_spec, "quantizer": setup.quantizer_dict, "calibration": setup.calib.ids, "test": setup.test.ids,
        "configs": [{"label": c.label, "codec": c.codec, "packing": c.packing, "qps": qps[c.label]} for c in configs],
    })
    out, title = folder.root, f"{setup.adapter.name} {setup.adapter.layer}, {len(setup.test)} test images"
    result.files = {"table": out / "bench_codec.csv", "summary": out / "bench_codec.json"}
    if any(t["enc_cpu_s"] is not None for t in table):
        result.files["plot"] = bd_cpu_scatter(table, out / "bench_codec.png", reference, order=order,
                                              title=f"Codec benchmark ({title})")
    curves = bm.codec_rd_curves(table)
    if curves:
        result.files["plot rd"] = plot_rd_curves(curves, out / "rd_codecs.png", anchor=reference or "",
                                                 task_label=result.task_name, title=f"identity order per codec ({title})")
    gains = {t["config"]: t["gain"][order] for t in table if order in t["gain"]
             and any(v is not None for v in t["gain"][order].values())}
    if gains:
        result.files["plot gain"] = bd_rate_bars(gains, out / "ordering_gain.png", anchor="identity",
                                                 title=f"ordering gain per codec: {order} vs identity")
