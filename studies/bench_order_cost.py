"""Benchmark how well order cost models predict the real bits of coding the channels in that order.

    python -m studies.bench_order_cost                          # default split, 2 calibration images, QP 32
    python -m studies.bench_order_cost --images-coded 4 --qps 27 37 --refine-encodes 20

Three cost models score a channel order on the calibration distance matrix (1 - Pearson r by
default, ``--metric``): the TSP **path** cost (sum of distances between consecutive channels),
the **dyadic** cost (intra every 32 frames, each other frame predicted from the two ends of its
dyadic interval) and the **structure** cost under the codec's own prediction structure
(``Codec.prediction_structure``; reorder.structure_cost), plus variants of the last (mean over
references instead of min, QP-weighted layers, VVenC's candidate lists). At least 30 orders are
scored: identity, random ones, the TSP path after k random swaps, the structure local search
stopped after one pass, and the learned tsp-correlation, tsp-mse and refcost-<metric> orders.
Each order's features of the first ``--images-coded`` calibration images are coded with the real
codec at ``--qps`` (the shared core, eval.pipeline.cell.code_features) and the bits summed.

Printed and written to ``--out``: the Spearman rank correlation of each cost with the bits, over
all orders and over the good ones only (learned and lightly perturbed TSP paths: the range an
optimiser works in) (``bench_order_cost.json``), one row per order with every cost and its bits
(``bench_order_cost.csv``) and a scatter plot per cost model (``bench_order_cost.png``).
``--refine-encodes N`` then refines the refcost order by real bits (eval.pipeline.refine) with
N trial encodes and reports its bits before and after.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from studies import cli

MODELS = ("path", "dyadic", "structure")


def build_parser():
    parser = cli.study_parser("studies.bench_order_cost", __doc__)
    cli.add_data_arguments(parser)
    cli.add_coding_arguments(parser)
    g = parser.add_argument_group("orders and cost models")
    g.add_argument("--metric", default="correlation", choices=["correlation", "mse", "cosine"],
                   help="channel distance the cost models (and the learned orders) use")
    g.add_argument("--images-coded", type=int, default=2, help="code the first N calibration images for each order")
    g.add_argument("--n-random", type=int, default=12, help="random orders")
    g.add_argument("--swaps", nargs="+", type=int, default=[1, 2, 4, 8, 16, 32, 64],
                   help="numbers of random swaps applied to the TSP path (two orders each)")
    g.add_argument("--time-budget", type=float, default=20.0, help="seconds for the refcost local search")
    g.add_argument("--seed", type=int, default=0, help="seed of the random orders and swaps")
    g.add_argument("--refine-encodes", type=int, default=0,
                   help="refine the refcost order by real bits with this many trial encodes (0 = skip)")
    cli.add_run_arguments(parser, default_out="results/bench_order_cost")
    parser.set_defaults(qps=[32])
    return parser


def spearman(x, y) -> float | None:
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def candidate_orders(D, start, structure_cost, args) -> dict[str, np.ndarray]:
    """Unlearned orders: identity, random, the TSP path after k random swaps, one pass of the structure search."""
    from reorder.structure_cost import local_search

    n = D.shape[0]
    rng = np.random.default_rng(args.seed)
    orders = {"identity": np.arange(n)}
    for k in range(args.n_random):
        orders[f"random-{k}"] = rng.permutation(n)
    for swaps in args.swaps:
        for rep in range(2):
            o = np.array(start)
            for _ in range(swaps):
                i, j = rng.choice(n, size=2, replace=False)
                o[i], o[j] = o[j], o[i]
            orders[f"tsp+{swaps}swaps-{rep}"] = o
    orders["refcost-1pass"] = local_search(structure_cost, start, time_budget=None, seed=args.seed, max_passes=1,
                                           reversals=False).order
    return orders


def score(D, order, costs) -> dict[str, float]:
    from reorder.tsp import path_cost

    out = {"path": path_cost(D, order)}
    out.update({name: c(order) for name, c in costs.items()})
    return out


def run(args) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from codec import make_codec, make_packing
    from codec.structure import dyadic
    from eval.pipeline.orders import learn_orders
    from eval.pipeline.refine import order_bits, refine_by_bits
    from eval.study_folder import StudyFolder
    from reorder.structure_cost import StructureCost, intra_costs

    t_start = time.perf_counter()
    folder = StudyFolder(args.out)
    progress = not args.quiet
    setup = cli.prepare(args)
    metric = args.metric
    learned = [f"tsp-{metric}", "tsp-mse" if metric != "mse" else "tsp-correlation",
               f"refcost-{metric}:time_budget={args.time_budget}"]
    orders = learn_orders(learned, setup.calib, folder.orders, cli.provenance(setup), progress=progress)
    D = np.asarray(orders.distances[f"tsp-{metric}"], dtype=np.float64)
    n = D.shape[0]
    codec = make_codec(setup.codec_spec)
    structure = codec.prediction_structure(n)
    intra = intra_costs(D, metric)
    costs = {
        "dyadic": StructureCost(D, dyadic(n, 32), intra),
        "structure": StructureCost(D, structure, intra),
        "structure_mean": StructureCost(D, structure, intra, combine="mean"),
        "structure_qp": StructureCost(D, structure, intra, weight="qp"),
    }
    if hasattr(codec, "prediction_structure") and codec.name == "vvenc":
        costs["structure_candidates"] = StructureCost(D, codec.prediction_structure(n, lists="candidates"), intra)
    all_orders = {name: np.asarray(p.order) for name, p in orders.items()}
    all_orders.update(candidate_orders(D, all_orders[f"tsp-{metric}"], costs["structure"], args))

    features = [setup.calib[i] for i in range(min(args.images_coded, len(setup.calib)))]
    packing = make_packing(args.packing)
    print(f"coding {len(all_orders)} orders x {len(features)} calibration images x QP {args.qps} with {setup.codec_spec}",
          file=sys.stderr)

    def bits(order):
        return order_bits(features, order, setup.quantizer, packing, codec, args.qps)

    names = list(all_orders)
    with ThreadPoolExecutor(max_workers=max(1, args.workers)) as pool:  # the encoders are child processes
        measured = dict(zip(names, pool.map(lambda k: bits(all_orders[k]), names)))
    rows = []
    for name in names:
        row = {"order": name, **score(D, all_orders[name], costs), "bits": measured[name]}
        rows.append(row)
    columns = ["path", *costs]
    bits_col = [r["bits"] for r in rows]
    rho = {c: spearman([r[c] for r in rows], bits_col) for c in columns}
    # among good orders only (learned ones and the TSP path after a few swaps): what an optimiser needs
    near = [r for r in rows if not r["order"].startswith(("random-", "identity"))]
    rho_near = {c: spearman([r[c] for r in near], [r["bits"] for r in near]) for c in columns}

    refined = None
    if args.refine_encodes > 0:
        start_name = learned[-1]
        res = refine_by_bits(features, all_orders[start_name], costs["structure"], setup.quantizer, packing, codec,
                             args.qps, max_encodes=args.refine_encodes)
        refined = {"start": start_name, "bits_before": res.bits_before, "bits_after": res.bits_after,
                   "saving": res.saving, "encodes": res.encodes, "accepted": res.accepted,
                   "seconds": round(res.seconds, 1), "order": res.order.tolist()}

    prov = orders[learned[-1]].provenance
    fitted = {"refcost": {k: prov.get(k) for k in ("cost", "initial_cost", "tour_cost", "search_converged",
                                                     "solve_seconds")}}
    summary = {
        "spearman": rho, "spearman_good_orders": rho_near, "n_good_orders": len(near), "n_orders": len(rows), "metric": metric, "codec": setup.codec_spec, "qps": list(args.qps),
        "images_coded": [setup.calib.ids[i] for i in range(len(features))], "structure": structure.source,
        "costs_of": {name: {c: rows[names.index(name)][c] for c in columns} for name in learned},
        "refine": refined, "seconds": round(time.perf_counter() - t_start, 1), **fitted,
    }
    folder.write_csv("bench_order_cost.csv", rows)
    folder.write_json("bench_order_cost.json", summary)
    plot = None
    try:
        plot = _scatter(rows, [c for c in MODELS], rho, folder.root / "bench_order_cost.png",
                        f"{len(rows)} orders, {len(features)} images, QP {args.qps}, {setup.codec_spec}")
    except ImportError as exc:  # pragma: no cover - matplotlib is a dependency
        print(f"warning: no plot ({exc})", file=sys.stderr)

    print(f"\nSpearman rank correlation of each cost with the real bits ({len(rows)} orders):")
    print(f"  {'cost':<22}{'all':>8}{f'good ({len(near)})':>12}")
    for c in columns:
        print(f"  {c:<22}{'n/a' if rho[c] is None else f'{rho[c]:+.3f}':>8}"
              f"{'n/a' if rho_near[c] is None else f'{rho_near[c]:+.3f}':>12}")
    print(f"\n{'order':<38}{'path':>9}{'dyadic':>9}{'structure':>11}{'bits':>10}")
    for r in rows:
        if not r["order"].startswith(("random-", "tsp+")):
            print(f"{r['order']:<38}{r['path']:>9.3f}{r['dyadic']:>9.3f}{r['structure']:>11.3f}{r['bits']:>10d}")
    rc = fitted["refcost"]
    if rc.get("cost") is not None:
        print(f"\nrefcost: structure cost {rc['cost']:.3f} vs its TSP start {rc['initial_cost']:.3f} "
              f"({100 * (rc['cost'] / rc['initial_cost'] - 1):+.2f} %), path cost {rc['tour_cost']:.3f}")
    if refined:
        print(f"\nrefined {refined['start']} by bits: {refined['bits_before']} -> {refined['bits_after']} "
              f"({100 * refined['saving']:.2f} % fewer, {refined['encodes']} trial encodes, "
              f"{len(refined['accepted'])} swaps kept)")
    print(f"results: {folder.root / 'bench_order_cost.json'}  {folder.root / 'bench_order_cost.csv'}"
          + (f"  {plot}" if plot else ""))
    return 0


def _scatter(rows, models, rho, path, title):
    from eval.plots._png import new_figure, plain_text, save_png

    fig = new_figure(4.0 * len(models), 3.6)
    axes = fig.subplots(1, len(models))
    bits = np.array([r["bits"] for r in rows], dtype=float)
    for ax, m in zip(np.atleast_1d(axes), models):
        ax.scatter([r[m] for r in rows], bits, s=12)
        value = rho.get(m)
        ax.set_title(plain_text(f"{m} cost (Spearman {'n/a' if value is None else f'{value:+.2f}'})"), fontsize=9)
        ax.set_xlabel(f"{m} cost")
        ax.set_ylabel("bits")
    fig.suptitle(plain_text(title), fontsize=9)
    return save_png(fig, path)


def main(argv=None) -> int:
    return cli.run_study(build_parser(), run, argv)


if __name__ == "__main__":
    sys.exit(main())
