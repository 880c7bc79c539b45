"""Learn fixed channel orders on a calibration split and measure what they save on a test split.

:func:`search_orders` is the package's main experiment (``python -m studies.search_order``):

1. model head on both splits (features cached), the paper's quantizer fitted on calibration;
2. orders learned on the calibration split (``orders``), read from files (``order_file``) and
   the hand-made ones the package ships for the model (``bundled_orders``), each saved with
   its provenance in ``OUT/orders/``;
3. every test image x order x QP coded through the shared core (:mod:`eval.pipeline.cell`);
4. each further quantizer (``compare_quantizers``) coded with identity and ``compare_orders``
   at QPs matched to the main quantizer's quality range (:mod:`eval.pipeline.quantizer_runs`);
5. BD-rates with paired-bootstrap intervals against identity and against the paper's pipeline,
   written as ``results.csv``, ``summary.json``, ``mpeg_per_qp.csv`` and figures.

Re-running with the same output folder skips every finished cell, so an interrupted run resumes.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from eval.experiments.config import CodingConfig, ConfigError, DataConfig, RunConfig, convert_fields, option
from eval.experiments.session import prepare, provenance, study_session

__all__ = ["SearchConfig", "SearchResult", "search_orders", "DEFAULT_ORDERS"]

# tsp-mse (about 1.3 points behind tsp-correlation on feature PSNR) is left to `orders` so that the default
# study, which also codes the recommended quantizer at matched QPs, stays within 10 minutes on 2 cores
DEFAULT_ORDERS = ["identity", "random", "tsp-correlation"]


@dataclass
class SearchConfig:
    """Parameters of :func:`search_orders`."""

    orders: list[str] = option(factory=lambda: list(DEFAULT_ORDERS), metavar="NAME",
                               help="orders to learn on the calibration split (reorder.make_orderer names, e.g. tsp-ssim, "
                               "spectral-correlation, 'tsp-correlation:normalization=zscore'); identity is always added as the anchor")
    order_file: list[str] = option(factory=list, repeat=True, metavar="[NAME=]PATH",
                                   help="a hand-made ('subjective') or saved order to compare: JSON written by this package, "
                                   "a JSON list, or a text file of channel indices; repeatable")
    bundled_orders: bool = option(True, help="also compare the hand-made orders the package ships for this model and layer "
                                  "(MobileNetV2: 'subjective', eval/models/orders/)")
    compare_quantizers: list[str] = option(factory=lambda: ["recommended"], metavar="[NAME=]SPEC",
                                           help="further quantizers, each fitted on the calibration split and coded with identity "
                                           "and --compare-orders at QPs matched to the main quantizer's quality range; "
                                           "'recommended' = the package's recommended quantizer "
                                           "(eval.pipeline.quantizer_runs.RECOMMENDED_QUANTIZER); 'none' = only --quantizer. "
                                           "summary.json then holds bd_rate_vs_paper: every run against the paper's pipeline "
                                           "(global log 8-bit, identity)")
    compare_orders: list[str] | None = option(None, metavar="NAME",
                                              help="orders (of --orders / --order-file / bundled ones) coded under each "
                                              "--compare-quantizers item besides identity (default: tsp-correlation when the study has it)")
    compare_pipelines: list[str] = option(factory=lambda: ["mpeg-anchor"], metavar="NAME",
                                          help="named pipelines (codec.pipelines: mpeg-anchor, fctm, paper) coded with identity "
                                          "and --pipeline-orders at matched QPs, each with its own quantizer, packing and chroma; "
                                          "with mpeg-anchor, summary.json holds bd_rate_vs_anchor: every run against MPEG's anchor; "
                                          "'none' = no pipeline")
    pipeline_orders: list[str] = option(factory=list, metavar="NAME",
                                        help="orders learned on the calibration split and coded only under --compare-pipelines "
                                        "(e.g. tiled placements: snake-correlation grid-correlation)")
    match_qps: bool = option(True, help="pick each compared quantizer's QPs so that its identity curve spans the main identity "
                             "curve's range of feature PSNR and task score (recorded in summary.json qp_match); "
                             "--no-match-qps uses --qps")
    bootstrap: int = option(1000, minimum=0, metavar="N",
                            help="replicates of the paired bootstrap (test images, and windows inside them where the task has "
                            "them) behind every BD-rate's 95 % interval; 0 = no intervals")
    bootstrap_block: int = option(1, minimum=1, metavar="N",
                                  help="resample runs of N consecutive test images together (video frames, whose neighbours "
                                  "are not independent); 1 = single images")
    data: DataConfig = option(factory=DataConfig, help="model and data")
    coding: CodingConfig = option(factory=CodingConfig, help="coding")
    run: RunConfig = option(factory=lambda: RunConfig(out="results/search_order"), help="running")

    def __post_init__(self):
        convert_fields(self)

    def compared_specs(self) -> list[tuple[str, str]]:
        """``[(label, spec)]`` of ``compare_quantizers`` (:func:`eval.pipeline.quantizer_runs.parse_quantizer_specs`)."""
        from eval.pipeline.quantizer_runs import parse_quantizer_specs

        try:
            return parse_quantizer_specs(self.compare_quantizers)
        except ValueError as exc:
            raise ConfigError("compare_quantizers", str(exc)) from None

    def run_specs(self, orders: list[str], codec: str) -> list:
        """Every compared run: each quantizer with ``orders``, then each pipeline with ``pipeline_orders``."""
        from eval.pipeline.quantizer_runs import RunSpec, pipeline_runs

        try:
            pipelines = pipeline_runs(self.compare_pipelines, codec, self.pipeline_orders)
        except ValueError as exc:
            raise ConfigError("compare_pipelines", str(exc)) from None
        quantizers = [RunSpec(label, spec, orders=tuple(orders)) for label, spec in self.compared_specs()]
        labels = [r.label for r in quantizers + pipelines]
        clash = sorted({name for name in labels if labels.count(name) > 1})
        if clash:
            raise ConfigError("compare_pipelines", f"{', '.join(clash)} names both a compared quantizer and a pipeline; "
                              "give the quantizer another NAME=")
        return quantizers + pipelines

    def check(self) -> None:
        """Everything that can be checked before any work: codec, QPs, packing, every quantizer spec."""
        from eval.experiments.config import check_quantizer

        from eval.pipeline.orders import order_file_name

        self.coding.check()
        for label, spec in self.compared_specs():
            check_quantizer(spec, "compare_quantizers")
        self.run_specs([], self.coding.codec_spec())
        names = [order_file_name(spec) for spec in self.order_file]
        for name, spec in zip(names, self.order_file):
            if name == "identity" or name in self.orders or names.count(name) > 1:
                raise ConfigError("order_file", f"{spec}: the name {name!r} is already "
                                  f"{'the anchor order' if name == 'identity' else 'another order of this study'}; "
                                  "give the file another NAME=PATH")


@dataclass
class SearchResult:
    """What :func:`search_orders` measured and wrote: the reports, the rows, the summary and the files."""

    config: SearchConfig
    report: object  # eval.analysis.report.Report: every order against identity under the main quantizer
    compared: list  # eval.pipeline.quantizer_runs.ComparedRun per compared quantizer
    runs_report: object | None  # every run against the paper's pipeline (None without compared runs)
    anchor_report: object | None  # every run against MPEG's anchor (None unless mpeg-anchor is compared)
    rows: list  # every finished row of the study (main and compared quantizers)
    failed: list  # error rows of the main grid
    summary: dict  # summary.json
    grid: object  # eval.pipeline.runner.RunSummary of the main grid
    files: dict = field(default_factory=dict)  # label -> path
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0 if not self.failed else 3

    def text(self) -> str:
        """The tables a person reads: orders against identity, each compared quantizer, every run against the paper."""
        parts = [self.report.format()]
        for c in self.compared:
            parts.append(f"under quantizer {c.run.label} ({c.run.spec}), QPs {', '.join(map(str, c.run.qps))}: "
                         f"against {c.run.label}/identity\n{c.report.format()}")
        if self.runs_report is not None:
            key = _vs_key(self.summary)
            parts.append(f"every run against {self.summary[key + '_anchor']} ({key}; overlap of feature PSNR / task range):\n"
                         f"{self.runs_report.format()}")
        if self.anchor_report is not None:
            parts.append(f"every run against MPEG's anchor, {self.summary['bd_rate_vs_anchor_anchor']} (bd_rate_vs_anchor):\n"
                         f"{self.anchor_report.format()}")
        return "\n" + "\n\n".join(parts) + "\n"

    def notes(self) -> list[str]:
        """Warnings, failed cells and the tally: what goes to stderr."""
        lines = [f"warning: {w}" for w in self.summary.get("warnings", [])]
        if self.failed:
            lines.append(f"{len(self.failed)} cell(s) failed and are recorded in results.sqlite (re-run to retry):")
            lines += [f"  {r['image_id']} {r['order']} qp {r['qp']}: {r['error']}" for r in self.failed[:10]]
        g = self.grid
        compared = sum(len(c.rows) for c in self.compared)
        lines.append(f"{g.finished} cells coded now, {g.skipped} reused from an earlier run, {g.failed} failed"
                     + (f" under {self.config.coding.quantizer}; {compared} cells under the compared quantizers "
                        "(their QP probes besides)" if self.compared else "") + f"; {self.seconds:.0f} s")
        return lines


def _vs_key(summary: dict) -> str:
    return "bd_rate_vs_paper" if "bd_rate_vs_paper" in summary else "bd_rate_vs_main_quantizer"


def search_orders(config: SearchConfig, *, command: str | None = None, source: str | None = None,
                  experiment: str = "search_order") -> SearchResult:
    """Run the order search of ``config`` (see the module docstring) and return what it measured.

    Usable from Python: ``search_orders(SearchConfig(data=DataConfig(limit=1), run=RunConfig(out="runs/x")))``.
    """
    config.check()
    t_start = time.perf_counter()
    run = config.run
    with study_session(config, experiment, command=command, source=source) as folder:
        samples = config.data.splits()
        setup = prepare(config.data, config.coding, run.progress, splits=samples)
        orders = _collect_orders(config, setup, folder)
        compare_names = _compare_orders(config, orders)
        placements = _pipeline_orders(config, setup, folder)
        from eval.pipeline.features import prepare_references

        references = prepare_references(setup.adapter, setup.test, progress=run.progress)
        with folder.results_store() as store:
            grid = _code_main_grid(config, setup, folder, orders, references, store)
            compared = _code_compared(config, setup, folder, {**orders.arrays(), **placements}, references, grid.rows,
                                      compare_names, store)
        result = _report(config, setup, folder, orders, grid, compared)
        figure = _detections_figure(folder, setup, samples[1], references, grid.rows, compare_names)
        if figure is not None:
            result.files["figure detections"] = figure
    result.seconds = time.perf_counter() - t_start
    return result


def _collect_orders(config: SearchConfig, setup, folder):
    """Learned orders, ``order_file`` orders and the model's bundled hand-made orders, each saved in ``OUT/orders``."""
    from eval.pipeline.orders import learn_orders, load_order_files

    orders = learn_orders(config.orders, setup.calib, folder.orders, provenance(setup), progress=config.run.progress,
                          params=_importance_params(config, setup, config.orders))
    orders.update(load_order_files(config.order_file, setup.calib.n_channels, folder.orders, taken=list(orders)))
    if config.bundled_orders:  # hand-made orders shipped for this model and layer (e.g. 'subjective')
        bundled = [f"{name}={path}" for name, path in setup.adapter.bundled_orders().items()]
        clash = [name for name in setup.adapter.bundled_orders() if name in orders]
        if clash:
            raise ConfigError("order_file", f"{', '.join(clash)}: the name of an order this package ships for "
                              f"{setup.adapter.name}; name your file otherwise, or leave the shipped ones out (bundled_orders)")
        orders.update(load_order_files(bundled, setup.calib.n_channels, folder.orders, taken=list(orders)))
    return orders


