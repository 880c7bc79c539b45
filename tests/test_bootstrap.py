"""The paired bootstrap behind every BD-rate's interval: known answers on synthetic rows."""

import numpy as np
import pytest

from eval.analysis.bootstrap import paired_bootstrap, percentile_interval
from eval.analysis.curves import build_curves
from eval.analysis.report import Report
from eval.tasks.classification import KLFidelity

QPS = (22, 27, 32, 37)
IMAGES = ("a", "b", "c", "d", "e")


class MeanTask:
    """A task without per-unit data: the set score is the mean of per-image scores."""

    name = "mean_score"

    def aggregate(self, stats):
        return float(np.mean([s["score"] for s in stats]))


def rows_for(order, scale=1.0, images=IMAGES, qps=QPS, noise=0.0, seed=0, task="mean", windows=8):
    """One row per image x QP: bits fall and quality falls with QP; ``scale`` multiplies the bits."""
    rng = np.random.default_rng(seed)
    rows = []
    for i, img in enumerate(images):
        for qp in qps:
            bits = scale * 10_000 * 2 ** ((37 - qp) / 5) * (1 + 0.3 * i) * (1 + noise * rng.standard_normal())
            if task == "mean":
                stats = {"score": 60.0 - qp + 0.5 * i}
            else:  # KL fidelity with per-window KL that falls with the rate
                kl = 0.01 * 2 ** ((qp - 22) / 3) * (1 + 0.2 * np.arange(windows) / windows) * (1 + 0.1 * i)
                stats = {"kl_sum": float(kl.sum()), "n": windows, "top1_agree": windows, "top5_agree": windows,
                         "kl_windows": [float(v) for v in kl]}
            rows.append({"image_id": img, "order": order, "quantizer": "q", "packing": "temporal", "codec": "c",
                         "qp": qp, "bits": bits, "pixels": 1000, "feature_psnr": 50 - qp / 2 + i, "task_stats": stats,
                         "status": "ok"})
    return rows


def key(order):
    return (order, "q", "temporal", "c")


@pytest.mark.parametrize("task, kind", [(MeanTask(), "mean"), (KLFidelity(), "kl")])
def test_identical_curves_give_the_interval_zero_zero(task, kind):
    rows = rows_for("identity", task=kind) + rows_for("same", task=kind)
    boot = paired_bootstrap(rows, task, IMAGES, replicates=200, seed=1)
    for m in ("feature_psnr", "task"):
        lo, hi = boot.interval(key("same"), m)
        assert lo == pytest.approx(0.0, abs=1e-9) and hi == pytest.approx(0.0, abs=1e-9)
        assert boot.failed(key("same"), m) == 0
    assert boot.unit == ("images and windows" if kind == "kl" else "images")


@pytest.mark.parametrize("task, kind", [(MeanTask(), "mean"), (KLFidelity(), "kl")])
def test_four_fifths_of_the_bits_everywhere_gives_minus_20_percent(task, kind):
    rows = rows_for("identity", task=kind) + rows_for("tsp", 0.8, task=kind)
    boot = paired_bootstrap(rows, task, IMAGES, replicates=200, seed=2)
    for m in ("feature_psnr", "task"):
        lo, hi = boot.interval(key("tsp"), m)
        assert lo == pytest.approx(-20.0, abs=1e-6) and hi == pytest.approx(-20.0, abs=1e-6)


def test_noisy_bits_give_an_interval_around_the_point_estimate_and_the_same_one_again():
    rows = rows_for("identity", noise=0.05, seed=3) + rows_for("tsp", 0.8, noise=0.05, seed=4)
    report = Report.from_rows(rows, MeanTask(), IMAGES, replicates=500, seed=0)
    t = next(t for t in report.table if t["order"] == "tsp")
    lo, hi = t["bd_feature_psnr_ci"]
    assert lo < t["bd_feature_psnr"] < hi
    assert -30 < lo and hi < -10 and hi - lo > 0.5  # around -20 %, and not degenerate
    again = Report.from_rows(rows, MeanTask(), IMAGES, replicates=500, seed=0)
    assert next(x for x in again.table if x["order"] == "tsp")["bd_feature_psnr_ci"] == (lo, hi)  # fixed seed


