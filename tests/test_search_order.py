"""End to end: the search_order study on a tiny configuration, its outputs, resume and bad input."""

import csv
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from eval.data import images as datasets

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


def tiny_args(tmp_path, *extra):
    """Two calibration and two test photos at a 160 px short side (40 px feature maps: the smallest VVenC through ffmpeg codes reliably at QP 22), real VVenC, 4 QPs."""
    return [
        "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
        "--model-arg", "short_side=160", "--model-arg", "window=64", "--model-arg", "window_stride=32",
        "--limit", "2", "--workers", "1", "--quiet", "--qps", "22", "27", "32", "37",
        "--orders", "identity", "tsp-correlation", "--no-bundled-orders", "--bootstrap", "400",
        "--compare-quantizers", "none", "--compare-pipelines", "none", *extra,
    ]


# the study fixture's orders: the anchor, the control and the learned order (plus the hand-made file)
STUDY_ORDERS = ("--orders", "identity", "random", "tsp-correlation")


def run_study(args):
    return subprocess.run([sys.executable, "-m", "studies.search_order", *args], cwd=ROOT, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("study")
    order_file = tmp / "hand.txt"
    order_file.write_text(" ".join(str(i) for i in reversed(range(144))))
    proc = run_study(tiny_args(tmp, "--order-file", f"hand={order_file}", *STUDY_ORDERS))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return tmp, proc


def test_outputs_are_complete(study):
    tmp, proc = study
    out = tmp / "out"
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 2 * 4 * 4  # header + images x orders x QPs
    summary = json.loads((out / "summary.json").read_text())
    assert summary["anchor"] == "identity"
    assert set(summary["bd_rate"]) == {"identity", "random", "tsp-correlation", "hand"}
    for order, bd in summary["bd_rate"].items():
        assert set(bd) == {"feature_psnr", "feature_psnr_ci", "task", "task_ci"}
        for m in ("feature_psnr", "task"):
            if bd[m] is not None:
                lo, hi = bd[f"{m}_ci"]
                assert lo <= hi
    assert summary["bd_rate"]["identity"]["feature_psnr"] == pytest.approx(0.0, abs=1e-9)
    assert summary["bd_rate"]["identity"]["feature_psnr_ci"] == pytest.approx([0.0, 0.0], abs=1e-9)
    assert summary["bootstrap"]["replicates"] == 400 and summary["bootstrap"]["unit"] == "images and windows"
    assert set(summary["overlap"]) == set(summary["bd_rate"]) and isinstance(summary["warnings"], list)
    assert {"package", "python", "libraries", "ffmpeg", "encoder", "cpu", "threads"} <= set(summary["environment"])
    assert summary["environment"]["threads"]["workers"] == 1
    computed_on = summary["environment"]["features_computed_on"]
    assert computed_on["test"] == {summary["environment"]["cpu"]["model"]: 2}  # this machine computed both test images
    assert sum(computed_on["calibration"].values()) == len(summary["calibration"])
    per_image = list(csv.DictReader((out / "bd_rate_per_image.csv").open()))
    assert len(per_image) == 2 * 4 and {r["order"] for r in per_image} == set(summary["bd_rate"])
    assert "[95% CI]" in proc.stdout
    assert (out / "rd_curves.png").stat().st_size > 10_000
    assert "BD feat-PSNR" in proc.stdout and "tsp-correlation" in proc.stdout
    saved = json.loads((out / "orders" / "tsp-correlation.json").read_text())
    assert sorted(saved["order"]) == list(range(144))
    assert saved["provenance"]["model"] == "mobilenet_v2"


def test_rows_hold_real_measurements(study):
    tmp, _ = study
    con = sqlite3.connect(tmp / "out" / "results.sqlite")
    rows = [json.loads(r) for (r,) in con.execute("SELECT row FROM results")]
    assert all(r["status"] == "ok" for r in rows)
    by = {(r["image_id"], r["order"], r["qp"]): r for r in rows}
    img = rows[0]["image_id"]
    # coarser quantisation: fewer bits and lower fidelity
    assert by[(img, "identity", 22)]["bits"] > by[(img, "identity", 37)]["bits"]
    assert by[(img, "identity", 22)]["feature_psnr"] > by[(img, "identity", 37)]["feature_psnr"]
    # bitstreams kept, their size is what was counted
    kept = tmp / "out" / "bitstreams" / f"{rows[0]['key']}.bin"
    assert kept.stat().st_size * 8 == rows[0]["bits"]


def test_results_csv_counts_side_bits_and_cpu_seconds(study):
    tmp, _ = study
    rows = list(csv.DictReader((tmp / "out" / "results.csv").open()))
    for r in rows:
        assert r["side_bits"] == "0"  # fixed orders and a fixed quantizer: nothing signalled per image
        assert float(r["bpp"]) == pytest.approx((int(r["bits"]) + int(r["side_bits"])) / int(r["pixels"]))
        assert float(r["encode_cpu_seconds"]) > 0 and float(r["decode_cpu_seconds"]) >= 0
        assert "kl_windows" not in json.loads(r["task_stats"])  # per-window KL stays in results.sqlite


# Direction, measured on this fixed configuration (2 test photos at 160 px, VVenC faster, QP 22-37,
# 400 replicates): tsp-correlation -10.75 % feature-PSNR BD-rate [-10.90, -10.75]; random (seed 0)
# +1.40 % [+0.86, +1.83]. The thresholds leave several points of margin.
LEARNED_MAX = -7.0  # tsp-correlation's feature-PSNR BD-rate and its interval's upper end must be below this
CONTROL_BAND = 2.5  # the random order's whole interval must lie within +-this (no gain, no loss worth the name)


def test_learned_order_beats_identity_by_a_clear_margin(study):
    tmp, _ = study
    bd = json.loads((tmp / "out" / "summary.json").read_text())["bd_rate"]["tsp-correlation"]
    assert bd["feature_psnr"] < LEARNED_MAX
    assert bd["feature_psnr_ci"][1] < LEARNED_MAX  # the whole interval, not just the point
    assert bd["feature_psnr_ci"][1] < bd_random_low(tmp)  # and clearly apart from the control's


def bd_random_low(tmp):
    return json.loads((tmp / "out" / "summary.json").read_text())["bd_rate"]["random"]["feature_psnr_ci"][0]


def test_random_order_gains_nothing(study):
    """The control: a random order's feature-PSNR interval stays near 0 (within +-CONTROL_BAND %).

    A fixed random permutation is not an exact null: on this configuration it loses about 1 % on
    both test photos (measured +1.40 [+0.86, +1.83]), so its interval need not contain 0; on the
    default study (4 photos at 512 px) it does (-0.28 [-1.1, +0.6]). What must never happen is a
    gain like a learned order's.
    """
    tmp, _ = study
    bd = json.loads((tmp / "out" / "summary.json").read_text())["bd_rate"]["random"]
    lo, hi = bd["feature_psnr_ci"]
    assert -CONTROL_BAND < lo <= hi < CONTROL_BAND
    assert abs(bd["feature_psnr"]) < CONTROL_BAND


def test_rerun_recomputes_nothing(study):
    tmp, _ = study
    con = sqlite3.connect(tmp / "out" / "results.sqlite")
    before = dict(con.execute("SELECT key, row FROM results"))
    order_file = tmp / "hand.txt"
    proc = run_study(tiny_args(tmp, "--order-file", f"hand={order_file}", *STUDY_ORDERS))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "0 cells coded now, 32 reused" in proc.stderr
    after = dict(sqlite3.connect(tmp / "out" / "results.sqlite").execute("SELECT key, row FROM results"))
    assert after == before


@pytest.mark.parametrize(
    "content, message",
    [
        ("0 1 1" + "".join(f" {i}" for i in range(3, 144)), "appears 2 times"),
        (" ".join(str(i) for i in range(143)), "143"),
        ("[0, 1, 2]", "144"),
    ],
)
def test_bad_order_file_is_one_line_error(study, content, message):
    tmp, _ = study
    bad = tmp / "bad.txt"
    bad.write_text(content)
    proc = run_study(tiny_args(tmp, "--order-file", str(bad)))
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines[-1].startswith("error: ") and message in lines[-1]
    assert "Traceback" not in proc.stderr


def test_unreadable_image_is_one_line_error(tmp_path):
    folder = tmp_path / "imgs"
    folder.mkdir()
    for s in datasets.sample_photos()[:2]:
        shutil.copy(s.path, folder / Path(s.path).name)
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    proc = run_study(["--images", str(folder), "--out", str(tmp_path / "o"), "--cache-dir", str(tmp_path / "c"), "--quiet", "--workers", "1"])
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("error: ") and "broken.png" in last


def test_missing_ffmpeg_is_one_line_error(tmp_path):
    import os

    env = dict(os.environ, FCM_FFMPEG=str(tmp_path / "no-ffmpeg-here"))
    proc = subprocess.run(
        [sys.executable, "-m", "studies.search_order", *tiny_args(tmp_path)], cwd=ROOT, capture_output=True, text=True, env=env, timeout=300
    )
    assert proc.returncode == 2
    last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("error: ") and "ffmpeg" in last.lower() and "FCM_FFMPEG" in last


def test_ctrl_c_then_rerun_keeps_finished_rows(study):
    import signal
    import time

    tmp, _ = study
    args = tiny_args(tmp)
    args[args.index("--out") + 1] = str(tmp / "interrupted")
    db = tmp / "interrupted" / "results.sqlite"
    proc = subprocess.Popen([sys.executable, "-m", "studies.search_order", *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 300
    while time.time() < deadline:
        if db.exists():
            try:
                if sqlite3.connect(db).execute("SELECT COUNT(*) FROM results WHERE status='ok'").fetchone()[0] >= 3:
                    break
            except sqlite3.OperationalError:
                pass
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err[-2000:]
    assert "run the same command again to resume" in err
    kept = dict(sqlite3.connect(db).execute("SELECT key, row FROM results WHERE status='ok'"))
    assert 3 <= len(kept) < 16
    again = run_study(args)
    assert again.returncode == 0, again.stderr[-2000:]
    assert f"{16 - len(kept)} cells coded now, {len(kept)} reused" in again.stderr
    after = dict(sqlite3.connect(db).execute("SELECT key, row FROM results WHERE status='ok'"))
    assert all(after[k] == v for k, v in kept.items())
    assert len(after) == 16


def test_compared_quantizer_gets_matched_qps_and_bd_rate_vs_paper(tmp_path):
    """--compare-quantizers: QPs matched so the curves overlap, BD-rates against its own identity and the paper's pipeline."""
    args = tiny_args(tmp_path)
    i = args.index("--compare-quantizers")
    args[i + 1] = "recommended"
    i = args.index("--compare-pipelines")
    del args[i:i + 2]  # the default: MPEG's anchor is coded too
    proc = run_study(args + ["--bootstrap", "100"])
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = tmp_path / "out"
    summary = json.loads((out / "summary.json").read_text())
    runs = {"paper/identity", "paper/tsp-correlation", "recommended/identity", "recommended/tsp-correlation",
            "mpeg-anchor/identity"}
    assert summary["bd_rate_vs_paper_anchor"] == "paper/identity" and set(summary["bd_rate_vs_paper"]) == runs
    # every run against MPEG's anchor too; the anchor (global min-max 10-bit, one tiled intra frame per image)
    # beats the paper's 8-bit one-channel-per-frame pipeline on feature PSNR, as on the full default study
    assert summary["bd_rate_vs_anchor_anchor"] == "mpeg-anchor/identity" and set(summary["bd_rate_vs_anchor"]) == runs
    assert summary["bd_rate_vs_anchor"]["mpeg-anchor/identity"]["feature_psnr"] == pytest.approx(0.0, abs=1e-9)
    assert len(summary["warnings"]) == len(set(summary["warnings"]))  # the overlapping reports' warnings, each once
    assert summary["bd_rate_vs_paper"]["mpeg-anchor/identity"]["feature_psnr"] < -10.0
    assert summary["bd_rate_vs_anchor"]["paper/identity"]["feature_psnr"] > 10.0
    anchor_rows = [r for r in csv.DictReader((out / "results.csv").open()) if r["packing"].startswith("tiled")]
    assert anchor_rows and {json.loads(r["quantizer"])["name"] for r in anchor_rows} == {"uniform"}
    assert {int(r["qp"]) for r in anchor_rows} == set(summary["qp_match"]["mpeg-anchor"]["qps"])
    assert summary["quantizers"]["paper"]["quantizer"]["name"] == "log"
    assert summary["quantizers"]["recommended"]["quantizer"]["name"] == "channel"
    match = summary["qp_match"]["recommended"]
    assert match["reached"] == {"high": True, "low": True} and match["qps"] == summary["quantizers"]["recommended"]["qps"]
    for run, bd in summary["bd_rate_vs_paper"].items():
        assert set(bd) >= {"feature_psnr", "feature_psnr_ci", "task", "task_ci", "overlap"}
        # matched QPs: every run's curve covers (nearly) all of the paper's quality range
        assert bd["overlap"]["feature_psnr"] >= 0.9 and bd["overlap"]["task"] >= 0.8, (run, bd["overlap"])
    assert summary["bd_rate_vs_paper"]["paper/identity"]["feature_psnr"] == pytest.approx(0.0, abs=1e-9)
    # the same order keeps its own-quantizer BD-rate, and the learned order still beats identity under the new quantizer
    assert summary["bd_rate_vs_paper"]["paper/tsp-correlation"]["feature_psnr"] == pytest.approx(
        summary["bd_rate"]["tsp-correlation"]["feature_psnr"], abs=1e-9)
    assert summary["bd_rate"]["recommended/tsp-correlation"]["feature_psnr"] < -3.0
    rows = list(csv.DictReader((out / "results.csv").open()))
    by_q = {}
    for r in rows:
        by_q.setdefault(json.loads(r["quantizer"])["name"], set()).add(int(r["qp"]))
    assert by_q["log"] == {22, 27, 32, 37} and by_q["channel"] == set(match["qps"])
    assert (out / "rd_curves_runs.png").stat().st_size > 10_000
    assert "bd_rate_vs_paper" in proc.stdout and "recommended/tsp-correlation" in proc.stdout
