"""The solver benchmark runs end to end on small matrices and writes a consistent CSV."""

import csv

import numpy as np

from eval.experiments import bench_tsp as bench_tsp_lib
from eval.experiments.bench_tsp import BenchTspConfig
from studies import bench_tsp


def test_bench_writes_gaps_relative_to_the_best(tmp_path, capsys):
    out = tmp_path / "bench.csv"
    assert bench_tsp.main(["--sizes", "12", "30", "--source", "random", "--solvers", "default", "exact",
                           "nearest_neighbour", "two_opt", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert {r["matrix"] for r in rows} == {"points", "corr"}
    assert {r["solver"] for r in rows if r["n"] == "30"} == {"default", "nearest_neighbour", "two_opt"}
    for (kind, n) in {(r["matrix"], r["n"]) for r in rows}:
        group = [r for r in rows if (r["matrix"], r["n"]) == (kind, n)]
        gaps = [float(r["gap_pct"]) for r in group]
        assert min(gaps) == 0.0 and all(g >= 0 for g in gaps)
        best = float(group[0]["best"])
        assert best == min(float(r["cost"]) for r in group)
        if n == "12":  # the exact solver's path is the best there
            assert float(next(r for r in group if r["solver"] == "exact")["gap_pct"]) == 0.0
    assert "gap %" in capsys.readouterr().out


def test_feature_folder_source(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(2):
        np.save(tmp_path / f"f{i}.npy", rng.random((20, 9, 9)).astype(np.float32))
    rows = bench_tsp_lib.bench_tsp(BenchTspConfig(sizes=[16, 40], source="features", features=str(tmp_path),
                                                  solvers=["two_opt"])).rows
    assert [(r["matrix"], r["n"]) for r in rows] == [("features-correlation", 16)]  # 40 > 20 channels: skipped


def test_python_tsp_solvers_run_within_their_hard_budget(tmp_path, capsys):
    import importlib.util

    import pytest

    if importlib.util.find_spec("python_tsp") is None:
        pytest.skip("python-tsp is not installed (run: python -m eval.install)")
    out = tmp_path / "bench.csv"
    assert bench_tsp.main(["--sizes", "12", "300", "--source", "random", "--slow-budget", "0.8", "--solvers", "lkh",
                           "python_tsp_dynamic_programming", "python_tsp_record_to_record", "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open()))
    assert {r["solver"] for r in rows if r["n"] == "300"} == {"lkh", "python_tsp_record_to_record"}  # DP: n <= 13
    for r in rows:
        if r["solver"].startswith("python_tsp_"):
            assert float(r["budget"]) == 0.8 and r["timed_out"] in ("True", "False")
        else:
            assert r["budget"] == "" and r["timed_out"] == "False"
    slow = [r for r in rows if r["n"] == "300" and r["solver"] == "python_tsp_record_to_record"]
    assert all(r["timed_out"] == "True" and "timed out" in r["used"] for r in slow)
    assert "timed out: " in capsys.readouterr().out


def test_budget_overrun_of_a_hard_limited_solver_stops_the_bench():
    import pytest

    bench_tsp_lib.check_budget("python_tsp_lin_kernighan", 1.5, 1.0)  # within the margin
    bench_tsp_lib.check_budget("lkh", 100.0, 1.0)  # soft limits are only noted in the table
    with pytest.raises(RuntimeError, match="past its hard budget"):
        bench_tsp_lib.check_budget("python_tsp_lin_kernighan", 1.0 + bench_tsp_lib.HARD_LIMIT_MARGIN + 0.01, 1.0)
