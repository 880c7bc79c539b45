"""studies.bench_order_cost: Spearman of the cost models against real bits, on a tiny run."""
import json

import numpy as np
import pytest

from eval.experiments import bench_order_cost
from studies import bench_order_cost as bench_order_cost_cli


def test_spearman_helper():
    assert bench_order_cost.spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert bench_order_cost.spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    assert bench_order_cost.spearman([1, 1, 1], [1, 2, 3]) is None  # a constant cost ranks nothing


def test_tiny_run_scores_every_order_and_refines(tmp_path):
    out = tmp_path / "boc"
    n_random, swaps = 6, [1, 8]
    rc = bench_order_cost_cli.main([
        "--limit", "1", "--model-arg", "short_side=128", "--cache-dir", str(tmp_path / "cache"), "--qps", "37",
        "--images-coded", "1", "--n-random", str(n_random), "--swaps", *map(str, swaps), "--time-budget", "3",
        "--refine-encodes", "2", "--workers", "2", "--quiet", "--out", str(out)])
    assert rc == 0
    summary = json.loads((out / "bench_order_cost.json").read_text())
    requested = 4 + n_random + 2 * len(swaps) + 1  # identity, 3 learned, random, TSP + swaps, one search pass
    assert summary["n_orders"] >= requested
    for model in ("path", "dyadic", "structure"):
        rho = summary["spearman"][model]
        assert rho is not None and -1.0 <= rho <= 1.0
    rows = (out / "bench_order_cost.csv").read_text().splitlines()
    assert len(rows) == summary["n_orders"] + 1 and "structure" in rows[0]
    bits = [float(r.split(",")[rows[0].split(",").index("bits")]) for r in rows[1:]]
    assert min(bits) > 0 and len(set(bits)) > 1  # real, order-dependent bits
    ref = summary["refine"]
    assert ref["encodes"] == 2 and ref["bits_after"] <= ref["bits_before"]
    rc_ = summary["refcost"]
    assert rc_["cost"] <= rc_["initial_cost"] + 1e-9
    assert (out / "bench_order_cost.png").stat().st_size > 1000
    assert np.isfinite(summary["costs_of"]["tsp-correlation"]["structure"])
