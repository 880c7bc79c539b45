"""Side information in bpp, results.csv columns, calibration/test overlap, and the curve-overlap warning."""

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from eval.analysis.curves import build_curves
from eval.analysis.report import Report
from eval.data import SplitOverlapError, check_overlap, choose_splits
from eval.data import images as photos
from eval.pipeline.cell import Job, order_side_bits
from eval.study_folder import RESULT_COLUMNS, StudyFolder

ROOT = Path(__file__).resolve().parents[1]
QPS = (22, 27, 32, 37)


class MeanTask:
    name = "mean_score"

    def aggregate(self, stats):
        return float(np.mean([s["score"] for s in stats]))


def rows_for(order, scale=1.0, side_bits=None, psnr_shift=0.0, images=("a", "b")):
    rows = []
    for i, img in enumerate(images):
        for qp in QPS:
            r = {"image_id": img, "order": order, "quantizer": "q", "packing": "temporal", "codec": "c", "qp": qp,
                 "bits": scale * 10_000 * 2 ** ((37 - qp) / 5) * (1 + i), "pixels": 1000,
                 "feature_psnr": 50 - qp / 2 + i + psnr_shift, "task_stats": {"score": 60 - qp + psnr_shift}, "status": "ok"}
            if side_bits is not None:
                r["side_bits"] = side_bits
            rows.append(r)
    return rows


# ----------------------------------------------------------------------------------------- side bits

def test_side_bits_count_in_bpp():
    plain = build_curves(rows_for("tsp"), MeanTask())[0]
    with_side = build_curves(rows_for("tsp", side_bits=830), MeanTask())[0]
    zero = build_curves(rows_for("tsp", side_bits=0), MeanTask())[0]
    assert zero.bpp == plain.bpp  # side_bits = 0 (today's fixed orders) leaves bpp as it was
    for qp, b0, b1 in zip(plain.qp, plain.bpp, with_side.bpp):
        assert b1 == pytest.approx(b0 + 2 * 830 / 2000)  # (bits + side_bits) summed over images / pixels


def test_side_bits_move_the_bd_rate():
    rows = rows_for("identity") + rows_for("per-image", 0.8, side_bits=2000)
    free = Report.from_rows(rows_for("identity") + rows_for("per-image", 0.8), MeanTask(), ["a", "b"], replicates=0)
    paid = Report.from_rows(rows, MeanTask(), ["a", "b"], replicates=0)
    assert free.bd_rates()["per-image"]["feature_psnr"] == pytest.approx(-20.0, abs=1e-6)
    assert paid.bd_rates()["per-image"]["feature_psnr"] > -20.0 + 1.0


def test_job_row_carries_side_bits_and_a_permutation_costs_log2_factorial():
    job = Job(image_id="x", image_key="k", feature_path="f.npy", reference_path="r.npz", meta={"pixels": 100},
              order_name="identity", order=(0, 1, 2), quantizer={}, packing="temporal", codec="ffv1", qp=22,
              model={"name": "m"})
    assert job.describe()["side_bits"] == 0
    per_image = Job(**{**job.__dict__, "side_bits": order_side_bits(3)})
    assert per_image.describe()["side_bits"] == 3  # ceil(log2(3!)) = ceil(2.58)
    # signalled side bits make another cell (same bitstream, another rate); 0 keeps every existing key
    assert per_image.key != job.key
    assert Job(**{**job.__dict__, "side_bits": 0}).key == job.key
    assert order_side_bits(144) == 830 and order_side_bits(1) == 0 and order_side_bits(2) == 1


