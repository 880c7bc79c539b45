"""The detector study end to end on a few frames: person AP@0.5, time-aware intervals, the detections figure."""

import json

import pytest

from eval.experiments import CodingConfig, DataConfig, DetectorSearchConfig, RunConfig, search_detector

pytestmark = pytest.mark.slow


def test_detector_study_measures_map_and_draws_the_detections(tmp_path):
    config = DetectorSearchConfig(
        orders=["identity", "tsp-correlation"], compare_quantizers=["none"], compare_pipelines=["none"], bootstrap=100,
        data=DataConfig(model="ssdlite-person", video="vtest", n_calib=6, n_test=8, cache_dir=str(tmp_path / "cache")),
        coding=CodingConfig(qps=[22, 27, 32, 37]),
        run=RunConfig(out=str(tmp_path / "out"), workers=1, quiet=True),
    )
    result = search_detector(config)
    assert result.exit_code == 0 and len(result.rows) == 8 * 2 * 4
    s = result.summary
    assert s["task_metric"] == "map50" and s["test"][0] == "vtest-f0080"  # test frames start after the gap
    assert s["bootstrap"]["unit"] == "images in blocks of 2 consecutive"  # 8 frames: the 8-frame block shortened
    identity = next(c for c in s["curves"] if c["setup"]["order"] == "identity")
    # person AP against the uncoded detector's own boxes: near 1 at QP 22, lower at QP 37
    assert identity["task"][0] > 0.95 and identity["task"][-1] < identity["task"][0]
    assert s["bd_rate"]["tsp-correlation"]["feature_psnr"] < 0  # the learned order saves bits on this model too
    figure = tmp_path / "out" / "figures" / "detections.png"
    assert figure.stat().st_size > 20_000 and result.files["figure detections"] == figure
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["model"]["name"] == "ssdlite-person"
    assert 'study = "search_detector"' in (tmp_path / "out" / "config.toml").read_text()
