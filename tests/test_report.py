"""Aggregation of rows into RD curves and BD-rate tables."""

import math

import numpy as np
import pytest

from eval.analysis.curves import bd_table, build_curves, format_table


class MeanTask:
    name = "mean_score"

    def aggregate(self, stats):
        return float(np.mean([s["score"] for s in stats]))


def rows_for(order, scale, images=("a", "b"), qps=(22, 27, 32, 37)):
    rows = []
    for img_i, img in enumerate(images):
        for qp in qps:
            bits = scale * 10_000 * 2 ** ((37 - qp) / 5) * (1 + img_i)
            rows.append({
                "image_id": img, "order": order, "quantizer": "q", "packing": "temporal", "codec": "c", "qp": qp,
                "bits": bits, "pixels": 1000, "feature_psnr": 50 - qp / 2 + img_i, "task_stats": {"score": 60 - qp},
                "status": "ok",
            })
    return rows


def test_bpp_is_total_bits_over_total_pixels_and_psnr_is_mean():
    curves = build_curves(rows_for("identity", 1.0), task=MeanTask())
    (c,) = curves
    assert c.qp == [22, 27, 32, 37]
    expected_bpp_37 = (10_000 + 20_000) / 2000
    assert c.bpp[-1] == pytest.approx(expected_bpp_37)
    assert c.feature_psnr[-1] == pytest.approx(np.mean([50 - 18.5, 51 - 18.5]))
    assert c.task == [38.0, 33.0, 28.0, 23.0]


def test_same_quality_fewer_bits_gives_that_bd_rate():
    rows = rows_for("identity", 1.0) + rows_for("tsp", 0.8)
    table, notes = bd_table(build_curves(rows, task=MeanTask()))
    tsp = next(t for t in table if t["order"] == "tsp")
    ident = next(t for t in table if t["order"] == "identity")
    assert tsp["bd_feature_psnr"] == pytest.approx(-20.0, abs=1e-6)
    assert tsp["bd_task"] == pytest.approx(-20.0, abs=1e-6)
    assert ident["bd_feature_psnr"] == pytest.approx(0.0, abs=1e-9)
    assert notes == []
    text = format_table(table, task_name="mean_score")
    assert "-20.00" in text and "bpp@22" in text


def test_incomplete_qp_is_left_out_and_noted():
    rows = rows_for("identity", 1.0) + [r for r in rows_for("tsp", 0.8) if not (r["image_id"] == "b" and r["qp"] == 37)]
    curves = build_curves(rows, task=MeanTask())
    tsp = next(c for c in curves if c.label == "tsp")
    assert tsp.qp == [22, 27, 32] and tsp.missing == {37: 1}
    table, notes = bd_table(curves)
    # 3 points are too few for a BD-rate: refused with a reason, not fitted
    assert next(t for t in table if t["order"] == "tsp")["bd_feature_psnr"] is None
    assert any("QP 37 left out" in n for n in notes)
    assert any("tsp feature_psnr" in n for n in notes)


def test_non_monotone_curve_is_flagged_not_fitted():
    rows = rows_for("identity", 1.0) + rows_for("bad", 1.0)
    for r in rows:
        if r["order"] == "bad" and r["qp"] == 27:
            r["feature_psnr"] = 10.0  # quality drops although rate rises
    table, notes = bd_table(build_curves(rows, task=MeanTask()))
    bad = next(t for t in table if t["order"] == "bad")
    assert bad["bd_feature_psnr"] is None
    assert any(n.startswith("bad feature_psnr") for n in notes)
    assert bad["bd_task"] is not None and not math.isnan(bad["bd_task"])


def test_missing_anchor_is_reported():
    table, notes = bd_table(build_curves(rows_for("tsp", 1.0)))
    assert table[0]["bd_feature_psnr"] is None
    assert any("no 'identity' curve" in n for n in notes)


