"""The experiments run from Python alone: one typed config in, a result object out, no command line."""

import json
from pathlib import Path

import pytest

from eval.experiments import CodingConfig, DataConfig, RunConfig, SearchConfig, search_orders

pytestmark = pytest.mark.slow


def test_search_orders_from_python_finds_the_learned_order_cheaper(tmp_path):
    config = SearchConfig(
        orders=["identity", "tsp-correlation"], bundled_orders=False, compare_quantizers=["none"], compare_pipelines=["none"], bootstrap=200,
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


def test_learn_orders_passes_each_name_its_own_parameters(tmp_path):
    """An importance-aware orderer gets the importance file a name cannot carry, whatever its place in the list."""
    import numpy as np

    from eval.pipeline.features import FeatureRef, FeatureSet
    from eval.pipeline.orders import learn_orders
    from eval.study_folder import OrderFolder

    rng = np.random.default_rng(0)
    refs = []
    for i in range(2):
        path = tmp_path / f"f{i}.npy"
        np.save(path, rng.random((6, 8, 8), dtype=np.float32))
        refs.append(FeatureRef(f"img{i}", f"k{i}", str(path), {"pixels": 64}, None, None))
    calib = FeatureSet(refs)
    orders = learn_orders(["tsp-correlation", "fixed"], calib, OrderFolder(tmp_path / "orders"), {},
                          params={"fixed": {"order_or_path": [5, 4, 3, 2, 1, 0]}}, progress=False)
    assert list(orders["fixed"].order) == [5, 4, 3, 2, 1, 0]  # the third name, after identity and a learned order
