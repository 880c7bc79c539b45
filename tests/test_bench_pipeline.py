"""studies.bench_pipeline: a cell's time split into codec and non-codec stages, from one run's rows."""

import json

import pytest

from eval.experiments.bench_pipeline import stage_split
from studies import bench_pipeline


def test_stage_split_shares_add_up_and_other_is_the_remainder():
    rows = [{"status": "ok", "encode_seconds": 3.0, "decode_seconds": 0.5, "tail_seconds": 1.0, "cell_seconds": 5.0},
            {"status": "ok", "encode_seconds": 1.0, "decode_seconds": 0.5, "tail_seconds": 1.0, "cell_seconds": 3.0},
            {"status": "error", "error": "x"}]
    split = stage_split(rows)
    assert split["cells"] == 2 and split["total"] == pytest.approx(8.0)
    assert split["seconds"] == pytest.approx({"encode": 4.0, "decode": 1.0, "tail": 2.0, "other": 1.0})
    assert sum(split["share"].values()) == pytest.approx(1.0)
    assert split["non_codec_share"] == pytest.approx(3.0 / 8.0)
    with pytest.raises(ValueError, match="no finished cell"):
        stage_split([{"status": "error"}])


@pytest.mark.slow
def test_real_run_is_codec_bound_and_writes_its_split(tmp_path):
    out = tmp_path / "bench"
    rc = bench_pipeline.main(["--limit", "1", "--orders", "identity", "--qps", "32", "37", "--model-arg", "short_side=160",
                              "--model-arg", "window=64", "--model-arg", "window_stride=32", "--quiet",
                              "--out", str(out), "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    split = json.loads((out / "bench_pipeline.json").read_text())
    assert split["cells"] == 2 and sum(split["share"].values()) == pytest.approx(1.0)
    assert all(v >= 0 for v in split["seconds"].values())
    assert split["share"]["encode"] > split["share"]["decode"]  # encoding dominates decoding
