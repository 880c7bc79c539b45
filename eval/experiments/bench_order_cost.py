"""Benchmark how well order cost models predict the real bits of coding the channels in that order.

Three cost models score a channel order on the calibration distance matrix (1 - Pearson r by
default, ``metric``): the TSP **path** cost (sum of distances between consecutive channels),
the **dyadic** cost (intra every 32 frames, each other frame predicted from the two ends of its
dyadic interval) and the **structure** cost under the codec's own prediction structure
(``Codec.prediction_structure``; reorder.structure_cost), plus variants of the last (mean over
references instead of min, QP-weighted layers, VVenC's candidate lists). At least 30 orders are
scored: identity, random ones, the TSP path after k random swaps, the structure local search
stopped after one pass, and the learned tsp-correlation, tsp-mse and refcost-<metric> orders.
Each order's features of the first ``images_coded`` calibration images are coded with the real
codec at ``coding.qps`` (the shared core, eval.pipeline.cell.code_features) and the bits summed.

Written to ``run.out``: the Spearman rank correlation of each cost with the bits, over
all orders and over the good ones only (learned and lightly perturbed TSP paths: the range an
optimiser works in) (``bench_order_cost.json``), one row per order with every cost and its bits
(``bench_order_cost.csv``) and a scatter plot per cost model (``bench_order_cost.png``).
``refine_encodes = N`` then refines the refcost order by real bits (eval.pipeline.refine) with
N trial encodes and reports its bits before and after.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

import numpy as np

from eval.experiments.config import CodingConfig, DataConfig, RunConfig, convert_fields, option

__all__ = ["BenchOrderCostConfig", "BenchOrderCostResult", "bench_order_cost", "spearman", "candidate_orders", "MODELS"]

MODELS = ("path", "dyadic", "structure")


@dataclass
class BenchOrderCostConfig:
    """Parameters of :func:`bench_order_cost` (its default QP: 32)."""

    metric: str = option("correlation", choices=("correlation", "mse", "cosine"),
                         help="channel distance the cost models (and the learned orders) use")
    images_coded: int = option(2, minimum=1, help="code the first N calibration images for each order")
    n_random: int = option(12, minimum=0, help="random orders")
    swaps: list[int] = option(factory=lambda: [1, 2, 4, 8, 16, 32, 64], minimum=1,
                              help="numbers of random swaps applied to the TSP path (two orders each)")
    time_budget: float = option(20.0, minimum=0, help="seconds for the refcost local search")
    seed: int = option(0, help="seed of the random orders and swaps")
    refine_encodes: int = option(0, minimum=0, help="refine the refcost order by real bits with this many trial encodes (0 = skip)")
    data: DataConfig = option(factory=DataConfig, help="model and data")
    coding: CodingConfig = option(factory=lambda: CodingConfig(qps=[32]), help="coding")
    run: RunConfig = option(factory=lambda: RunConfig(out="results/bench_order_cost"), help="running")

    def __post_init__(self):
        convert_fields(self)

    def check(self) -> None:
        self.coding.check()


def spearman(x, y) -> float | None:
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.size < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return None
    return float(spearmanr(x, y).statistic)


def candidate_orders(D, start, structure_cost, config) -> dict[str, np.ndarray]:
    """Unlearned orders: identity, random, the TSP path after k random swaps, one pass of the structure search."""
    from reorder.structure_cost import local_search

    n = D.shape[0]
    rng = np.random.default_rng(config.seed)
    orders = {"identity": np.arange(n)}
    for k in range(config.n_random):
        orders[f"random-{k}"] = rng.permutation(n)
    for swaps in config.swaps:
        for rep in range(2):
            o = np.array(start)
            for _ in range(swaps):
                i, j = rng.choice(n, size=2, replace=False)
                o[i], o[j] = o[j], o[i]
            orders[f"tsp+{swaps}swaps-{rep}"] = o
    orders["refcost-1pass"] = local_search(structure_cost, start, time_budget=None, seed=config.seed, max_passes=1,
                                           reversals=False).order
    return orders


def score(D, order, costs) -> dict[str, float]:
    from reorder.tsp import path_cost

    out = {"path": path_cost(D, order)}
    out.update({name: c(order) for name, c in costs.items()})
    return out


@dataclass
class BenchOrderCostResult:
    """Every scored order (its costs and real bits), each cost's Spearman correlation with the bits, the refinement."""

    config: BenchOrderCostConfig
    rows: list
    summary: dict
    files: dict = field(default_factory=dict)
    exit_code: int = 0

    def text(self) -> str:
        s, rows = self.summary, self.rows
        rho, near = s["spearman"], s["spearman_good_orders"]
        good = f"good ({s['n_good_orders']})"
        lines = [f"Spearman rank correlation of each cost with the real bits ({len(rows)} orders):",
                 f"  {'cost':<22}{'all':>8}{good:>12}"]
        for c in rho:
            lines.append(f"  {c:<22}{'n/a' if rho[c] is None else f'{rho[c]:+.3f}':>8}"
                         f"{'n/a' if near[c] is None else f'{near[c]:+.3f}':>12}")
        lines += ["", f"{'order':<38}{'path':>9}{'dyadic':>9}{'structure':>11}{'bits':>10}"]
        lines += [f"{r['order']:<38}{r['path']:>9.3f}{r['dyadic']:>9.3f}{r['structure']:>11.3f}{r['bits']:>10d}"
                  for r in rows if not r["order"].startswith(("random-", "tsp+"))]
        rc = s["refcost"]
        if rc.get("cost") is not None:
            lines += ["", f"refcost: structure cost {rc['cost']:.3f} vs its TSP start {rc['initial_cost']:.3f} "
                      f"({100 * (rc['cost'] / rc['initial_cost'] - 1):+.2f} %), path cost {rc['tour_cost']:.3f}"]
        refined = s["refine"]
        if refined:
            lines += ["", f"refined {refined['start']} by bits: {refined['bits_before']} -> {refined['bits_after']} "
                      f"({100 * refined['saving']:.2f} % fewer, {refined['encodes']} trial encodes, "
                      f"{len(refined['accepted'])} swaps kept)"]
        return "\n" + "\n".join(lines) + "\n"

    def notes(self) -> list[str]:
        return []


