"""Learn fixed channel orders on a calibration split and measure what they save on a test split.

    python -m studies.search_order                       # embedded default: MobileNetV2 + sample photos
    python -m studies.search_order --order-file mine.json --order-file hand=order.txt
    python -m studies.search_order --images DIR --out runs/mine --qps 22 27 32 37

For every order (identity, random, learned ones, the hand-made ones the package ships for the
model (``subjective``), and each ``--order-file``) the test images
are coded at each QP through the shared core (:mod:`eval.pipeline.cell`); the study prints BD-rate
against the identity order for feature PSNR and for the task metric, with bpp per QP, and
writes ``results.csv``, ``summary.json``, ``rd_curves.png`` and the learned orders
(``orders/NAME.json``) into ``--out``. Re-running with the same ``--out`` skips every
finished cell, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import argparse
import sys
import time

from studies import cli

# tsp-mse (about 1.3 points behind tsp-correlation on feature PSNR) is left to --orders so that the default
# study, which also codes the recommended quantizer at matched QPs, stays within 10 minutes on 2 cores
DEFAULT_ORDERS = ["identity", "random", "tsp-correlation"]


def build_parser() -> argparse.ArgumentParser:
    parser = cli.study_parser("studies.search_order", __doc__)
    cli.add_data_arguments(parser)
    cli.add_coding_arguments(parser)
    parser.add_argument(
        "--orders", nargs="+", default=DEFAULT_ORDERS, metavar="NAME",
        help="orders to learn on the calibration split (reorder.make_orderer names, e.g. tsp-ssim, "
        "spectral-correlation, 'tsp-correlation:normalization=zscore'); identity is always added as the anchor",
    )
    parser.add_argument(
        "--order-file", action="append", default=[], metavar="[NAME=]PATH",
        help="a hand-made ('subjective') or saved order to compare: JSON written by this package, a JSON list, "
        "or a text file of channel indices; repeatable",
    )
    parser.add_argument(
        "--bundled-orders", action=argparse.BooleanOptionalAction, default=True,
        help="also compare the hand-made orders the package ships for this model and layer "
        "(MobileNetV2: 'subjective', eval/models/orders/)",
    )
    parser.add_argument(
        "--compare-quantizers", nargs="+", default=["recommended"], metavar="[NAME=]SPEC",
        help="further quantizers, each fitted on the calibration split and coded with identity and --compare-orders "
        "at QPs matched to the main quantizer's quality range; 'recommended' = the package's recommended quantizer "
        "(eval.pipeline.quantizer_runs.RECOMMENDED_QUANTIZER); 'none' = only --quantizer. summary.json then holds bd_rate_vs_paper: every run against "
        "the paper's pipeline (global log 8-bit, identity)",
    )
    parser.add_argument(
        "--compare-orders", nargs="+", default=None, metavar="NAME",
        help="orders (of --orders / --order-file / bundled ones) coded under each --compare-quantizers item besides "
        "identity (default: tsp-correlation when the study has it)",
    )
    parser.add_argument(
        "--match-qps", action=argparse.BooleanOptionalAction, default=True,
        help="pick each compared quantizer's QPs so that its identity curve spans the main identity curve's range of "
        "feature PSNR and task score (recorded in summary.json qp_match); --no-match-qps uses --qps",
    )
    parser.add_argument(
        "--bootstrap", type=int, default=1000, metavar="N",
        help="replicates of the paired bootstrap (test images, and windows inside them where the task has them) "
        "behind every BD-rate's 95%% interval; 0 = no intervals",
    )
    cli.add_run_arguments(parser, default_out="results/search_order")
    return parser


def main(argv=None) -> int:
    return cli.run_study(build_parser(), run, argv)


def run(args) -> int:
    from eval.analysis.report import Report
    from eval.pipeline.cell import make_jobs
    from eval.pipeline.features import prepare_references
    from eval.pipeline.orders import learn_orders, load_order_files
    from eval.pipeline.quantizer_runs import PAPER_LABEL, run_label, runs_report
    from eval.pipeline.runner import run_grid
    from eval.study_folder import StudyFolder

    t_start = time.perf_counter()
    folder = StudyFolder(args.out)
    progress = not args.quiet
    setup = cli.prepare(args)  # model, data split, features, quantizer, codec check
    orders = learn_orders(args.orders, setup.calib, folder.orders, cli.provenance(setup), progress=progress)
    orders.update(load_order_files(args.order_file, setup.calib.n_channels, folder.orders))
    if args.bundled_orders:  # hand-made orders shipped for this model and layer (e.g. 'subjective')
        bundled = [f"{name}={path}" for name, path in setup.adapter.bundled_orders().items() if name not in orders]
        orders.update(load_order_files(bundled, setup.calib.n_channels, folder.orders))

    references = prepare_references(setup.adapter, setup.test, progress=progress)
    jobs = make_jobs(
        setup.test, references, orders.arrays(), setup.quantizer_dict, setup.codec_spec, args.qps, setup.model_spec,
        packing=args.packing, bitstream_dir=str(folder.bitstreams_dir) if args.keep_bitstreams else None,
    )
    print(
        f"coding {len(setup.test)} test images x {len(orders)} orders x {len(args.qps)} QPs = {len(jobs)} cells "
        f"with {setup.codec_spec} ({args.workers} worker{'s' if args.workers != 1 else ''})",
        file=sys.stderr,
    )
    keys = {j.key for j in jobs}
    with folder.results_store() as store:
        summary = run_grid(jobs, store, workers=args.workers, scheduler=args.scheduler, max_attempts=args.max_attempts, progress=progress)
        rows = [r for r in store.rows() if r["key"] in keys]
        failed = [r for r in store.rows(status="error") if r["key"] in keys]
    report = Report.from_rows(rows, setup.adapter.task, setup.test.ids, anchor="identity", method=args.bd_method,
                              replicates=args.bootstrap)
    compared = compare_quantizers(args, setup, folder, orders, references, rows, progress)
    all_rows = rows + [r for c in compared for r in c["rows"]]
    folder.write_results(all_rows)
    from eval.environment import environment

    extra = {}
    if compared:
        runs = [main_run(args, setup, orders)] + [c["run"] for c in compared]
        vs = runs_report(all_rows, runs, setup.adapter.task, setup.test.ids, anchor=run_label(runs[0].label, "identity"),
                         method=args.bd_method, replicates=args.bootstrap)
        key = "bd_rate_vs_paper" if runs[0].label == PAPER_LABEL else "bd_rate_vs_main_quantizer"
        extra = {
            "bd_rate": {**report.bd_rates(), **{k: v for c in compared for k, v in c["report"].bd_rates().items()}},
            "overlap": {**report.overlaps(), **{k: v for c in compared for k, v in c["report"].overlaps().items()}},
            key: {name: {**v, "overlap": vs.overlaps()[name]} for name, v in vs.bd_rates().items()},
            f"{key}_anchor": run_label(runs[0].label, "identity"),
            "quantizers": {r.label: {"spec": r.spec, "quantizer": r.quantizer, "qps": r.qps, "orders": r.orders} for r in runs},
            "qp_match": {c["run"].label: c["run"].match.as_dict() for c in compared if c["run"].match is not None},
            "warnings": report.warnings + [w for c in compared for w in c["report"].warnings] + vs.warnings,
        }
        folder.write_runs_plot(vs, title=f"against {run_label(runs[0].label, 'identity')}")
    folder.write_report(
        report, title=f"{setup.adapter.name} {setup.adapter.layer}, {setup.codec_spec}, {len(setup.test)} test images",
        extra_summary={**extra,
            "model": setup.model_spec, "codec": setup.codec_spec, "quantizer": setup.quantizer_dict,
            "packing": args.packing, "qps": list(args.qps), "calibration": setup.calib.ids, "test": setup.test.ids,
            "orders": {name: str(folder.orders.order_path(name)) for name in orders},
            "environment": {**environment(setup.codec_spec, args.workers),
                            # cached features keep the CPU they were computed on (figures follow it)
                            "features_computed_on": {"calibration": setup.calib.computed_on(),
                                                     "test": setup.test.computed_on()}},
        },
    )
    folder.write_mpeg_csv(report)  # mpeg_per_qp.csv: one row per order x QP, CompressAI-Vision's CTTC columns
    figures = folder.write_figures(report, setup.test[0], setup.test.ids[0], orders.arrays(), orders.distances)
    print()
    print(report.format())
    print()
    for c in compared:
        print(f"under quantizer {c['run'].label} ({c['run'].spec}), QPs {', '.join(map(str, c['run'].qps))}: "
              f"against {c['run'].label}/identity")
        print(c["report"].format())
        print()
    if compared:
        print(f"every run against {extra[key + '_anchor']} ({key}; overlap of feature PSNR / task range):")
        print(vs.format())
        print()
    for line in extra.get("warnings", report.warnings):  # also in summary.json "warnings"
        print(f"warning: {line}", file=sys.stderr)
    cli.report_failures(failed)
    print(
        f"{summary.finished} cells coded now, {summary.skipped} reused from an earlier run, {summary.failed} failed"
        + (f" under {args.quantizer}; {sum(len(c['rows']) for c in compared)} cells under --compare-quantizers "
           "(their QP probes besides)" if compared else "")
        + f"; {time.perf_counter() - t_start:.0f} s",
        file=sys.stderr,
    )
    print(f"results: {folder.results_csv}\nsummary: {folder.summary_json}\nplot:    {folder.rd_plot}")
    print(f"per-image BD-rates: {folder.bd_per_image_csv}")
    print(f"mpeg:    {folder.mpeg_csv}\nconfig:  {folder.config_toml}")
    for path in figures.values():
        print(f"figure:  {path}")
    return 0 if not failed else 3


def main_run(args, setup, orders):
    """The study's main quantizer as a run (``paper`` when it is the paper's global log 8-bit curve)."""
    from pathlib import Path

    from eval.pipeline.quantizer_runs import PAPER_LABEL, QuantizerRun, is_paper_pipeline

    spec = str(args.quantizer)
    label = PAPER_LABEL if is_paper_pipeline(setup.quantizer_dict) else (Path(spec).stem if spec.endswith(".json") else spec)
    return QuantizerRun(label.replace("/", "_"), spec, setup.quantizer_dict, list(args.qps), orders=list(orders))


def compare_quantizers(args, setup, folder, orders, references, anchor_rows, progress) -> list[dict]:
    """Code identity and ``--compare-orders`` under each ``--compare-quantizers`` item at matched QPs.

    Returns ``[{"run": QuantizerRun, "rows": [...], "report": Report against the run's own identity}]``.
    """
    from codec import make_codec
    from eval.analysis.report import Report
    from eval.pipeline.cell import make_jobs
    from eval.pipeline.quantizer_runs import (QuantizerRun, grid_probe, match_quantizer_qps, parse_quantizer_specs,
                                              run_label)
    from eval.pipeline.runner import run_grid
    from eval.pipeline.setup import fit_quantizer

    specs = parse_quantizer_specs(args.compare_quantizers)
    wanted = args.compare_orders if args.compare_orders is not None else [o for o in ["tsp-correlation"] if o in orders]
    names = ["identity"] + [o for o in wanted if o != "identity"]
    unknown = [o for o in names if o not in orders]
    if specs and unknown:
        raise ValueError(f"--compare-orders {', '.join(unknown)}: not among this study's orders "
                         f"({', '.join(orders)}); add them to --orders or --order-file")
    task, ids = setup.adapter.task, setup.test.ids
    run_kwargs = dict(workers=args.workers, scheduler=args.scheduler, max_attempts=args.max_attempts, progress=progress)
    common = dict(packing=args.packing, bitstream_dir=str(folder.bitstreams_dir) if args.keep_bitstreams else None)
    identity = [r for r in anchor_rows if r["order"] == "identity"]
    arrays = orders.arrays()
    out = []
    for label, spec in specs:
        qdict = fit_quantizer(spec, setup.calib).to_dict()
        match = None
        with folder.results_store() as store:
            if args.match_qps:
                print(f"matching QPs of quantizer {label} to the main quantizer's identity quality range", file=sys.stderr)
                probe = grid_probe(setup.test, references, arrays["identity"], qdict, setup.codec_spec, setup.model_spec,
                                   store, task, run_kwargs=run_kwargs, **common)
                match = match_quantizer_qps(identity, task, ids, probe, args.qps,
                                            qp_range=make_codec(setup.codec_spec).qp_range)
            qps = match.qps if match is not None else list(args.qps)
            jobs = make_jobs(setup.test, references, {n: arrays[n] for n in names}, qdict, setup.codec_spec, qps,
                             setup.model_spec, **common)
            run_grid(jobs, store, desc=f"coding under {label}", **run_kwargs)
            keys = {j.key for j in jobs}
            rows = [r for r in store.rows() if r["key"] in keys]
        run = QuantizerRun(label, spec, qdict, qps, match, names)
        relabelled = [{**r, "order": run_label(label, r["order"])} for r in rows]
        report = Report.from_rows(relabelled, task, ids, anchor=run_label(label, "identity"), method=args.bd_method,
                                  replicates=args.bootstrap)
        out.append({"run": run, "rows": rows, "report": report})
    return out


if __name__ == "__main__":
    sys.exit(main())
