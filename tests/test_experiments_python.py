"""The experiments run from Python alone: one typed config in, a result object out, no command line."""

import json
from pathlib import Path

import pytest

from eval.experiments import CodingConfig, DataConfig, RunConfig, SearchConfig, search_orders

pytestmark = pytest.mark.slow


def test_search_orders_from_python_finds_the_learned_order_cheaper(tmp_path):
    config = SearchConfig(
        orders=["identity", "tsp-correlation"], bundled_orders=False, compare_quantizers=["none"], bootstrap=200,
        data=DataConfig(limit=1, model_args={"short_side": 160, "window": 64, "window_stride": 32},
                        cache_dir=str(tmp_path / "cache")),
        coding=CodingConfig(qps=[22, 27, 32, 37]),
        run=RunConfig(out=str(tmp_path / "out"), workers=1, quiet=True),
    )
    result = search_orders(config)
    assert result.exit_code == 0 and not result.failed
    assert len(result.rows) == 1 * 2 * 4  # one test image x two orders x four QPs, every cell finished
    bd = result.summary["bd_rate"]
    # the learned order saves bits at equal feature PSNR on a photo it never saw (about 10 % on the default split)
    assert -40.0 < bd["tsp-correlation"]["feature_psnr"] < -1.0
    lo, hi = bd["tsp-correlation"]["feature_psnr_ci"]
    assert lo <= bd["tsp-correlation"]["feature_psnr"] <= hi
    assert "BD feat-PSNR" in result.text() and any("cells coded now" in n for n in result.notes())
    # what it wrote is what it returned, and its config.toml names a Python call
    assert json.loads((tmp_path / "out" / "summary.json").read_text())["bd_rate"] == json.loads(json.dumps(bd))
    assert 'command = "Python call"' in (tmp_path / "out" / "config.toml").read_text()
    assert Path(result.files["results"]).exists()
