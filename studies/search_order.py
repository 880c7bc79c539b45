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

DEFAULT_ORDERS = ["identity", "random", "tsp-mse", "tsp-correlation"]


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
        "--bootstrap", type=int, default=1000, metavar="N",
        help="replicates of the paired bootstrap (test images, and windows inside them where the task has them) "
        "behind every BD-rate's 95%% interval; 0 = no intervals",
    )
    cli.add_run_arguments(parser, default_out="results/search_order")
    return parser


def main(argv=None) -> int:
    return cli.run_study(build_parser(), run, argv)


def run(args) -> int:
    from eval.analysis.curves import Report
    from eval.pipeline.cell import make_jobs
    from eval.pipeline.features import prepare_references
    from eval.pipeline.orders import learn_orders, load_order_files
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
    folder.write_results(rows)
    from eval.environment import environment

    report = Report.from_rows(rows, setup.adapter.task, setup.test.ids, anchor="identity", method=args.bd_method,
                              replicates=args.bootstrap)
    folder.write_report(
        report, title=f"{setup.adapter.name} {setup.adapter.layer}, {setup.codec_spec}, {len(setup.test)} test images",
        extra_summary={
            "model": setup.model_spec, "codec": setup.codec_spec, "quantizer": setup.quantizer_dict,
            "packing": args.packing, "qps": list(args.qps), "calibration": setup.calib.ids, "test": setup.test.ids,
            "orders": {name: str(folder.orders.order_path(name)) for name in orders},
            "environment": environment(setup.codec_spec, args.workers),
        },
    )
    folder.write_mpeg_csv(report)  # mpeg_per_qp.csv: one row per order x QP, CompressAI-Vision's CTTC columns
    figures = folder.write_figures(report, setup.test[0], setup.test.ids[0], orders.arrays(), orders.distances)
    print()
    print(report.format())
    print()
    for line in report.warnings:  # also in summary.json "warnings"
        print(f"warning: {line}", file=sys.stderr)
    cli.report_failures(failed)
    print(
        f"{summary.finished} cells coded now, {summary.skipped} reused from an earlier run, {summary.failed} failed; "
        f"{time.perf_counter() - t_start:.0f} s",
        file=sys.stderr,
    )
    print(f"results: {folder.results_csv}\nsummary: {folder.summary_json}\nplot:    {folder.rd_plot}")
    print(f"per-image BD-rates: {folder.bd_per_image_csv}")
    print(f"mpeg:    {folder.mpeg_csv}\nconfig:  {folder.config_toml}")
    for path in figures.values():
        print(f"figure:  {path}")
    return 0 if not failed else 3


if __name__ == "__main__":
    sys.exit(main())
