"""Benchmark codecs, presets and packings on real features: bits, quality, CPU time, ordering gain.

    python -m studies.bench_codec                                   # embedded default, default codec list
    python -m studies.bench_codec --limit 2 --codecs vvenc:preset=faster vvenc:preset=medium x265 svtav1
    python -m studies.bench_codec --codecs vvenc:preset=faster@tiled 'x265:preset=slow' --reference x265:preset=slow

Each configuration ``SPEC[@PACKING]`` (codec registry spec, packing ``temporal`` unless
given) codes the test images with the identity order and the orders learned on the
calibration split (``--orders``, default ``tsp-correlation``) at its QP set (``--qps``;
AV1 codecs, whose quantizer index is on another scale, use ``--qps-av1``). All cells go
through the shared core into ``OUT/results.sqlite``, so a re-run codes only what is missing.

The table gives per configuration: encoder/decoder CPU seconds per image and QP point (the
codec processes' user+system time, robust on a shared machine; wall time too), the BD-rate
of its identity-order curve against ``--reference`` (default ``vvenc:preset=medium``, or the
slowest finished configuration), and the ordering gain (learned order vs identity) it
measures, with its distance to the reference's gain: does a fast preset rank orders like a
slow one? VTM is added to the default list when FCM_VTM_ENCODER, FCM_VTM_DECODER and
FCM_VTM_CFG are set. A codec that is missing or fails is reported as ``failed: <reason>``
and the others go on (exit status 0 while at least one configuration finished).

Outputs in ``--out``: ``bench_codec.csv`` (one row per configuration), ``bench_codec.json``
(table, notes, curves, run counts), ``results.csv`` (one row per coded cell),
``bench_codec.png`` (BD-rate and ordering gain against CPU seconds), ``rd_codecs.png``
(identity-order RD curves of all configurations), ``ordering_gain.png`` (gain bars).
"""

from __future__ import annotations

import argparse
import sys
import time

from studies import cli



def build_parser() -> argparse.ArgumentParser:
    from eval.analysis.codec_bench import DEFAULT_AV1_QPS

    parser = cli.study_parser("studies.bench_codec", __doc__)
    cli.add_data_arguments(parser)
    g = parser.add_argument_group("codecs")
    g.add_argument("--codecs", nargs="+", default=None, metavar="SPEC[@PACKING]",
                   help="configurations to compare (default: vvenc faster/fast/medium, vvenc faster@tiled, x265, svtav1, aom; "
                   "plus vtm when FCM_VTM_ENCODER/FCM_VTM_DECODER/FCM_VTM_CFG are set)")
    g.add_argument("--packing", default="temporal", help="packing of configurations written without @PACKING")
    g.add_argument("--qps", nargs="+", type=int, default=cli.DEFAULT_QPS, help="QPs of VVC/HEVC codecs (0..63 / 0..51 scale)")
    g.add_argument("--qps-av1", nargs="+", type=int, default=DEFAULT_AV1_QPS,
                   help="quantizer indices (0..63) of AV1 codecs (svtav1, aom): another scale, chosen to span the same quality")
    g.add_argument("--reference", default=None, metavar="SPEC[@PACKING]",
                   help="configuration the others' BD-rates are measured against (default vvenc:preset=medium when configured, "
                   "else the slowest finished one)")
    g.add_argument("--quantizer", default="log", help="quantizer spec fitted on calibration features, or a saved JSON file")
    g.add_argument("--orders", nargs="+", default=["tsp-correlation"], metavar="NAME",
                   help="orders learned on the calibration split whose gain over identity each codec measures")
    g.add_argument("--bd-method", default="pchip", choices=["pchip", "cubic"], help="BD-rate interpolation")
    cli.add_run_arguments(parser, default_out="results/bench_codec")
    parser.set_defaults(keep_bitstreams=False)
    return parser


def main(argv=None) -> int:
    return cli.run_study(build_parser(), run, argv)


