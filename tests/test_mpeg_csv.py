"""The MPEG-style per-QP CSV (CompressAI-Vision CTTC column order) written beside results.csv."""

import csv

import numpy as np
import pytest

from eval.analysis.report import Report
from eval.analysis.mpeg_csv import MPEG_COLUMNS, MPEG_CSV_COLUMNS, mpeg_rows
from eval.study_folder import StudyFolder

QPS = (22, 27, 32, 37)


class MeanTask:
    name = "mean_score"

    def aggregate(self, stats):
        return float(np.mean([s["score"] for s in stats]))


def rows_for(order, scale, images=("a", "b"), qps=QPS):
    rows = []
    for img_i, img in enumerate(images):
        for qp in qps:
            rows.append({
                "image_id": img, "order": order, "quantizer": "log", "packing": "temporal", "codec": "vvenc:preset=faster",
                "qp": qp, "bits": scale * 10_000 * 2 ** ((37 - qp) / 5) * (1 + img_i), "pixels": 1000,
                "feature_psnr": 50 - qp / 2 + img_i + scale, "task_stats": {"score": 60 - qp + scale}, "status": "ok",
            })
    return rows


@pytest.fixture
def report():
    rows = rows_for("identity", 1.0) + rows_for("tsp-correlation", 0.8) + rows_for("hand", 0.9)
    return Report.from_rows(rows, MeanTask(), images=["a", "b"], anchor="identity")


def test_columns_follow_compressai_vision_cttc_order():
    assert MPEG_COLUMNS == ["Dataset", "qp", "avg_bpp", "end_accuracy", "y_psnr"]
    assert MPEG_CSV_COLUMNS[:5] == MPEG_COLUMNS


def test_one_row_per_order_and_qp_with_the_curves_values(report):
    rows = mpeg_rows(report)
    assert len(rows) == len(report.curves) * len(QPS) == 12
    by = {(r["Dataset"], r["qp"]): r for r in rows}
    assert len(by) == 12
    for curve in report.curves:
        qps = [r["qp"] for r in rows if r["Dataset"] == curve.label]
        assert qps == sorted(QPS)  # ascending within an order
        for i, qp in enumerate(curve.qp):
            r = by[(curve.label, qp)]
            assert r["avg_bpp"] == curve.bpp[i]
            assert r["y_psnr"] == curve.feature_psnr[i]
            assert r["end_accuracy"] == curve.task[i]
            assert (r["codec"], r["quantizer"], r["packing"]) == ("vvenc:preset=faster", "log", "temporal")
            assert r["n_images"] == 2 and r["task_metric"] == "mean_score"


def test_study_folder_writes_it_beside_results_csv(tmp_path, report):
    folder = StudyFolder(tmp_path / "out")
    path = folder.write_mpeg_csv(report)
    assert path == folder.mpeg_csv == tmp_path / "out" / "mpeg_per_qp.csv"
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        body = list(reader)
    assert header == MPEG_CSV_COLUMNS
    assert len(body) == 12
    curves = {c.label: c for c in report.curves}
    for line in body:
        row = dict(zip(header, line))
        c = curves[row["Dataset"]]
        i = c.qp.index(int(row["qp"]))
        # written with full precision: the text reads back as the curve's value
        assert float(row["avg_bpp"]) == c.bpp[i]
        assert float(row["y_psnr"]) == c.feature_psnr[i]
        assert float(row["end_accuracy"]) == c.task[i]


def test_missing_task_curve_leaves_end_accuracy_empty(tmp_path):
    rep = Report.from_rows(rows_for("identity", 1.0), None, images=["a", "b"])
    rows = mpeg_rows(rep)
    assert len(rows) == 4 and all(r["end_accuracy"] is None for r in rows)
    path = StudyFolder(tmp_path).write_mpeg_csv(rep)
    with open(path, newline="") as fh:
        assert all(r["end_accuracy"] == "" for r in csv.DictReader(fh))


def test_incomplete_qp_is_not_exported():
    rows = rows_for("identity", 1.0) + [r for r in rows_for("tsp", 0.8) if not (r["image_id"] == "b" and r["qp"] == 37)]
    rep = Report.from_rows(rows, MeanTask(), images=["a", "b"])
    out = mpeg_rows(rep)
    assert [r["qp"] for r in out if r["Dataset"] == "tsp"] == [22, 27, 32]
    assert [r["qp"] for r in out if r["Dataset"] == "identity"] == list(QPS)