def bench_order_cost(config: BenchOrderCostConfig, *, command: str | None = None, source: str | None = None) -> BenchOrderCostResult:
    """Score every candidate order with each cost model and code it for real (see the module docstring)."""
    from eval.experiments.session import prepare, provenance, study_session
    from eval.pipeline.orders import learn_orders

    config.check()
    t_start = time.perf_counter()
    with study_session(config, "bench_order_cost", command=command, source=source) as folder:
        setup = prepare(config.data, config.coding, config.run.progress)
        metric = config.metric
        learned = [f"tsp-{metric}", "tsp-mse" if metric != "mse" else "tsp-correlation",
                   f"refcost-{metric}:time_budget={config.time_budget}"]
        orders = learn_orders(learned, setup.calib, folder.orders, provenance(setup), progress=config.run.progress)
        D = np.asarray(orders.distances[f"tsp-{metric}"], dtype=np.float64)
        costs, structure, codec = _cost_models(D, setup.codec_spec, metric)
        all_orders = {name: np.asarray(p.order) for name, p in orders.items()}
        all_orders.update(candidate_orders(D, all_orders[f"tsp-{metric}"], costs["structure"], config))
        features = [setup.calib[i] for i in range(min(config.images_coded, len(setup.calib)))]
        rows = _measure(config, setup, codec, features, all_orders, D, costs)
        summary = _summary(config, setup, rows, features, structure, orders, learned, all_orders, costs, codec)
        summary["seconds"] = round(time.perf_counter() - t_start, 1)
        folder.write_csv("bench_order_cost.csv", rows)
        folder.write_json("bench_order_cost.json", summary)
        plot = _scatter(rows, list(MODELS), summary["spearman"], folder.root / "bench_order_cost.png",
                        f"{len(rows)} orders, {len(features)} images, QP {config.coding.qps}, {setup.codec_spec}")
    files = {"results": f"{folder.root / 'bench_order_cost.json'}  {folder.root / 'bench_order_cost.csv'}", "plot": plot}
    return BenchOrderCostResult(config, rows, summary, files)