def _importance_params(config: SearchConfig, setup, names) -> dict:
    """``{name: {"importance": PATH, "codec": SPEC}}`` for the importance-aware orderers among ``names``: the model's
    channel importance measured on the calibration split (cached beside the features), and the study's codec,
    whose prediction structure decides each position's QP."""
    from eval.pipeline.importance import importance_for_setup, needs_importance

    wanted = [n for n in names if needs_importance(n)]
    if not wanted:
        return {}
    _, path = importance_for_setup(setup, config.data.cache_dir, progress=config.run.progress)
    return {n: {"importance": str(path), "codec": setup.codec_spec} for n in wanted}


def _compare_orders(config: SearchConfig, orders) -> list[str]:
    """The orders coded under the compared quantizers (checked against the study's orders before any coding)."""
    wanted = config.compare_orders if config.compare_orders is not None else [o for o in ["tsp-correlation"] if o in orders]
    unknown = [o for o in wanted if o != "identity" and o not in orders]
    if unknown:  # refused even when no compared run would code them: a misspelt name is still a mistake
        raise ConfigError("compare_orders", f"{', '.join(unknown)}: not among this study's orders ({', '.join(orders)}); "
                          "add them to orders or order_file")
    return list(wanted)


def _code_main_grid(config: SearchConfig, setup, folder, orders, references, store):
    from eval.pipeline.cell import make_jobs
    from eval.pipeline.runner import run_grid

    run = config.run
    jobs = make_jobs(setup.test, references, orders.arrays(), setup.quantizer_dict, setup.codec_spec, config.coding.qps,
                     setup.model_spec, packing=config.coding.packing,
                     bitstream_dir=run.bitstream_dir(folder))
    print(f"coding {len(setup.test)} test images x {len(orders)} orders x {len(config.coding.qps)} QPs = {len(jobs)} cells "
          f"with {setup.codec_spec} ({run.workers} worker{'s' if run.workers != 1 else ''})", file=sys.stderr)
    return run_grid(jobs, store, **run.grid_kwargs())


