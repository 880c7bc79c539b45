"""detectron2 adapter: head then tail equals the unsplit model bitwise, C2 shapes, checkpoint loading.

Randomly initialised models (no weights are downloadable here) on tiny inputs keep this CPU-cheap; the
bitwise check uses R50-FPN (same FPN/RPN/ROI code path as X101-FPN), X101-FPN only checks the C2 shape.
"""
import json
import pickle
import warnings

import numpy as np
import pytest

from eval.models import detectron2 as d2adapter

if not d2adapter.detectron2_available():
    pytest.skip("detectron2 is not installed (run: python -m eval.install.detectron2)", allow_module_level=True)

import torch  # noqa: E402
from skimage import data  # noqa: E402

pytestmark = pytest.mark.detectron2

R50 = "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml"
SMALL = dict(score_threshold=0.0, min_size=128, max_size=200, opts=["MODEL.RPN.POST_NMS_TOPK_TEST", 200])


def _build(config=R50, **kw):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the random-weights warning
        return d2adapter.Detectron2Adapter(config, **{**SMALL, **kw})


@pytest.fixture(scope="module")
def adapter():
    return _build()


@pytest.fixture(scope="module")
def images():
    # 300x420 -> resized 128x179, padded to 128x192 (exercises padding); 300x451 -> 128x192
    return {"astronaut": np.ascontiguousarray(data.astronaut()[:300, :420]), "chelsea": data.chelsea()}


@pytest.fixture(scope="module")
def runs(adapter, images):
    return {k: (adapter.head(img), adapter.full(img)) for k, img in images.items()}


def test_random_init_warns_loudly():
    with pytest.warns(RuntimeWarning, match="RANDOMLY INITIALISED"):
        d2adapter.Detectron2Adapter(R50, **SMALL)


def test_head_then_tail_is_bitwise_the_unsplit_model(adapter, runs):
    for name, ((features, meta), full) in runs.items():
        out = adapter.tail(features, meta)
        assert len(out["scores"]) >= 1, name
        for key in ("boxes", "scores", "classes"):
            assert torch.equal(torch.from_numpy(np.asarray(out[key])), torch.from_numpy(np.asarray(full[key]))), (name, key)
        assert out["boxes"].dtype == np.float32 and out["classes"].dtype == np.int64


