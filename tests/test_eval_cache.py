"""Feature cache: keys, reuse, atomic files, corrupt entries, bad head output (fake adapter: fast)."""

import json
import warnings

import numpy as np
import pytest
from PIL import Image

from eval.pipeline.cache import FeatureCache
from eval.data.images import Sample
from eval.errors import FeatureError
from eval.models.base import ModelAdapter
from eval.tasks.base import TaskMetric


class _Task(TaskMetric):
    name = "none"

    def image_stats(self, output, reference_output, annotation=None):
        return {}

    def aggregate(self, stats):
        return 0.0


class FakeAdapter(ModelAdapter):
    """Features = per-channel scaled copies of the mean image; counts head calls."""

    name = "fake"
    layer = "x"
    n_channels = 3

    def __init__(self, version="1", poison=None):
        self.version, self.poison, self.calls, self.task = version, poison, 0, _Task()

    def identity(self):
        return f"fake|v={self.version}"

    def head(self, image):
        self.calls += 1
        g = image.mean(axis=2, dtype=np.float32)
        f = np.stack([g, 2 * g, 3 * g]).astype(np.float32)
        if self.poison is not None:
            f[0, 0, 0] = self.poison
        return f, {"pixels": int(image.shape[0] * image.shape[1])}

    def tail(self, features, meta):
        return features.sum()


def _photo(path, seed=0, size=(6, 5)):
    a = np.random.default_rng(seed).integers(0, 255, (*size, 3), dtype=np.uint8)
    Image.fromarray(a).save(path)
    return Sample(id=path.stem, path=str(path))


def test_compute_once_then_reuse(tmp_path):
    cache, model = FeatureCache(tmp_path / "c"), FakeAdapter()
    s = _photo(tmp_path / "a.png")
    f1, m1 = cache.get_or_compute(model, s)
    f2, m2 = cache.get_or_compute(model, s)
    assert model.calls == 1
    assert np.array_equal(f1, f2) and f1.dtype == np.float32 and m1 == m2 == {"pixels": 30}
    entry = cache.entry(model, s)
    assert model.calls == 1 and np.array_equal(entry.load(), f1) and entry.meta == m1
    assert entry.features_path.parent.parent == tmp_path / "c"
    assert not list((tmp_path / "c").rglob("*.tmp"))


def test_entries_record_the_cpu_they_were_computed_on_and_a_reused_entry_keeps_it(tmp_path):
    from eval.environment import cpu_info
    from eval.pipeline.features import prepare_features

    cache, model = FeatureCache(tmp_path / "c"), FakeAdapter()
    a, b = _photo(tmp_path / "a.png"), _photo(tmp_path / "b.png", seed=1)
    assert cache.entry(model, a).computed_on["cpu"] == cpu_info()["model"]
    js = cache.entry(model, b).meta_path  # as if b had been computed on another machine
    record = json.loads(js.read_text())
    record["computed_on"] = {"cpu": "Some Other CPU", "torch_threads": 8}
    js.write_text(json.dumps(record))
    assert cache.entry(model, b).computed_on == {"cpu": "Some Other CPU", "torch_threads": 8} and model.calls == 2
    features = prepare_features(model, [a, b], cache, progress=False)
    assert features.computed_on() == dict(sorted({cpu_info()["model"]: 1, "Some Other CPU": 1}.items()))
    del record["computed_on"]  # an entry written before entries recorded it
    js.write_text(json.dumps(record))
    assert prepare_features(model, [b], cache, progress=False).computed_on() == {"not recorded": 1}


def test_key_depends_on_identity_and_content_not_name(tmp_path):
    cache = FeatureCache(tmp_path / "c")
    a = _photo(tmp_path / "a.png")
    renamed = Sample(id="other", path=str(tmp_path / "copy.png"))
    (tmp_path / "copy.png").write_bytes((tmp_path / "a.png").read_bytes())
    different = _photo(tmp_path / "b.png", seed=1)
    v1, v2 = FakeAdapter("1"), FakeAdapter("2")
    assert cache.key(v1, a) == cache.key(v1, renamed)
    assert cache.key(v1, a) != cache.key(v1, different)
    assert cache.key(v1, a) != cache.key(v2, a)
    cache.get_or_compute(v1, a)
    cache.get_or_compute(v1, renamed)
    assert v1.calls == 1


@pytest.mark.parametrize("damage", ["truncate", "garbage_json", "wrong_shape"])
def test_corrupt_entry_is_detected_and_recomputed(tmp_path, damage):
    cache, model = FeatureCache(tmp_path / "c"), FakeAdapter()
    s = _photo(tmp_path / "a.png")
    good, _ = cache.get_or_compute(model, s)
    npy, js = cache.paths(cache.key(model, s))
    if damage == "truncate":
        npy.write_bytes(npy.read_bytes()[:-20])
    elif damage == "garbage_json":
        js.write_text("{not json")
    else:
        np.save(npy, np.zeros((3, 2, 2), np.float32))
    with pytest.warns(RuntimeWarning, match="corrupt.*recomputing"):
        again, _ = cache.get_or_compute(model, s)
    assert model.calls == 2 and np.array_equal(again, good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        cache.get_or_compute(model, s)  # repaired: no warning, no recompute
    assert model.calls == 2
    assert json.loads(js.read_text())["shape"] == [3, 6, 5]


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_head_output_rejected_and_not_cached(tmp_path, bad):
    cache, model = FeatureCache(tmp_path / "c"), FakeAdapter(poison=bad)
    s = _photo(tmp_path / "a.png")
    with pytest.raises(FeatureError, match=r"1 NaN/Inf values for sample 'a'"):
        cache.get_or_compute(model, s)
    assert not list((tmp_path / "c").rglob("*.npy"))


def test_in_memory_samples_are_keyed_by_pixels(tmp_path):
    cache, model = FeatureCache(tmp_path / "c"), FakeAdapter()
    img = np.full((4, 4, 3), 9, np.uint8)
    s1 = Sample(id="m1", path=None, image=img)
    s2 = Sample(id="m2", path=None, image=img.copy())
    s3 = Sample(id="m3", path=None, image=img[:2])
    cache.get_or_compute(model, s1)
    cache.get_or_compute(model, s2)
    assert model.calls == 1
    cache.get_or_compute(model, s3)
    assert model.calls == 2
