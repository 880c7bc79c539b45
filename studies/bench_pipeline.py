"""Benchmark where a cell's time goes: the codec (encode, decode) against everything else.

    python -m studies.bench_pipeline                     # default split, identity + tsp-correlation, inline
    python -m studies.bench_pipeline --limit 1 --qps 27 37 --out results/bench_pipeline

Features, orders and references are prepared (and cached) first; then the grid is coded
inline, one cell at a time, into a fresh results store, so every cell's time is its own. Each
row carries ``encode_seconds``, ``decode_seconds``, ``tail_seconds`` (the model tail on the
decoded features) and ``cell_seconds`` (the whole cell); the rest of a cell (loading
features, quantizing, packing, unpacking, metrics, writing the bitstream) is ``other``. The
study prints each stage's share of the same run's total cell time and the non-codec share
(tail + other), and writes ``bench_pipeline.json`` / ``bench_pipeline.csv``. Shares are only
meaningful on an otherwise idle machine: the load average before and after is printed too.
"""

from __future__ import annotations

import os
import shutil
import sys
import time

from studies import cli

STAGES = ("encode", "decode", "tail", "other")


def build_parser():
    parser = cli.study_parser("studies.bench_pipeline", __doc__)
    cli.add_data_arguments(parser)
    cli.add_coding_arguments(parser)
    parser.add_argument("--orders", nargs="+", default=["identity", "tsp-correlation"], metavar="NAME",
                        help="orders to code (reorder.make_orderer names; learned on the calibration split)")
    cli.add_run_arguments(parser, default_out="results/bench_pipeline")
    return parser


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


def run(args) -> int:
    from eval.pipeline.cell import make_jobs
    from eval.pipeline.features import prepare_references
    from eval.pipeline.orders import learn_orders
    from eval.pipeline.runner import run_grid
    from eval.study_folder import StudyFolder

    folder = StudyFolder(args.out)
    progress = not args.quiet
    setup = cli.prepare(args)
    orders = learn_orders(args.orders, setup.calib, folder.orders, cli.provenance(setup), progress=progress)
    references = prepare_references(setup.adapter, setup.test, progress=progress)
    jobs = make_jobs(setup.test, references, orders.arrays(), setup.quantizer_dict, setup.codec_spec, args.qps,
                     setup.model_spec, packing=args.packing)
    run_dir = StudyFolder(folder.root / "timed_run")
    shutil.rmtree(run_dir.root, ignore_errors=True)  # every cell is coded again: this is a timing
    run_dir = StudyFolder(run_dir.root)
    load_before = os.getloadavg()[0]
    t0 = time.perf_counter()
    with run_dir.results_store() as store:
        run_grid(jobs, store, workers=1, executor="inline", max_attempts=1, progress=progress, desc="bench_pipeline")
        rows = store.rows(status=None)
    wall = time.perf_counter() - t0
    split = stage_split(rows)
    split.update(wall=wall, load_before=round(load_before, 2), load_after=round(os.getloadavg()[0], 2),
                 grid={"test_images": setup.test.ids, "orders": list(orders), "qps": list(args.qps),
                       "codec": setup.codec_spec, "model": setup.model_spec})
    print(f"\n{split['cells']} cells inline, {split['total']:.1f} s of cell time ({wall:.1f} s wall), "
          f"load {split['load_before']} -> {split['load_after']}")
    print(f"{'stage':<8}{'seconds':>10}{'share':>8}")
    for stage in STAGES:
        print(f"{stage:<8}{split['seconds'][stage]:>10.2f}{split['share'][stage]:>8.1%}")
    print(f"non-codec share (tail + other): {split['non_codec_share']:.1%}")
    folder.write_json("bench_pipeline.json", split)
    folder.write_csv("bench_pipeline.csv", [{"stage": s, "seconds": split["seconds"][s], "share": split["share"][s]}
                                            for s in STAGES])
    print(f"results: {folder.root / 'bench_pipeline.json'}  {folder.root / 'bench_pipeline.csv'}")
    return 0


def main(argv=None) -> int:
    return cli.run_study(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
