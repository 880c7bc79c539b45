"""Ablation grids: cell bookkeeping and BD-rates (synthetic rows), and the study end to end (tiny config)."""

import csv
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eval import ablation as ab
from eval.analysis.bdrate import bd_rate
from eval.pipeline.features import FeatureRef, FeatureSet
from eval.study_folder import OrderFolder

ROOT = Path(__file__).resolve().parents[1]
QPS = [37, 42, 47, 52]  # 24x24 frames: lower QPs can exceed libvvenc's per-picture byte limit


def test_names_and_codec_presets():
    assert ab.orderer_name("ssim", "zscore", "lkh") == "tsp-ssim:normalization=zscore,solver=lkh"
    assert ab.codec_with_preset("vvenc", "medium") == "vvenc:preset=medium"
    assert ab.codec_with_preset("vvenc:intra_period=32", "slow") == "vvenc:intra_period=32,preset=slow"
    assert ab.codec_with_preset("x265", "default") == "x265"


def test_coding_settings_is_the_cross_product_and_checks_packings():
    settings = ab.coding_settings({"log": {"name": "log"}, "uniform": {"name": "uniform"}}, {"faster": "vvenc:preset=faster"},
                                  ["temporal", "tiled"])
    assert [(s.quantizer, s.packing) for s in settings] == [("log", "temporal"), ("log", "tiled"), ("uniform", "temporal"), ("uniform", "tiled")]
    with pytest.raises(ValueError):
        ab.coding_settings({"log": {}}, {"faster": "vvenc"}, ["diagonal"])


def test_calibration_sizes_must_fit_the_split(tmp_path):
    calib = FeatureSet([FeatureRef(f"c{i}", f"k{i}", str(tmp_path / f"{i}.npy"), {"pixels": 1}) for i in range(3)])
    with pytest.raises(ValueError, match="calib_sizes 4: there are 3 calibration images"):
        ab.learn_calibration_size_orders(["identity"], calib, [4], OrderFolder(tmp_path), {})


def _feature_set(tmp_path, n, seed, c=6):
    """``n`` images of ``c`` channels whose channel similarity differs from image to image."""
    rng = np.random.default_rng(seed)
    refs = []
    for i in range(n):
        base = rng.standard_normal((3, 8, 8)).astype(np.float32)
        mix = rng.standard_normal((c, 3)).astype(np.float32)
        x = np.einsum("ck,khw->chw", mix, base) + 0.05 * rng.standard_normal((c, 8, 8)).astype(np.float32)
        path = tmp_path / f"f{seed}_{i}.npy"
        np.save(path, x)
        refs.append(FeatureRef(f"img{i}", f"key{seed}_{i}", str(path), {"pixels": 64, "shape": [c, 8, 8]}))
    return FeatureSet(refs)


def test_per_image_and_calibration_size_orders_are_learned_on_their_own_data(tmp_path):
    from reorder import make_orderer

    test = _feature_set(tmp_path, 3, seed=1)
    oracle = ab.learn_per_image_orders(["tsp-correlation"], test, OrderFolder(tmp_path / "oracle"), {"model": "m"}, progress=False)
    assert set(oracle["tsp-correlation"]) == {"img0", "img1", "img2"}
    for i, image_id in enumerate(test.ids):
        alone = make_orderer("tsp-correlation").fit([test[i]]).permutation_
        assert list(oracle["tsp-correlation"][image_id]) == list(alone)
    calib = _feature_set(tmp_path, 4, seed=2)
    sizes = ab.learn_calibration_size_orders(["tsp-correlation"], calib, [1, 4], OrderFolder(tmp_path / "k"), {"model": "m"}, progress=False)
    assert list(sizes["tsp-correlation"][1].order) == list(make_orderer("tsp-correlation").fit(calib[:1]).permutation_)
    assert list(sizes["tsp-correlation"][4].order) == list(make_orderer("tsp-correlation").fit(calib).permutation_)
    assert sizes["tsp-correlation"][1].provenance["calibration_size"] == 1
    assert sizes["tsp-correlation"][4].provenance["calibration_images"] == calib.ids


class MeanTask:
    name = "score"

    @staticmethod
    def aggregate(stats):
        return float(np.mean([s["score"] for s in stats]))


def _plan(tmp_path, n_images=2, n_channels=6):
    refs = [FeatureRef(f"img{i}", f"key{i}", str(tmp_path / f"{i}.npy"), {"pixels": 1000}) for i in range(n_images)]
    test = FeatureSet(refs)
    return ab.AblationPlan(test, {r.sample_id: "ref.npz" for r in refs}, QPS, {"name": "m"}), n_channels