def _cost_models(D, codec_spec: str, metric: str):
    """The dyadic and real-structure cost models (and variants) on ``D``; returns ``(costs, structure, codec)``."""
    from codec import make_codec
    from codec.structure import dyadic
    from reorder.structure_cost import StructureCost, intra_costs

    n = D.shape[0]
    codec = make_codec(codec_spec)
    structure = codec.prediction_structure(n)
    intra = intra_costs(D, metric)
    costs = {
        "dyadic": StructureCost(D, dyadic(n, 32), intra),
        "structure": StructureCost(D, structure, intra),
        "structure_mean": StructureCost(D, structure, intra, combine="mean"),
        "structure_qp": StructureCost(D, structure, intra, weight="qp"),
    }
    if codec.name == "vvenc":
        costs["structure_candidates"] = StructureCost(D, codec.prediction_structure(n, lists="candidates"), intra)
    return costs, structure, codec


def _measure(config, setup, codec, features, all_orders, D, costs) -> list[dict]:
    """Real bits of every order (the encoders run as child processes, ``run.workers`` at a time) and its costs."""
    from concurrent.futures import ThreadPoolExecutor

    from codec import make_packing
    from eval.pipeline.refine import order_bits

    packing = make_packing(config.coding.packing)
    print(f"coding {len(all_orders)} orders x {len(features)} calibration images x QP {config.coding.qps} with "
          f"{setup.codec_spec}", file=sys.stderr)
    names = list(all_orders)
    with ThreadPoolExecutor(max_workers=max(1, config.run.workers)) as pool:
        measured = dict(zip(names, pool.map(
            lambda k: order_bits(features, all_orders[k], setup.quantizer, packing, codec, config.coding.qps), names)))
    return [{"order": name, **score(D, all_orders[name], costs), "bits": measured[name]} for name in names]


def _summary(config, setup, rows, features, structure, orders, learned, all_orders, costs, codec) -> dict:
    from codec import make_packing
    from eval.pipeline.refine import refine_by_bits

    columns = ["path", *costs]
    bits_col = [r["bits"] for r in rows]
    # among good orders only (learned ones and the TSP path after a few swaps): what an optimiser needs
    near = [r for r in rows if not r["order"].startswith(("random-", "identity"))]
    refined = None
    if config.refine_encodes > 0:
        res = refine_by_bits(features, all_orders[learned[-1]], costs["structure"], setup.quantizer,
                             make_packing(config.coding.packing), codec, config.coding.qps, max_encodes=config.refine_encodes)
        refined = {"start": learned[-1], "bits_before": res.bits_before, "bits_after": res.bits_after, "saving": res.saving,
                   "encodes": res.encodes, "accepted": res.accepted, "seconds": round(res.seconds, 1), "order": res.order.tolist()}
    prov = orders[learned[-1]].provenance
    names = [r["order"] for r in rows]
    return {
        "spearman": {c: spearman([r[c] for r in rows], bits_col) for c in columns},
        "spearman_good_orders": {c: spearman([r[c] for r in near], [r["bits"] for r in near]) for c in columns},
        "n_good_orders": len(near), "n_orders": len(rows), "metric": config.metric, "codec": setup.codec_spec,
        "qps": list(config.coding.qps), "images_coded": [setup.calib.ids[i] for i in range(len(features))],
        "structure": structure.source,
        "costs_of": {name: {c: rows[names.index(name)][c] for c in columns} for name in learned},
        "refine": refined,
        "refcost": {k: prov.get(k) for k in ("cost", "initial_cost", "tour_cost", "search_converged", "solve_seconds")},
    }


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
