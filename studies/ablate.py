"""Ablations: what each choice in learning and coding an order is worth, as BD-rate vs identity.

    python -m studies.ablate                                   # embedded default grid (see --help)
    python -m studies.ablate --metrics correlation mse ssim --normalizations none zscore \\
        --solvers default nearest_neighbour --quantizers log uniform --presets faster --packings temporal
    python -m studies.ablate --calib-sizes 1 2 4 8 11 --no-grid  # only the calibration-size curve

Grid: similarity metric x channel normalisation x TSP solver (orders learned on the
calibration split) under every coding setting quantizer x codec preset x packing. Each cell is
a BD-rate against the identity order coded in the same setting on the same test images.
Besides the grid, for each ``--reference-orders`` orderer (default ``tsp-correlation``):
the fixed order learned on the whole calibration split, the per-image oracle (the order
learned on each test image itself, the upper bound of a fixed order) and the calibration-size
curve (orders learned on the first k calibration images).

With several quantizers, presets or packings, each row also gives the BD-rate of the variant
against itself in the first setting (``vs 1st setting``): e.g. ``--quantizers log
results/tune_quantizer/best_quantizer.json`` measures the tuned quantizer against the log one
for every order.

Every cell goes through the shared core into one ``results.sqlite``: re-running with more
axis values codes only the new cells. Outputs in ``--out``: ``ablation.csv`` (one row per
setting x variant), ``results.csv`` (one row per coded cell), ``summary.json``, learned orders
under ``orders/``, ``oracle/``, ``calib_size/``.
"""

from __future__ import annotations

import argparse
import sys
import time

from studies import cli


def build_parser() -> argparse.ArgumentParser:
    parser = cli.study_parser("studies.ablate", __doc__)
    cli.add_data_arguments(parser)
    g = parser.add_argument_group("ablation axes")
    g.add_argument("--metrics", nargs="+", default=["correlation", "mse"], help="similarity metrics of the TSP orders (reorder names)")
    g.add_argument("--normalizations", nargs="+", default=["none", "zscore"], help="channel normalisations before comparing")
    g.add_argument("--solvers", nargs="+", default=["default"], help="TSP solvers")
    g.add_argument("--no-grid", dest="grid", action="store_false", help="skip the metric x normalisation x solver grid")
    g.add_argument("--quantizers", nargs="+", default=["log"], help="quantizer specs (fitted on calibration) or saved JSON files")
    g.add_argument("--presets", nargs="+", default=["faster"], help="codec presets ('default' = the codec's own)")
    g.add_argument("--packings", nargs="+", default=["temporal"], help="channel packings: temporal, tiled")
    g.add_argument("--reference-orders", nargs="*", default=["tsp-correlation"],
                   help="orderers for the fixed order, the per-image oracle and the calibration-size curve")
    g.add_argument("--oracle", action=argparse.BooleanOptionalAction, default=True, help="per-image oracle orders")
    g.add_argument("--calib-sizes", nargs="*", type=int, default=None,
                   help="calibration-set sizes k (first k images); default 1 2 4 8 up to the split's size, and the full split; none to skip")
    c = parser.add_argument_group("coding")
    c.add_argument("--codec", default="vvenc", help="codec registry spec; presets are added to it")
    c.add_argument("--qps", nargs="+", type=int, default=cli.DEFAULT_QPS, help="quantisation parameters of the RD curves")
    c.add_argument("--bd-method", default="pchip", choices=["pchip", "cubic"], help="BD-rate interpolation")
    cli.add_run_arguments(parser, default_out="results/ablate")
    return parser


def main(argv=None) -> int:
    return cli.run_study(build_parser(), run, argv)


