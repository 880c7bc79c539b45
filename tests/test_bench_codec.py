"""The codec benchmark: configuration parsing, the per-codec table on known curves, and the study end to end."""

import contextlib
import io
import json
import sqlite3

import pytest

from eval.analysis import codec_bench as bm
from eval.plots import bd_cpu_figure, bd_cpu_scatter

# --------------------------------------------------------------------------- configurations


def test_parse_config_canonicalises_codec_and_packing():
    cfg = bm.parse_config("vvenc:preset=faster@tiled")
    assert cfg.family == "vvenc" and cfg.packing == "tiled" and not cfg.error
    assert cfg.codec.startswith("vvenc:") and "preset=faster" in cfg.codec and "intra_period=32" in cfg.codec
    # the same setup written differently is the same key
    assert bm.parse_config("vvenc:preset=faster,intra_period=32").key == bm.parse_config("vvenc@temporal").key
    assert bm.parse_config("x265", default_packing="tiled:cols=4").packing == "tiled:cols=4"


def test_parse_config_bad_input():
    with pytest.raises(ValueError, match="packing"):
        bm.parse_config("vvenc@mosaic")
    with pytest.raises(ValueError, match="ends with '@'"):
        bm.parse_config("vvenc@")
    bad = bm.parse_config("h266:fast=1")  # an unknown codec is kept and reported, not fatal
    assert "unknown codec" in bad.error and bad.codec == "h266:fast=1"
    with pytest.raises(ValueError, match="same setup"):
        bm.parse_configs(["vvenc", "vvenc:preset=faster"])


def test_qps_and_default_configs():
    av1, hevc = bm.parse_config("svtav1"), bm.parse_config("x265")
    assert bm.qps_for(av1, [22, 27], [30, 40]) == [30, 40]
    assert bm.qps_for(hevc, [22, 27], [30, 40]) == [22, 27]
    assert "vtm" not in bm.default_configs({})
    env = {"FCM_VTM_ENCODER": "/x/EncoderApp", "FCM_VTM_DECODER": "/x/DecoderApp", "FCM_VTM_CFG": "/x/ra.cfg"}
    assert bm.default_configs(env)[-1] == "vtm"
    assert "vtm" not in bm.default_configs({**env, "FCM_VTM_CFG": ""})


# --------------------------------------------------------------------------- the table on synthetic rows

QPS = [22, 27, 32, 37]
BPP = [8.0, 4.0, 2.0, 1.0]
PSNR = [42.0, 38.0, 34.0, 30.0]
PIXELS = 1000


def _rows(cfg, order, rate_factor, images=("a", "b"), cpu=1.0, fail_qp=None, error="CodecError: boom"):
    rows = []
    for img in images:
        for qp, bpp, psnr in zip(QPS, BPP, PSNR):
            row = {"key": f"{cfg.label}|{order}|{img}|{qp}", "image_id": img, "order": order, "qp": qp,
                   "codec": cfg.codec, "packing": cfg.packing, "pixels": PIXELS}
            if qp == fail_qp:
                row.update(status="error", error=error)
            else:
                row.update(status="ok", bits=int(bpp * rate_factor * PIXELS), feature_psnr=psnr,
                           encode_cpu_seconds=cpu, decode_cpu_seconds=cpu / 10, encode_seconds=cpu * 2)
            rows.append(row)
    return rows


@pytest.fixture()
def synthetic():
    ref, other, missing, partial = bm.parse_configs(["vvenc:preset=medium", "x265", "vtm", "svtav1"])
    rows = (_rows(ref, "identity", 1.0, cpu=20.0) + _rows(ref, "tsp-correlation", 0.8, cpu=20.0)
            + _rows(other, "identity", 2.0, cpu=2.0) + _rows(other, "tsp-correlation", 1.8, cpu=2.0)
            + [dict(r, status="error", error="CodecNotFoundError: VTM EncoderApp is not configured")
               for r in _rows(missing, "identity", 1.0)]
            + _rows(partial, "identity", 1.0, cpu=1.0, fail_qp=37) + _rows(partial, "tsp-correlation", 1.0, cpu=1.0))
    qps = {c.label: QPS for c in (ref, other, missing, partial)}
    return [ref, other, missing, partial], rows, qps