def _pipeline_orders(config: SearchConfig, setup, folder) -> dict:
    """``pipeline_orders`` learned on the calibration split (saved with the others; coded only under the pipelines)."""
    from eval.pipeline.orders import learn_orders

    if not config.pipeline_orders or config.compare_pipelines == ["none"]:
        return {}
    learned = learn_orders(config.pipeline_orders, setup.calib, folder.orders, provenance(setup), progress=config.run.progress,
                           params=_importance_params(config, setup, config.pipeline_orders))
    return {name: order for name, order in learned.arrays().items() if name != "identity"}


def _code_compared(config: SearchConfig, setup, folder, orders, references, rows, names, store):
    from eval.pipeline.quantizer_runs import compare_runs

    run = config.run
    return compare_runs(
        config.run_specs(names, setup.codec_spec), setup, orders, references, rows, store, qps=config.coding.qps,
        match_qps=config.match_qps, packing=config.coding.packing,
        bitstream_dir=run.bitstream_dir(folder), method=config.coding.bd_method,
        replicates=config.bootstrap, block=config.bootstrap_block, run_kwargs=run.grid_kwargs())


def _report(config: SearchConfig, setup, folder, orders, grid, compared) -> SearchResult:
    """Reports, summary.json, results.csv, mpeg_per_qp.csv and the figures of a finished search."""
    from eval.analysis.report import Report
    from eval.experiments.search_summary import search_summary

    report = Report.from_rows(grid.rows, setup.adapter.task, setup.test.ids, anchor="identity",
                              method=config.coding.bd_method, replicates=config.bootstrap, block=config.bootstrap_block)
    for names in orders.same_permutations():  # both are reported; a reader should know why their rows agree
        report.warnings.append(f"orders {', '.join(names)} are the same permutation: they share their coded cells "
                               "and have the same BD-rates")
    rows = grid.rows + [r for c in compared for r in c.rows]
    folder.write_results(rows)
    extra, runs_report, anchor_report = search_summary(config, setup, folder, orders, report, compared, rows)
    if runs_report is not None:
        folder.write_runs_plot(runs_report, title=f"against {extra[_vs_key(extra) + '_anchor']}")
    summary = folder.write_report(
        report, title=f"{setup.adapter.name} {setup.adapter.layer}, {setup.codec_spec}, {len(setup.test)} test images",
        extra_summary=extra)
    folder.write_mpeg_csv(report)  # one row per order x QP, CompressAI-Vision's CTTC columns
    figures = folder.write_figures(report, setup.test[0], setup.test.ids[0], orders.arrays(), orders.distances)
    files = {"results": folder.results_csv, "summary": folder.summary_json, "plot": folder.rd_plot,
             "per-image BD-rates": folder.bd_per_image_csv, "mpeg": folder.mpeg_csv, "config": folder.config_toml,
             **{f"figure {name}": path for name, path in figures.items()}}
    return SearchResult(config, report, compared, runs_report, anchor_report, rows, grid.errors, summary, grid, files)