def run(args) -> int:
    import numpy as np

    from codec import make_codec
    from eval import ablation as ab
    from eval.pipeline.features import prepare_references
    from eval.pipeline.orders import learn_orders
    from eval.pipeline.runner import run_grid
    from eval.pipeline.setup import fit_quantizer, prepare_setup
    from eval.study_folder import RESULT_COLUMNS, StudyFolder

    t_start = time.perf_counter()
    folder = StudyFolder(args.out)
    progress = not args.quiet
    calib_samples, test_samples = cli.split_samples(args)
    codec_specs = [ab.codec_with_preset(args.codec, p) for p in args.presets]
    setup = prepare_setup(
        cli.model_spec(args), calib_samples, test_samples, quantizer=args.quantizers[0],
        codec=codec_specs[0], cache_dir=args.cache_dir, progress=progress,
    )
    quantizers = {args.quantizers[0]: setup.quantizer_dict}
    for spec in args.quantizers[1:]:
        quantizers[spec] = fit_quantizer(spec, setup.calib).to_dict()
    codecs = {p: make_codec(spec).spec() for p, spec in zip(args.presets, codec_specs)}
    settings = ab.coding_settings(quantizers, codecs, args.packings)
    provenance = cli.provenance(setup)
    n_calib = len(setup.calib)
    sizes = args.calib_sizes
    if sizes is None:
        sizes = [k for k in (1, 2, 4, 8) if k < n_calib] + [n_calib]
    refs = list(dict.fromkeys(args.reference_orders))
    if not refs:
        sizes, args.oracle = [], False

    # ---- orders (each learned once; saved orders with the same parameters and calibration are reused)
    variants = ab.grid_variants(args.metrics, args.normalizations, args.solvers) if args.grid else []
    names = [v.orderer for v in variants] + refs
    orders = learn_orders(names, setup.calib, folder.orders, provenance, progress=progress)
    oracle = ab.learn_per_image_orders(refs, setup.test, folder.order_folder("oracle"), provenance, progress) if args.oracle else {}
    by_size = (ab.learn_calibration_size_orders(refs, setup.calib, sizes, folder.order_folder("calib_size"), provenance, progress)
               if sizes else {})

    def info(perm):
        return {"tour_cost": perm.provenance.get("tour_cost"), "order_digest": perm.digest()}

    references = prepare_references(setup.adapter, setup.test, progress=progress)
    plan = ab.AblationPlan(setup.test, references, list(args.qps), setup.model_spec,
                           bitstream_dir=str(folder.bitstreams_dir) if args.keep_bitstreams else None)
    identity = ab.Variant("identity", "anchor", "identity")
    for s in settings:
        plan.add(s, identity, np.arange(setup.calib.n_channels, dtype=np.int64), info(orders["identity"]))
        for v in variants:
            plan.add(s, v, orders[v.orderer].order, info(orders[v.orderer]))
        for name in refs:
            plan.add(s, ab.Variant(f"{name} (fixed)", "fixed", name, (("reference", name), ("k", n_calib))),
                     orders[name].order, info(orders[name]))
            if name in oracle:
                plan.add(s, ab.Variant(f"{name} (per-image oracle)", "oracle", name, (("reference", name),)), oracle[name])
            for k, perm in by_size.get(name, {}).items():
                plan.add(s, ab.Variant(f"{name} @ k={k}", "calib_size", name, (("reference", name), ("k", k))), perm.order, info(perm))
    n_unique = len({j.key for j in plan.jobs})
    print(f"ablation: {len(settings)} coding setting(s) x {len({v for _, v in plan.keys})} variants on {len(setup.test)} test images "
          f"x {len(args.qps)} QPs = {n_unique} distinct cells ({args.workers} worker{'s' if args.workers != 1 else ''})", file=sys.stderr)

    with folder.results_store() as store:
        summary = run_grid(plan.jobs, store, workers=args.workers, scheduler=args.scheduler, max_attempts=args.max_attempts,
                           progress=progress, desc="ablation")
        keys = {j.key for j in plan.jobs}
        rows = [r for r in store.rows() if r["key"] in keys]
        failed = [r for r in store.rows(status="error") if r["key"] in keys]
    task = setup.adapter.task
    table, notes = ab.ablation_table(plan, rows, task, method=args.bd_method)
    folder.write_csv("ablation.csv", table, ab.TABLE_COLUMNS)
    extra_cols = ["study", "kind", "variant", "metric", "normalization", "solver", "reference", "k", "quantizer_label", "preset"]
    folder.write_csv("results.csv", rows, RESULT_COLUMNS + extra_cols)
    folder.write_json("summary.json", {
        "table": table, "notes": notes, "model": setup.model_spec, "qps": list(args.qps), "calibration": setup.calib.ids,
        "test": setup.test.ids, "settings": [s.label for s in settings], "quantizers": quantizers, "codecs": codecs,
        "task_metric": task.name, "bd_method": args.bd_method,
    })

    print()
    print(ab.format_ablation(table, task_name=task.name))
    if variants:
        for s in settings:
            for solver in args.solvers:
                where = {"quantizer": s.quantizer, "preset": s.preset, "packing": s.packing, "solver": solver}
                print(f"\nBD feature PSNR % (metric x normalisation), solver {solver}, {s.label}:")
                print(ab.pivot(table, "metric", "normalization", "bd_feature_psnr", where))
    _print_reference_summary(table, refs)
    print()
    cli.report_failures(failed)
    for n in notes:
        print(f"note: {n}", file=sys.stderr)
    print(f"{summary.finished} cells coded now, {summary.skipped} reused from an earlier run, {summary.failed} failed; "
          f"{time.perf_counter() - t_start:.0f} s", file=sys.stderr)
    out = folder.root
    print(f"ablation table: {out / 'ablation.csv'}\ncells:          {folder.results_csv} ({folder.store_path})\n"
          f"summary:        {folder.summary_json}\norders:         {out / 'orders'}, {out / 'oracle'}, {out / 'calib_size'}")
    return 0 if not failed else 3


def _print_reference_summary(table, refs) -> None:
    """Fixed order vs its per-image oracle, and the calibration-size curve, per setting."""
    def fmt(v):
        return "n/a" if v is None else f"{v:+.2f} %"

    for setting in dict.fromkeys((r["quantizer"], r["preset"], r["packing"]) for r in table):
        sub = [r for r in table if (r["quantizer"], r["preset"], r["packing"]) == setting]
        for name in refs:
            fixed = next((r for r in sub if r["kind"] == "fixed" and r["variant"] == f"{name} (fixed)"), None)
            orc = next((r for r in sub if r["kind"] == "oracle" and r["variant"] == f"{name} (per-image oracle)"), None)
            curve = [r for r in sub if r["kind"] == "calib_size" and r["variant"].startswith(f"{name} @ ")]
            label = f"{name}, {setting[0]} | {setting[1]} | {setting[2]}"
            if fixed and orc:
                f, o = fixed["bd_feature_psnr"], orc["bd_feature_psnr"]
                share = f"; the fixed order reaches {f / o:.0%} of the oracle's saving" if f is not None and o not in (None, 0) else ""
                print(f"\n{label}: fixed {fmt(f)} vs per-image oracle {fmt(o)} (feature PSNR){share}; "
                      f"task: fixed {fmt(fixed['bd_task'])}, oracle {fmt(orc['bd_task'])}")
            if curve:
                print(f"calibration-size curve ({name}): " + ", ".join(f"k={r['k']}: {fmt(r['bd_feature_psnr'])}" for r in curve))


if __name__ == "__main__":
    sys.exit(main())