def test_resampled_curves_use_build_curves_aggregation():
    """A replicate that draws every image once is the point estimate itself (same aggregation)."""
    rows = rows_for("identity", noise=0.05, seed=5) + rows_for("tsp", 0.9, noise=0.05, seed=6)
    curves = build_curves(rows, MeanTask(), images=["a"])
    one = paired_bootstrap([r for r in rows if r["image_id"] == "a"], MeanTask(), ["a"], replicates=3)
    from eval.analysis.curves import bd_between

    ident, tsp = (next(c for c in curves if c.label == o) for o in ("identity", "tsp"))
    expected = bd_between(ident, tsp, "feature_psnr", match_qps=True)
    assert np.allclose(one.values[key("tsp")]["feature_psnr"], expected)


def test_failed_replicates_are_counted_and_left_out():
    """Image 'b' alone has a non-monotone test curve: replicates that draw only 'b' cannot be fitted."""
    rows = rows_for("identity", images=("a", "b")) + rows_for("tsp", 0.8, images=("a", "b"))
    for r in rows:
        if r["order"] == "tsp" and r["image_id"] == "b" and r["qp"] == 27:
            r["feature_psnr"] = 34.0  # below its own 35.0 at QP 32; averaged with 'a' still monotone
    report = Report.from_rows(rows, MeanTask(), ["a", "b"], replicates=400, seed=0)
    t = next(t for t in report.table if t["order"] == "tsp")
    assert t["bd_feature_psnr"] is not None
    failed = t["bd_feature_psnr_failed"]
    assert 50 < failed < 160  # about a quarter of the replicates draw 'b' twice
    assert t["bd_feature_psnr_ci"] is not None
    assert any(w.startswith("tsp feature_psnr") and f"{failed} of 400 bootstrap replicates" in w for w in report.warnings)
    assert report.summary()["bootstrap"]["failed"]["tsp"]["feature_psnr"] == failed


def test_window_stage_changes_little_when_windows_agree():
    """Equal per-window KL inside every image: resampling windows changes no score, so both schemes agree."""
    rows = rows_for("identity", task="kl", noise=0.05, seed=7) + rows_for("tsp", 0.85, task="kl", noise=0.05, seed=8)
    for r in rows:
        kl = r["task_stats"]["kl_windows"]
        flat = [float(np.mean(kl))] * len(kl)
        r["task_stats"].update(kl_windows=flat, kl_sum=float(sum(flat)))
    both = paired_bootstrap(rows, KLFidelity(), IMAGES, replicates=300, seed=9, windows=True)
    images_only = paired_bootstrap(rows, KLFidelity(), IMAGES, replicates=300, seed=9, windows=False)
    assert both.unit == "images and windows" and images_only.unit == "images"
    # the window draws use the same generator, so the image draws differ between the two: compare loosely
    lo_b, hi_b = both.interval(key("tsp"), "task")
    lo_i, hi_i = images_only.interval(key("tsp"), "task")
    assert lo_b == pytest.approx(lo_i, abs=1.5) and hi_b == pytest.approx(hi_i, abs=1.5)


def test_rows_without_window_data_fall_back_to_images():
    rows = rows_for("identity", task="kl") + rows_for("tsp", 0.8, task="kl")
    for r in rows[:3]:
        del r["task_stats"]["kl_windows"]
    assert paired_bootstrap(rows, KLFidelity(), IMAGES, replicates=20).unit == "images"


def test_kl_fidelity_resamples_windows():
    task = KLFidelity()
    stats = {"kl_sum": 0.6, "n": 3, "top1_agree": 3, "top5_agree": 3, "kl_windows": [0.1, 0.2, 0.3]}
    assert task.unit_count(stats) == 3
    assert task.unit_count({"kl_sum": 1.0, "n": 2}) is None
    drawn = task.resample_units(stats, [2, 2, 0])
    assert drawn == {"kl_sum": pytest.approx(0.7), "n": 3}
    assert task.aggregate([drawn]) == pytest.approx(-10 * np.log10(0.7 / 3))
    out = np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    ref = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.5]])
    s = task.image_stats(out, ref)
    assert len(s["kl_windows"]) == 2 and sum(s["kl_windows"]) == pytest.approx(s["kl_sum"], rel=1e-5)