def run(args) -> int:
    from eval.analysis import codec_bench as bm
    from eval.pipeline.cell import make_jobs
    from eval.pipeline.features import prepare_references
    from eval.pipeline.orders import learn_orders
    from eval.pipeline.runner import run_grid
    from eval.pipeline.setup import prepare_setup
    from eval.plots import bd_cpu_scatter, bd_rate_bars, plot_rd_curves
    from eval.study_folder import StudyFolder

    t_start = time.perf_counter()
    progress = not args.quiet
    configs = bm.parse_configs(args.codecs or bm.default_configs(), default_packing=args.packing)
    reference = None
    if args.reference:  # a typo fails now, not after coding
        ref = bm.parse_config(args.reference, args.packing)
        reference = next((c.label for c in configs if c.key == ref.key), None)
        if reference is None:
            raise ValueError(f"--reference {args.reference!r} is not one of --codecs ({', '.join(c.label for c in configs)}); "
                             "add it there or name one of them")
    folder = StudyFolder(args.out)
    out = folder.root

    calib, test = cli.split_samples(args)
    usable = next((c.codec for c in configs if not c.error), "vvenc")
    setup = prepare_setup(cli.model_spec(args), calib, test, quantizer=args.quantizer,
                          codec=usable, cache_dir=args.cache_dir, progress=progress, check_codec=False)
    orders = learn_orders(["identity", *args.orders], setup.calib, folder.orders, cli.provenance(setup), progress=progress)
    order_arrays = orders.arrays()
    references = prepare_references(setup.adapter, setup.test, progress=progress)

    qps = {c.label: bm.qps_for(c, args.qps, args.qps_av1) for c in configs}
    jobs = []
    for cfg in configs:
        jobs += make_jobs(setup.test, references, order_arrays, setup.quantizer_dict, cfg.codec, qps[cfg.label],
                          setup.model_spec, packing=cfg.packing,
                          bitstream_dir=str(folder.bitstreams_dir) if args.keep_bitstreams else None)
    for cfg in configs:
        if cfg.error:
            print(f"warning: {cfg.label}: {cfg.error}; its cells will fail", file=sys.stderr)
    print(f"coding {len(setup.test)} test images x {len(orders)} orders x {len(configs)} codec configurations "
          f"= {len(jobs)} cells ({args.workers} worker{'s' if args.workers != 1 else ''})", file=sys.stderr)
    keys = {j.key for j in jobs}
    with folder.results_store() as store:
        summary = run_grid(jobs, store, workers=args.workers, scheduler=args.scheduler,
                           max_attempts=args.max_attempts, progress=progress, desc="bench_codec")
        rows = [r for r in store.rows(status=None) if r["key"] in keys]

    task = setup.adapter.task
    table, notes, reference = bm.codec_benchmark_table(
        rows, configs, task=task, images=setup.test.ids, qps=qps, orders=list(orders), reference=reference,
        method=args.bd_method,
    )
    main_order = next((o for o in args.orders if o != "identity"), "identity")
    task_name = getattr(task, "name", "task")
    text = bm.format_benchmark_table(table, reference, order=main_order, task_name=task_name)
    agreement = bm.agreement_lines(table, reference, order=main_order)

    folder.write_results(rows)
    folder.write_csv("bench_codec.csv", bm.flat_table(table))
    run_info = {"coded_now": summary.finished, "reused": summary.skipped, "failed": summary.failed,
                "gave_up": summary.gave_up, "cells": summary.total, "seconds": round(time.perf_counter() - t_start, 1)}
    folder.write_json("bench_codec.json", {
        "reference": reference, "order": main_order, "task_metric": task_name, "bd_method": args.bd_method,
        "table": [{k: v for k, v in t.items() if not k.startswith("_")} for t in table],
        "agreement": agreement, "notes": notes, "run": run_info,
        "model": setup.model_spec, "quantizer": setup.quantizer_dict, "calibration": setup.calib.ids, "test": setup.test.ids,
        "configs": [{"label": c.label, "codec": c.codec, "packing": c.packing, "qps": qps[c.label]} for c in configs],
    })
    title = f"{setup.adapter.name} {setup.adapter.layer}, {len(setup.test)} test images"
    plots = []
    if any(t["enc_cpu_s"] is not None for t in table):
        plots.append(bd_cpu_scatter(table, out / "bench_codec.png", reference, order=main_order,
                                       title=f"Codec benchmark ({title})"))
    curves = bm.codec_rd_curves(table)
    if curves:
        plots.append(plot_rd_curves(curves, out / "rd_codecs.png", anchor=reference or "", task_label=task_name,
                                    title=f"identity order per codec ({title})"))
    gains = {t["config"]: t["gain"][main_order] for t in table if main_order in t["gain"]
             and any(v is not None for v in t["gain"][main_order].values())}
    if gains:
        plots.append(bd_rate_bars(gains, out / "ordering_gain.png", anchor="identity",
                                  title=f"ordering gain per codec: {main_order} vs identity"))

    print()
    print(text)
    print()
    print(bm.format_points_table(table))
    if agreement:
        print()
        print("\n".join(agreement))
    if notes:
        print("\nnotes:\n  " + "\n  ".join(notes[:20]), file=sys.stderr)
    failed = [t for t in table if t["status"] != "ok"]
    for t in failed:
        print(f"{t['config']}: {t['status']}", file=sys.stderr)
    print(f"{summary.finished} cells coded now, {summary.skipped} reused, {summary.failed} failed, "
          f"{summary.gave_up} not retried; {run_info['seconds']:.0f} s", file=sys.stderr)
    print(f"table:   {out / 'bench_codec.csv'}\nsummary: {out / 'bench_codec.json'}")
    for p in plots:
        print(f"plot:    {p}")
    return 0 if any(t["cells_ok"] for t in table) else 3


if __name__ == "__main__":
    sys.exit(main())