def test_c2_shape_and_meta(adapter, runs, images):
    (f, meta), _ = runs["astronaut"]
    assert f.dtype == np.float32 and f.shape == (256, 32, 48) and adapter.n_channels == 256
    assert meta["pixels"] == 300 * 420 and meta["orig_size"] == [300, 420]
    assert meta["resized_size"] == [128, 179] and meta["padded_size"] == [128, 192]
    assert meta["image_sizes"] == [[128, 179]]
    json.dumps(meta)
    (f2, meta2), _ = runs["chelsea"]
    assert f2.shape == (256, meta2["padded_size"][0] // 4, meta2["padded_size"][1] // 4)


def test_tail_rejects_features_that_do_not_fit(adapter, runs):
    (f, meta), _ = runs["astronaut"]
    with pytest.raises(ValueError, match=r"expected \(256, 32, 48\)"):
        adapter.tail(f[:, :-1], meta)
    bad = f.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        adapter.tail(bad, meta)
    with pytest.raises(ValueError, match="meta lacks 'image_sizes'"):
        adapter.tail(f, {k: v for k, v in meta.items() if k != "image_sizes"})
    with pytest.raises(ValueError, match="uint8 RGB"):
        adapter.head(np.zeros((20, 20), np.uint8))


def test_map50_is_one_on_uncompressed_features_and_drops_with_noise(adapter, runs):
    (f, meta), full = runs["chelsea"]  # the image where the random model has detections scored >= 0.5
    same = adapter.task.image_stats(adapter.tail(f, meta), full)
    assert same["gt_source"] == "pseudo" and len(same["ground_truth"]["boxes"]) >= 1
    assert adapter.task.aggregate([same]) == pytest.approx(1.0)
    noisy = f + np.random.default_rng(0).normal(0, 3 * f.std(), f.shape).astype(np.float32)
    score = adapter.task.aggregate([adapter.task.image_stats(adapter.tail(noisy, meta), full)])
    assert 0.0 <= score < 1.0


def test_model_zoo_pkl_and_pth_load_back_identically(adapter, tmp_path):
    state = {k: v.detach().clone() for k, v in adapter.model_.state_dict().items()}
    key = "backbone.bottom_up.res3.0.conv1.weight"
    state[key] += 1.0  # so a pass shows the file's values were loaded, not the same random init
    pkl = tmp_path / "model_final.pkl"
    with open(pkl, "wb") as f:
        pickle.dump({"model": {k: v.numpy() for k, v in state.items()}, "__author__": "test"}, f)
    pth = tmp_path / "model_final.pth"
    torch.save({"model": state}, pth)
    for path in (pkl, pth):
        loaded = _build(weights=path, seed=1)
        got = loaded.model_.state_dict()
        assert set(got) == set(state)
        assert all(torch.equal(got[k], state[k]) for k in state), path
        assert f"weights={d2adapter._file_digest(path)}" in loaded.identity()
    assert "random-init-seed0" in adapter.identity()
    # save_model_zoo_pkl writes the same format
    d2adapter.save_model_zoo_pkl(adapter.model_, tmp_path / "saved.pkl")
    with open(tmp_path / "saved.pkl", "rb") as f:
        saved = pickle.load(f)
    assert set(saved) == {"model", "__author__"} and isinstance(saved["model"][key], np.ndarray)


def test_weights_that_do_not_fit_are_refused(tmp_path):
    bad = tmp_path / "partial.pkl"
    with open(bad, "wb") as f:
        pickle.dump({"model": {"roi_heads.box_predictor.cls_score.bias": np.zeros(81, np.float32)},
                     "__author__": "test"}, f)
    with pytest.raises(ValueError, match="does not fit config"):
        _build(weights=bad)
    with pytest.raises(FileNotFoundError, match="weights file .*missing.pkl not found"):
        _build(weights=tmp_path / "missing.pkl")


def test_config_resolution_and_unsupported_configs():
    assert d2adapter.model_zoo_config_path("COCO-Detection/faster_rcnn_R_50_FPN_3x").name == "faster_rcnn_R_50_FPN_3x.yaml"
    with pytest.raises(FileNotFoundError, match="model-zoo config"):
        d2adapter.model_zoo_config_path("COCO-Detection/no_such_model.yaml")
    with pytest.raises(ValueError, match="not a ResNet-FPN"):
        d2adapter.Detectron2Adapter("COCO-Detection/faster_rcnn_R_50_C4_1x.yaml")
    with pytest.raises(ValueError, match="meta architecture RetinaNet"):
        d2adapter.Detectron2Adapter("COCO-Detection/retinanet_R_50_FPN_1x.yaml")


def test_x101_fpn_c2_is_256_channels_at_stride_4():
    x101 = _build(d2adapter.DEFAULT_CONFIG, min_size=64, max_size=96)
    f, meta = x101.head(data.chelsea())  # 300x451 -> 64x96
    assert meta["resized_size"] == [64, 96] and f.shape == (256, 16, 24)
    assert x101.identity().startswith("detectron2:COCO-Detection/faster_rcnn_X_101_32x8d_FPN_3x.yaml")


def test_valid_region_is_the_c2_part_over_the_resized_image(adapter, runs):
    (f, meta), _ = runs["astronaut"]  # resized 128x179, padded 128x192: C2 32x48, 45 columns over the image
    assert adapter.valid_region(meta) == (32, 45)
    (f2, meta2), _ = runs["chelsea"]  # 128x192: no padding, the whole map
    assert adapter.valid_region(meta2) == f2.shape[1:]
    with pytest.raises(ValueError, match="meta lacks 'padded_size'"):
        adapter.valid_region({k: v for k, v in meta.items() if k != "padded_size"})


def test_cell_feature_psnr_is_measured_over_the_valid_region_only(adapter, runs, tmp_path):
    """run_job on a real detectron2 C2 map: bits count the whole map, feature PSNR only the unpadded part."""
    from codec import make_quantizer
    from eval.analysis.metrics import feature_psnr, mse
    from eval.pipeline.cache import save_arrays
    from eval.pipeline.cell import Job, _feature_quality, code_features, run_job
    from eval.pipeline.cell_process import use_adapter
    from codec import make_codec, make_packing
    from reorder import Permutation

    (f, meta), full = runs["astronaut"]
    h, w = adapter.valid_region(meta)
    # errors only in the padding: the valid part is untouched, so its PSNR is infinite
    noisy = f.copy()
    noisy[:, :, w:] += 1.0
    q = _feature_quality(adapter, meta, f, noisy)
    assert q["feature_psnr"] == float("inf") and q["feature_mse"] == 0.0 and q["feature_valid_hw"] == [h, w]
    assert feature_psnr(f, noisy) < 100  # what the whole map would have said

    np.save(tmp_path / "f.npy", f)
    save_arrays(tmp_path / "ref.npz", {k: np.asarray(v) for k, v in full.items()})
    quantizer = make_quantizer("log").fit([f])
    model = {"name": "detectron2", "kwargs": {"test": "valid-region"}}
    use_adapter(model, adapter)
    order = tuple(range(f.shape[0]))
    job = Job(image_id="astronaut", image_key="d2-astronaut", feature_path=str(tmp_path / "f.npy"),
              reference_path=str(tmp_path / "ref.npz"), meta=meta, order_name="identity", order=order,
              quantizer=quantizer.to_dict(), packing="tiled", codec="ffv1", qp=22, model=model)
    row = run_job(job, single_thread=False)
    assert row["status"] == "ok", row.get("error")
    coded = code_features(f, Permutation(np.asarray(order)), quantizer, make_packing("tiled"), make_codec("ffv1"), 22)
    assert row["bits"] == coded.bits  # the whole coded map
    assert row["feature_valid_hw"] == [h, w]
    crop = (slice(None), slice(0, h), slice(0, w))
    assert row["feature_mse"] == mse(f[crop], coded.reconstruction[crop])
    assert row["feature_psnr"] == feature_psnr(f[crop], coded.reconstruction[crop])
    assert row["feature_psnr"] != feature_psnr(f, coded.reconstruction)