def _rows(plan, quality_of):
    """A finished row per planned cell; rate and quality from ``quality_of(job) -> (bits, psnr)``."""
    rows = {}
    for job in plan.jobs:
        bits, psnr = quality_of(job)
        rows[job.key] = {**job.describe(), "status": "ok", "bits": bits, "feature_psnr": psnr, "task_stats": {"score": psnr}}
    return list(rows.values())


def test_table_gives_bd_rate_per_setting_and_shares_identical_orders(tmp_path):
    plan, c = _plan(tmp_path)
    s1 = ab.CodingSetting("log", json.dumps({"name": "log"}), "faster", "vvenc:preset=faster", "temporal")
    s2 = ab.CodingSetting("uniform", json.dumps({"name": "uniform"}), "faster", "vvenc:preset=faster", "temporal")
    ident = np.arange(c)
    rev = ident[::-1].copy()
    a = ab.Variant("tsp-correlation/none/default", "grid", "x", (("metric", "correlation"), ("normalization", "none"), ("solver", "default")))
    b = ab.Variant("tsp-correlation/zscore/default", "grid", "y", (("metric", "correlation"), ("normalization", "zscore"), ("solver", "default")))
    oracle = ab.Variant("o (per-image oracle)", "oracle", "o")
    for s in (s1, s2):
        plan.add(s, ab.Variant("identity", "anchor", "identity"), ident)
        plan.add(s, a, rev)
        plan.add(s, b, rev)  # the same order as a: same cells
        plan.add(s, oracle, {"img0": np.roll(ident, 1), "img1": np.roll(ident, 2)})
    assert len(plan.jobs) == 2 * 4 * 2 * 4 and len({j.key for j in plan.jobs}) == 2 * 3 * 2 * 4
    assert plan.keys[(s1, a)] == plan.keys[(s1, b)] and plan.keys[(s1, a)] != plan.keys[(s2, a)]
    # a per-image order is sent with each image: its cells carry the permutation's index bits, fixed orders none
    from eval.pipeline.cell import order_side_bits

    assert {j.side_bits for j in plan.jobs if "oracle" in j.order_name} == {order_side_bits(c)} and order_side_bits(c) > 0
    assert {j.side_bits for j in plan.jobs if "oracle" not in j.order_name} == {0}

    def quality(job):  # identity: bits 1000*2**(qp..); reversed: 20 % fewer bits in s1, 10 % in s2; oracle: 30 %
        base = 2.0 ** ((50 - job.qp) / 3) * 1000
        factor = 1.0
        if job.order_name.startswith("tsp"):
            factor = 0.8 if "log" in job.quantizer["name"] else 0.9
        elif "oracle" in job.order_name:
            factor = 0.7
        return int(base * factor), 60.0 - job.qp

    table, notes = ab.ablation_table(plan, _rows(plan, quality), MeanTask())
    got = {(r["quantizer"], r["variant"]): r for r in table}
    assert got[("log", "identity")]["bd_feature_psnr"] == pytest.approx(0.0, abs=1e-9)
    assert got[("log", a.label)]["bd_feature_psnr"] == pytest.approx(-20.0, abs=0.5)
    assert got[("log", b.label)]["bd_feature_psnr"] == got[("log", a.label)]["bd_feature_psnr"]
    assert got[("uniform", a.label)]["bd_feature_psnr"] == pytest.approx(-10.0, abs=0.5)
    assert got[("log", oracle.label)]["bd_feature_psnr"] == pytest.approx(-30.0, abs=0.5)
    assert got[("log", a.label)]["bd_task"] == pytest.approx(got[("log", a.label)]["bd_feature_psnr"])
    assert got[("log", a.label)]["normalization"] == "none" and got[("log", b.label)]["normalization"] == "zscore"
    assert [r["kind"] for r in table[:4]] == ["anchor", "grid", "grid", "oracle"]
    # the same variant across settings: uniform's reversed order costs 0.9/0.8 of log's bits -> +12.5 %
    assert got[("uniform", a.label)]["bd_vs_first_setting"] == pytest.approx(12.5, abs=0.5)
    assert got[("uniform", "identity")]["bd_vs_first_setting"] == pytest.approx(0.0, abs=1e-9)
    assert got[("uniform", a.label)]["bd_task_vs_first_setting"] == pytest.approx(12.5, abs=0.5)
    assert got[("log", a.label)]["bd_vs_first_setting"] is None
    grid = ab.pivot(table, where={"quantizer": "log"})
    assert "correlation" in grid and "zscore" in grid and grid.count("-20.") == 2
    assert "quantizer uniform" in ab.format_ablation(table)