def _detections_figure(folder, setup, test_samples, references, rows, learned_names):
    """``figures/detections.png`` for a detection task: the test image with the most (pseudo) ground-truth boxes,
    its uncoded detections and those after coding at the lowest and highest QP, under identity and the learned order."""
    from eval.pipeline.cache import load_arrays
    from eval.plots.detections import detection_panels

    if getattr(setup.adapter.task, "name", "") != "map50" or not rows:
        return None
    learned = next((o for o in learned_names if o != "identity"), None)
    ok = [r for r in rows if r["order"] in ("identity", learned)]
    by = {(r["image_id"], r["order"], int(r["qp"])): r["task_stats"] for r in ok}
    qps = sorted({int(r["qp"]) for r in ok})
    image_id = max(setup.test.ids, key=lambda i: (len(by.get((i, "identity", qps[0]), {}).get("ground_truth", {}).get("boxes", [])),
                                                  -setup.test.ids.index(i)))
    sample = next(s for s in test_samples if s.id == image_id)
    panels = {"uncoded": load_arrays(references[image_id])}
    for order in ("identity", learned):
        for qp in (qps[0], qps[-1]):
            stats = by.get((image_id, order, qp)) if order else None
            if stats is not None:
                panels[f"{order}, QP {qp}"] = stats["detections"]
    gt = by.get((image_id, "identity", qps[0]), {}).get("ground_truth")
    return detection_panels(sample.load(), panels, folder.figures_dir / "detections.png", ground_truth=gt,
                            title=f"{image_id}: person detections (dashed: uncoded, score >= 0.5), coded under the "
                                  f"paper's quantizer at QP {qps[0]} and {qps[-1]}")