def test_table_bd_rates_gains_and_cpu(synthetic):
    configs, rows, qps = synthetic
    table, notes, reference = bm.codec_benchmark_table(rows, configs, images=["a", "b"], qps=qps,
                                                       orders=["identity", "tsp-correlation"])
    by = {t["config"]: t for t in table}
    assert reference == "vvenc:preset=medium"  # preferred reference when configured
    ref, x265 = by["vvenc:preset=medium"], by["x265"]
    assert ref["status"] == "ok" and ref["cells_ok"] == ref["cells_expected"] == 2 * 2 * 4
    assert ref["bd_ref_feature_psnr"] == 0.0
    # twice the bits for the same PSNR at every point: +100 %
    assert x265["bd_ref_feature_psnr"] == pytest.approx(100.0, abs=1e-6)
    # orders: 20 % fewer bits with the reference codec, 10 % fewer with x265
    assert ref["gain"]["tsp-correlation"]["feature_psnr"] == pytest.approx(-20.0, abs=1e-6)
    assert x265["gain"]["tsp-correlation"]["feature_psnr"] == pytest.approx(-10.0, abs=1e-6)
    assert x265["gain_delta"]["tsp-correlation"]["feature_psnr"] == pytest.approx(10.0, abs=1e-6)
    assert ref["enc_cpu_s"] == pytest.approx(20.0) and x265["enc_cpu_s"] == pytest.approx(2.0)
    assert x265["enc_cpu_s_per_qp"] == {qp: pytest.approx(2.0) for qp in QPS}
    assert x265["identity_bpp"][22] == pytest.approx(16.0)


def test_table_failed_and_partial_configs(synthetic):
    configs, rows, qps = synthetic
    table, notes, _ = bm.codec_benchmark_table(rows, configs, images=["a", "b"], qps=qps, orders=["tsp-correlation"])
    by = {t["config"]: t for t in table}
    assert by["vtm"]["status"].startswith("failed: CodecNotFoundError: VTM EncoderApp is not configured")
    assert by["vtm"]["cells_ok"] == 0 and by["vtm"]["enc_cpu_s"] is None and by["vtm"]["bd_ref_feature_psnr"] is None
    part = by["svtav1"]
    assert part["status"].startswith("partial: 2 of 16 cells failed: CodecError: boom")
    assert any("svtav1 identity: QP 37 left out" in n for n in notes)
    text = bm.format_benchmark_table(table, "vvenc:preset=medium")
    vtm_line = next(line for line in text.splitlines() if line.startswith("vtm "))
    assert "failed: CodecNotFoundError" in vtm_line
    assert "(ref)" in next(line for line in text.splitlines() if line.startswith("vvenc:preset=medium"))
    flat = bm.flat_table(table)
    assert {"gain_tsp-correlation_feature_psnr", "gain_delta_tsp-correlation_feature_psnr"} <= set(flat[0])
    assert not any(k.startswith("_") for k in flat[0])


def test_reference_choice(synthetic):
    configs, rows, qps = synthetic
    without_medium = configs[1:]
    table, notes, reference = bm.codec_benchmark_table(rows, without_medium, images=["a", "b"], qps=qps)
    assert reference == "x265"  # the slowest finished configuration (2 CPU s vs 1 CPU s), never the failed one
    _, _, reference = bm.codec_benchmark_table(rows, configs, images=["a", "b"], qps=qps, reference="x265")
    assert reference == "x265"
    with pytest.raises(ValueError, match="not one of the configured"):
        bm.codec_benchmark_table(rows, configs, images=["a", "b"], qps=qps, reference="aom")


def test_agreement_lines(synthetic):
    configs, rows, qps = synthetic
    fast = bm.parse_config("vvenc:preset=faster")
    rows = rows + _rows(fast, "identity", 1.5, cpu=5.0) + _rows(fast, "tsp-correlation", 1.5 * 0.75, cpu=5.0)
    table, _, reference = bm.codec_benchmark_table(rows, [*configs, fast], images=["a", "b"], qps={})
    lines = bm.agreement_lines(table, reference)
    line = next(x for x in lines if x.startswith("tsp-correlation gain with vvenc:preset=faster"))
    assert "-25.00%" in line and "-20.00%" in line and "-5.00 pp" in line
    assert lines[-1].startswith("vvenc temporal presets: tsp-correlation gain -25.00% .. -20.00% (spread 5.00 pp")


def test_figure_draws_every_finished_config(synthetic, tmp_path):
    configs, rows, qps = synthetic
    table, _, reference = bm.codec_benchmark_table(rows, configs, images=["a", "b"], qps=qps)
    fig = bd_cpu_figure(table, reference)
    left, right = fig.axes
    # svtav1's identity curve lost QP 37 (3 points: no BD-rate) and vtm failed: two points per panel
    assert len(left.collections) == 2 and len(right.collections) == 2
    assert sorted(t.get_text() for t in left.texts) == ["vvenc:preset=medium (ref)", "x265"]
    assert "vtm" in fig.get_supxlabel()
    path = bd_cpu_scatter(table, tmp_path / "b.png", reference)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    curves = bm.codec_rd_curves(table)
    assert [c.label for c in curves] == ["vvenc:preset=medium", "x265", "svtav1"]


# --------------------------------------------------------------------------- the study end to end