def test_report_carries_intervals_into_table_summary_and_figure_data():
    from eval.analysis.report import Report

    rows = rows_for("identity", 1.0) + rows_for("tsp", 0.8)
    report = Report.from_rows(rows, MeanTask(), ["a", "b"], replicates=100)
    text = report.format()
    assert "-20.00 [-20.0, -20.0]" in text and "[95% CI]" in text
    summary = report.summary({"model": "m"})
    assert summary["bd_rate"]["tsp"]["feature_psnr_ci"] == pytest.approx([-20.0, -20.0])
    assert summary["bd_rate"]["tsp"]["task_ci"] == pytest.approx([-20.0, -20.0])
    assert summary["bd_rate"]["identity"]["task_ci"] == pytest.approx([0.0, 0.0])
    assert set(summary["bd_rate"]["tsp"]) == {"feature_psnr", "feature_psnr_ci", "task", "task_ci"}
    assert summary["bootstrap"]["replicates"] == 100 and summary["bootstrap"]["unit"] == "images"
    assert summary["bootstrap"]["failed"]["tsp"] == {"feature_psnr": 0, "task": 0}
    assert summary["overlap"]["tsp"] == {"feature_psnr": pytest.approx(1.0), "task": pytest.approx(1.0)}
    assert summary["warnings"] == [] and summary["model"] == "m"
    assert report.bd_rates() == summary["bd_rate"]


def test_per_image_bd_rates_one_row_per_image_and_order():
    from eval.analysis.curves import per_image_bd

    rows = rows_for("identity", 1.0) + rows_for("tsp", 0.8)
    for r in rows:  # image b gains nothing
        if r["order"] == "tsp" and r["image_id"] == "b":
            r["bits"] /= 0.8
    got = {(p["image_id"], p["order"]): p for p in per_image_bd(rows, MeanTask(), ["a", "b"])}
    assert set(got) == {("a", "identity"), ("a", "tsp"), ("b", "identity"), ("b", "tsp")}
    assert got[("a", "tsp")]["bd_feature_psnr"] == pytest.approx(-20.0, abs=1e-6)
    assert got[("b", "tsp")]["bd_feature_psnr"] == pytest.approx(0.0, abs=1e-6)
    assert got[("a", "identity")]["bd_task"] == pytest.approx(0.0, abs=1e-9)


def test_a_task_score_saturated_at_its_top_keeps_only_the_cheapest_top_point():
    """AP against the uncoded detector's own boxes reaches 1 at several low QPs: only the cheapest such point counts."""
    from eval.analysis.curves import Curve, bd_between

    anchor = Curve(setup={"order": "identity"}, qp=[17, 22, 27, 32, 37], bpp=[9.0, 6.5, 4.5, 2.9, 1.4],
                   feature_psnr=[50, 47, 44, 41, 38], task=[1.0, 1.0, 0.99, 0.97, 0.94])
    test = Curve(setup={"order": "tsp"}, qp=[17, 22, 27, 32, 37], bpp=[8.5, 6.0, 4.0, 2.5, 1.2],
                 feature_psnr=[50, 47, 44, 41, 38], task=[1.0, 0.995, 0.99, 0.97, 0.94])
    notes = []
    value = bd_between(anchor, test, "task", notes=notes)
    assert value is not None and value < 0 and not notes
    dropped = Curve(setup={"order": "identity"}, qp=[22, 27, 32, 37], bpp=[6.5, 4.5, 2.9, 1.4],
                    feature_psnr=[47, 44, 41, 38], task=[1.0, 0.99, 0.97, 0.94])
    assert value == pytest.approx(bd_between(dropped, test, "task"))  # QP 17 (the dearer 1.0) is left out
    below = Curve(setup={"order": "x"}, qp=[22, 27, 32, 37], bpp=[6.5, 4.5, 2.9, 1.4], feature_psnr=[47, 44, 41, 38],
                  task=[0.99, 0.97, 0.97, 0.94])
    assert bd_between(anchor, below, "task", notes=notes) is None and "same quality" in notes[0]  # a tie below the top