def test_results_csv_has_side_bits_and_cpu_seconds_and_stays_compact(tmp_path):
    for col in ("side_bits", "encode_cpu_seconds", "decode_cpu_seconds"):
        assert col in RESULT_COLUMNS
    rows = rows_for("identity", images=("a",))
    for r in rows:
        r.update(key=f"k{r['qp']}", encode_cpu_seconds=1.5, decode_cpu_seconds=0.25,
                 task_stats={"kl_sum": 1.0, "n": 3, "kl_windows": [0.2, 0.3, 0.5]})
    rows[0]["side_bits"] = 7
    folder = StudyFolder(tmp_path)
    path = folder.write_results(rows, RESULT_COLUMNS + ["encode_cpu_seconds"])  # repeated column written once
    with open(path, newline="") as f:
        header = next(csv.reader(f))
        f.seek(0)
        got = list(csv.DictReader(f))
    assert header.count("encode_cpu_seconds") == 1
    assert [r["side_bits"] for r in got] == ["7", "0", "0", "0"]  # rows stored before side_bits: 0
    assert got[0]["encode_cpu_seconds"] == "1.5" and got[0]["decode_cpu_seconds"] == "0.25"
    assert json.loads(got[0]["task_stats"]) == {"kl_sum": 1.0, "n": 3}  # per-window values stay in results.sqlite


# ----------------------------------------------------------------------------------------- calibration/test overlap

@pytest.fixture()
def two_folders(tmp_path):
    src = photos.sample_photos()
    calib, test = tmp_path / "calib", tmp_path / "test"
    calib.mkdir()
    test.mkdir()
    shutil.copy(src[0].path, calib / Path(src[0].path).name)
    shutil.copy(src[1].path, calib / Path(src[1].path).name)
    shutil.copy(src[2].path, test / Path(src[2].path).name)
    shutil.copy(src[1].path, test / ("renamed" + Path(src[1].path).suffix))  # the same photo under another name
    return calib, test, Path(src[1].path).name


def test_overlapping_splits_are_an_error_naming_the_images(two_folders):
    calib, test, shared = two_folders
    with pytest.raises(SplitOverlapError) as info:
        choose_splits(calib=str(calib), test=str(test))
    message = str(info.value)
    assert "\n" not in message and "renamed" in message and shared in message and "allow_overlap" in message


def test_overlap_allowed_explicitly(two_folders):
    calib, test, shared = two_folders
    c, t = choose_splits(calib=str(calib), test=str(test), allow_overlap=True)
    assert len(c) == 2 and len(t) == 2
    assert check_overlap(c, t, allow=True) == [(next(s.id for s in t if s.id.startswith("renamed")), shared)]


def test_default_split_has_no_overlap():
    calib, test = choose_splits()
    assert check_overlap(calib, test) == []


def test_overlap_is_a_one_line_error_on_the_command_line(two_folders, tmp_path):
    calib, test, _ = two_folders
    args = ["--calib", str(calib), "--test", str(test), "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"),
            "--quiet", "--workers", "1"]
    proc = subprocess.run([sys.executable, "-m", "studies.search_order", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("error: ") and "renamed" in last and "allow_overlap" in last


# ----------------------------------------------------------------------------------------- curve overlap warning

def test_curves_that_overlap_too_little_get_a_warning_in_the_summary():
    rows = rows_for("identity") + rows_for("shifted", 0.8, psnr_shift=-4.0) + rows_for("close", 0.9, psnr_shift=-0.5)
    report = Report.from_rows(rows, MeanTask(), ["a", "b"], replicates=50)
    summary = report.summary()
    # anchor feature PSNR spans 7.5 dB per image mean; shifted by 4 dB it covers 3.5 / 7.5 of it
    assert summary["overlap"]["shifted"]["feature_psnr"] == pytest.approx(3.5 / 7.5)
    assert summary["overlap"]["close"]["feature_psnr"] == pytest.approx(7.0 / 7.5)
    assert summary["overlap"]["identity"]["feature_psnr"] == pytest.approx(1.0)
    warned = summary["warnings"]
    assert any(w.startswith("shifted feature PSNR") and "47 %" in w for w in warned)
    assert any(w.startswith("shifted task") for w in warned)
    assert not any(w.startswith("close") or w.startswith("identity") for w in warned)
    assert report.bd_rates()["shifted"]["feature_psnr"] is not None  # still computed, but flagged


def test_threshold_is_adjustable():
    rows = rows_for("identity") + rows_for("close", 0.9, psnr_shift=-0.5)
    assert Report.from_rows(rows, MeanTask(), ["a", "b"], replicates=0, min_overlap=0.95).warnings
    assert not Report.from_rows(rows, MeanTask(), ["a", "b"], replicates=0).warnings