def test_percentile_interval_ignores_failures_and_none_when_all_failed():
    assert percentile_interval([np.nan, 1.0, 2.0, 3.0, None], level=1.0) == (1.0, 3.0)
    assert percentile_interval([np.nan, np.nan]) is None


def test_no_replicates_means_no_intervals():
    rows = rows_for("identity") + rows_for("tsp", 0.8)
    report = Report.from_rows(rows, MeanTask(), IMAGES, replicates=0)
    assert report.bootstrap is None
    assert report.bd_rates()["tsp"] == {"feature_psnr": pytest.approx(-20.0), "task": pytest.approx(-20.0)}
    assert "[" not in report.format()


def test_block_draw_takes_runs_of_consecutive_items():
    from eval.analysis.bootstrap import block_draw

    rng = np.random.default_rng(0)
    for n, block in ((64, 8), (10, 3), (5, 9)):
        idx = block_draw(rng, n, block)
        assert len(idx) == n and idx.min() >= 0 and idx.max() < n
        runs = [idx[i:i + min(block, n)] for i in range(0, n, min(block, n))]
        assert all(np.all(np.diff(r) == 1) for r in runs)  # each run is consecutive
    starts = {int(block_draw(rng, 64, 8)[0]) for _ in range(200)}
    assert starts <= set(range(57)) and len(starts) > 30  # any start 0..n-block


def test_block_bootstrap_widens_the_interval_of_autocorrelated_images():
    """Images whose BD-rates drift slowly in time (neighbours alike): single-image draws understate the spread."""
    from eval.analysis.bootstrap import paired_bootstrap

    rows, images = [], [f"f{i:03d}" for i in range(48)]
    gain = {img: 0.6 + 0.3 * np.sin(i / 48 * 2 * np.pi) for i, img in enumerate(images)}  # a slow drift over time
    for img in images:
        for order, scale in (("identity", 1.0), ("tsp", gain[img])):
            for k, qp in enumerate((22, 27, 32, 37)):
                rows.append({"image_id": img, "order": order, "qp": qp, "bits": int(8000 * scale * 2 ** -k) + 1,
                             "pixels": 1000, "feature_psnr": 40.0 - 3 * k, "quantizer": "q", "packing": "t", "codec": "c",
                             "side_bits": 0, "status": "ok"})
    width = {}
    for block in (1, 12):  # 48 images: 4 runs of 12
        boot = paired_bootstrap(rows, None, images, replicates=300, block=block)
        key = next(k for k in boot.values if k[0] == "tsp")
        lo, hi = boot.interval(key, "feature_psnr")
        width[block] = hi - lo
    assert boot.unit == "images in blocks of 12 consecutive"
    assert width[12] > 1.3 * width[1]


def test_block_longer_than_a_quarter_of_the_images_is_shortened():
    """One run of all the images would redraw the sample itself: a point, not an interval."""
    from eval.analysis.bootstrap import paired_bootstrap

    rows = []
    for i in range(8):
        for order, scale in (("identity", 1.0), ("tsp", 0.8 + 0.05 * (i % 3))):
            for k, qp in enumerate((22, 27, 32, 37)):
                rows.append({"image_id": f"f{i}", "order": order, "qp": qp, "bits": int(8000 * scale * 2 ** -k) + 1,
                             "pixels": 1000, "feature_psnr": 40.0 - 3 * k, "quantizer": "q", "packing": "t", "codec": "c",
                             "side_bits": 0, "status": "ok"})
    boot = paired_bootstrap(rows, None, [f"f{i}" for i in range(8)], replicates=100, block=8)
    assert boot.unit == "images in blocks of 2 consecutive"
    lo, hi = boot.interval(next(k for k in boot.values if k[0] == "tsp"), "feature_psnr")
    assert hi - lo > 0.5
