"""Learn fixed channel orders on a calibration split and measure what they save on a test split.

    python -m studies.search_order                       # embedded default: MobileNetV2 + sample photos
    python -m studies.search_order --order-file mine.json --order-file hand=order.txt
    python -m studies.search_order --images DIR --out runs/mine --qps 22 27 32 37

For every order (identity, random, learned ones, and each ``--order-file``) the test images
are coded at each QP through the shared core (:mod:`eval.core`); the study prints BD-rate
against the identity order for feature PSNR and for the task metric, with bpp per QP, and
writes ``results.csv``, ``summary.json``, ``rd_curves.png`` and the learned orders
(``orders/NAME.json``) into ``--out``. Re-running with the same ``--out`` skips every
finished cell, so an interrupted study resumes where it stopped.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from eval import cli

DEFAULT_ORDERS = ["identity", "random", "tsp-mse", "tsp-correlation"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m studies.search_order",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
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
    cli.add_run_arguments(parser, default_out="results/search_order")
    return parser


def main(argv=None) -> int:
    return cli.run_study(build_parser(), run, argv)


def run(args) -> int:
    from eval.experiment import make_jobs, prepare_references, write_figures, write_report
    from eval.runner import run_grid
    from eval.store import ResultStore

    t_start = time.perf_counter()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    setup = cli.prepare(args)  # model, data split, features, quantizer, codec check
    orders = cli.learn_orders(args.orders, setup, out / "orders", progress=not args.quiet)
    orders.update(cli.load_order_files(args.order_file, setup, out / "orders"))

    references = prepare_references(setup.adapter, setup.test, progress=not args.quiet)
    jobs = make_jobs(
        setup.test, references, {name: p.order for name, p in orders.items()}, setup.quantizer_dict,
        setup.codec_spec, args.qps, setup.model_spec, packing=args.packing,
        bitstream_dir=str(out / "bitstreams") if args.keep_bitstreams else None,
    )
    print(
        f"coding {len(setup.test)} test images x {len(orders)} orders x {len(args.qps)} QPs = {len(jobs)} cells "
        f"with {setup.codec_spec} ({args.workers} worker{'s' if args.workers != 1 else ''})",
        file=sys.stderr,
    )
    with ResultStore(out / "results.sqlite") as store:
        summary = run_grid(jobs, store, workers=args.workers, scheduler=args.scheduler, max_attempts=args.max_attempts, progress=not args.quiet)
        rows = [r for r in store.rows() if r["key"] in {j.key for j in jobs}]
        failed = [r for r in store.rows(status="error") if r["key"] in {j.key for j in jobs}]
    table, _ = write_report(
        out, rows, setup.adapter.task, setup.test.ids, anchor="identity", method=args.bd_method,
        title=f"{setup.adapter.name} {setup.adapter.layer}, {setup.codec_spec}, {len(setup.test)} test images",
        extra_summary={
            "model": setup.model_spec, "codec": setup.codec_spec, "quantizer": setup.quantizer_dict,
            "packing": args.packing, "qps": list(args.qps), "calibration": setup.calib.ids, "test": setup.test.ids,
            "orders": {name: str(out / "orders" / f"{name}.json") for name in orders},
        },
    )
    figures = write_figures(out, setup.test, orders)
    print()
    print(table)
    print()
    cli.report_failures(failed)
    print(
        f"{summary.finished} cells coded now, {summary.skipped} reused from an earlier run, {summary.failed} failed; "
        f"{time.perf_counter() - t_start:.0f} s",
        file=sys.stderr,
    )
    print(f"results: {out / 'results.csv'}\nsummary: {out / 'summary.json'}\nplot:    {out / 'rd_curves.png'}")
    for path in figures.values():
        print(f"figure:  {path}")
    return 0 if not failed else 3


if __name__ == "__main__":
    sys.exit(main())