def _study(tmp_path, *extra):
    from studies import bench_codec

    argv = [
        "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
        # 40x40 feature frames: libvvenc (through ffmpeg) rejects pictures of 24x24 at these QPs (size limit)
        "--model-arg", "short_side=160", "--model-arg", "window=64", "--model-arg", "window_stride=64",
        "--limit", "1", "--workers", "1", "--quiet", "--qps", "27", "32", "37", "42",
        "--codecs", "vvenc:preset=faster", "x265:preset=ultrafast", "vtm", "--reference", "vvenc:preset=faster", *extra,
    ]
    buf = io.StringIO()
    with pytest.MonkeyPatch.context() as mp:
        for var in ("FCM_VTM_ENCODER", "FCM_VTM_DECODER", "FCM_VTM_CFG"):
            mp.delenv(var, raising=False)  # vtm is the deliberately missing codec
        with contextlib.redirect_stdout(buf), contextlib.redirect_stderr(io.StringIO()):
            code = bench_codec.main(argv)
    return code, buf.getvalue()


def _store(out):
    con = sqlite3.connect(out / "results.sqlite")
    try:
        return {k: (s, a, r) for k, s, a, r in con.execute("SELECT key, status, attempts, row FROM results")}
    finally:
        con.close()


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    code, stdout = _study(tmp)
    return tmp, code, stdout


@pytest.mark.slow
def test_study_reports_every_codec(study):
    tmp, code, stdout = study
    out = tmp / "out"
    assert code == 0
    summary = json.loads((out / "bench_codec.json").read_text())
    by = {t["config"]: t for t in summary["table"]}
    assert list(by) == ["vvenc:preset=faster", "x265:preset=ultrafast", "vtm"]
    assert by["vtm"]["status"].startswith("failed: CodecNotFoundError") and "FCM_VTM_ENCODER" in by["vtm"]["status"]
    for name in ("vvenc:preset=faster", "x265:preset=ultrafast"):
        t = by[name]
        assert t["status"] == "ok" and t["cells_ok"] == 1 * 2 * 4
        assert t["enc_cpu_s"] > 0 and t["gain"]["tsp-correlation"]["feature_psnr"] is not None
    assert summary["reference"] == "vvenc:preset=faster" and by["vvenc:preset=faster"]["bd_ref_feature_psnr"] == 0.0
    assert by["x265:preset=ultrafast"]["bd_ref_feature_psnr"] is not None
    csv_lines = (out / "bench_codec.csv").read_text().splitlines()
    assert len(csv_lines) == 1 + 3
    vtm_line = next(line for line in stdout.splitlines() if line.startswith("vtm "))
    assert "failed: CodecNotFoundError" in vtm_line
    for png in ("bench_codec.png", "rd_codecs.png", "ordering_gain.png"):
        assert (out / png).stat().st_size > 5_000


@pytest.mark.slow
def test_study_rows_record_codec_packing_and_cpu(study):
    tmp, _, _ = study
    rows = [json.loads(r) for _, _, r in _store(tmp / "out").values()]
    ok = [r for r in rows if r["status"] == "ok"]
    assert {(r["codec"].partition(":")[0], r["packing"]) for r in ok} == {("vvenc", "temporal"), ("x265", "temporal")}
    assert all(r["encode_cpu_seconds"] > 0 and r["decode_cpu_seconds"] >= 0 for r in ok)
    failed = [r for r in rows if r["status"] == "error"]
    assert len(failed) == 2 * 4 and all(r["codec"] == "vtm" for r in failed)


@pytest.mark.slow
def test_study_rerun_recomputes_nothing(study):
    tmp, _, _ = study
    before = _store(tmp / "out")
    code, _ = _study(tmp)
    assert code == 0
    assert _store(tmp / "out") == before  # no new row, no new attempt on the failed codec
    run = json.loads((tmp / "out" / "bench_codec.json").read_text())["run"]
    assert run["coded_now"] == 0 and run["failed"] == 0 and run["reused"] == 16 and run["gave_up"] == 8


def test_study_rejects_bad_configuration(tmp_path, capsys):
    from studies import bench_codec

    with pytest.raises(SystemExit) as exc:
        bench_codec.main(["--out", str(tmp_path), "--codecs", "vvenc@mosaic", "--quiet"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "vvenc@mosaic" in err[0] and "packing" in err[0]
    with pytest.raises(SystemExit) as exc:
        bench_codec.main(["--out", str(tmp_path), "--codecs", "x265", "--reference", "aom", "--quiet"])
    assert exc.value.code == 2
    assert "--reference: 'aom' is not one of the codecs (x265)" in capsys.readouterr().err


def test_points_table_lists_each_qp(synthetic):
    configs, rows, qps = synthetic
    table, _, _ = bm.codec_benchmark_table(rows, configs, images=["a", "b"], qps=qps)
    text = bm.format_points_table(table)
    x265 = next(line for line in text.splitlines() if line.startswith("x265"))
    assert "QP22 16.000 bpp 42.00 dB 2.00 s" in x265 and "QP37 2.000 bpp 30.00 dB" in x265
    assert "QP37 n/a" in next(line for line in text.splitlines() if line.startswith("svtav1"))