def test_table_leaves_incomplete_curves_out_with_a_note(tmp_path):
    plan, c = _plan(tmp_path)
    s = ab.CodingSetting("log", "{}", "faster", "vvenc", "temporal")
    plan.add(s, ab.Variant("identity", "anchor", "identity"), np.arange(c))
    v = ab.Variant("rev", "grid", "r")
    plan.add(s, v, np.arange(c)[::-1].copy())
    rows = [r for r in _rows(plan, lambda j: (int(2.0 ** ((50 - j.qp) / 3) * 1000), 60.0 - j.qp))
            if not (r["order"] == "rev" and r["qp"] in (37, 42) and r["image_id"] == "img0")]  # two cells never finished
    table, notes = ab.ablation_table(plan, rows, MeanTask())
    rev = next(r for r in table if r["variant"] == "rev")
    assert rev["bd_feature_psnr"] is None and rev["qps"] == [47, 52]
    assert any("rev" in n and "QP 37 left out, 1 image(s)" in n for n in notes)
    assert "at least 4" in rev["note"]


# ----------------------------------------------------------------------------- end to end


def tiny(tmp_path, *extra):
    return [
        sys.executable, "-m", "studies.ablate", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
        "--model-arg", "short_side=96", "--model-arg", "window=64", "--model-arg", "window_stride=32",
        "--limit", "1", "--workers", "1", "--quiet", "--qps", *map(str, QPS),
        "--metrics", "correlation", "mse", "--normalizations", "none", "--solvers", "default", "--calib-sizes", "1", *extra,
    ]


@pytest.mark.slow
def test_ablate_writes_the_grid_and_a_rerun_recomputes_nothing(tmp_path):
    proc = subprocess.run(tiny(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    with open(out / "ablation.csv") as fh:
        table = list(csv.DictReader(fh))
    cells = {(r["kind"], r["variant"]) for r in table}
    assert cells == {
        ("anchor", "identity"), ("grid", "tsp-correlation/none/default"), ("grid", "tsp-mse/none/default"),
        ("fixed", "tsp-correlation (fixed)"), ("oracle", "tsp-correlation (per-image oracle)"), ("calib_size", "tsp-correlation @ k=1"),
    }
    for r in table:
        assert r["bd_feature_psnr"] not in ("", None), r
        assert r["quantizer"] == "log" and r["preset"] == "faster" and r["packing"] == "temporal"
    by = {r["variant"]: r for r in table}
    assert float(by["identity"]["bd_feature_psnr"]) == pytest.approx(0.0, abs=1e-9)

    # the BD-rate in the table is the one the stored cells give
    con = sqlite3.connect(out / "results.sqlite")
    rows = [json.loads(r) for (r,) in con.execute("SELECT row FROM results")]
    assert all(r["status"] == "ok" for r in rows)

    def curve(digest):
        pts = {}
        for r in rows:
            if r["order_digest"] == digest:
                bits, pix, psnr = pts.get(r["qp"], (0, 0, []))
                pts[r["qp"]] = (bits + r["bits"], pix + r["pixels"], psnr + [r["feature_psnr"]])
        return [pts[q][0] / pts[q][1] for q in QPS], [float(np.mean(pts[q][2])) for q in QPS]

    mse = by["tsp-mse/none/default"]
    expected = bd_rate(*curve(by["identity"]["order_digest"]), *curve(mse["order_digest"]))
    assert float(mse["bd_feature_psnr"]) == pytest.approx(expected, rel=1e-9)
    # one row per (image, order, QP): no cell coded twice; the fixed order shares the correlation cells
    pairs = {(r["image_id"], r["order_digest"]) for r in rows}
    assert len(rows) == len(QPS) * len(pairs)
    assert by["tsp-correlation (fixed)"]["order_digest"] == by["tsp-correlation/none/default"]["order_digest"]
    assert "per-image oracle" in proc.stdout and "calibration-size curve" in proc.stdout

    before = dict(con.execute("SELECT key, row FROM results"))
    again = subprocess.run(tiny(tmp_path), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"0 cells coded now, {len(before)} reused" in again.stderr
    assert dict(sqlite3.connect(out / "results.sqlite").execute("SELECT key, row FROM results")) == before
