"""Orderers: bijections, exact inverse, sklearn conventions, registry names, provenance, planted orders."""

import inspect
import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import NotFittedError

from codec.registry import parse_spec
from reorder import (
    ORDER_NAMES,
    FixedOrder,
    IdentityOrder,
    Permutation,
    SortOrder,
    TSPOrder,
    make_orderer,
)


def calib(n=3, C=10, seed=0, H=12, W=14):
    rng = np.random.default_rng(seed)
    return [rng.gamma(1.0, 1.0, size=(C, H, W)).astype(np.float32) for _ in range(n)]


def planted(C=16, n=3, seed=0):
    """Channels that are shifted copies of a smooth bump: neighbours along the hidden sequence are most alike.

    Returns the calibration features with channels shuffled and the hidden sequence
    (original channel indices in their true order).
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:24, 0:24]
    hidden = rng.permutation(C)
    imgs = []
    for k in range(n):
        x = np.empty((C, 24, 24), dtype=np.float32)
        for pos, ch in enumerate(hidden):
            cx = 2 + pos * 20 / C + k
            x[ch] = np.exp(-((xx - cx) ** 2 + (yy - 12) ** 2) / 30.0) + 0.01 * rng.random((24, 24))
        imgs.append(x)
    return imgs, hidden


@pytest.mark.parametrize("name", ORDER_NAMES)
def test_every_orderer_gives_a_bijection_and_exact_inverse(name):
    data = calib()
    o = make_orderer(name)
    assert o.fit(data) is o
    assert sorted(o.permutation_.tolist()) == list(range(10))
    assert o.permutation_.dtype == np.int64 and o.n_channels_ == 10
    x = np.random.default_rng(1).standard_normal((2, 10, 5, 6)).astype(np.float32)
    y = o.transform(x)
    assert np.array_equal(y, x[:, o.permutation_])
    assert np.array_equal(o.inverse_transform(y), x)
    t = torch.from_numpy(x)
    assert torch.equal(o.inverse_transform(o.transform(t)), t)


@settings(max_examples=15, deadline=None)
@given(C=st.integers(1, 24), seed=st.integers(0, 1000),
       name=st.sampled_from(["random", "tsp-correlation", "tsp-mse", "spectral-correlation", "cluster-mse",
                             "sort-variance"]))
def test_bijection_for_any_channel_count(C, seed, name):
    o = make_orderer(name).fit(calib(n=2, C=C, seed=seed, H=7, W=8))
    assert sorted(o.permutation_.tolist()) == list(range(C))


@pytest.mark.parametrize("name", ["tsp-correlation", "tsp-mse", "tsp-ssim", "spectral-correlation",
                                  "cluster-correlation", "tsp-correlation:solver=two_opt"])
def test_planted_sequence_is_recovered(name):
    imgs, hidden = planted()
    order = make_orderer(name).fit(imgs).permutation_.tolist()
    assert order in (hidden.tolist(), hidden[::-1].tolist())


def test_tsp_order_attributes_and_start():
    imgs, hidden = planted()
    o = TSPOrder(start=int(hidden[3])).fit(imgs)
    assert o.permutation_[0] == hidden[3]
    assert o.distance_.shape == (16, 16)
    d = o.distance_
    assert o.tour_cost_ == pytest.approx(d[o.permutation_[:-1], o.permutation_[1:]].sum())
    free = TSPOrder().fit(imgs)
    assert free.tour_cost_ <= o.tour_cost_ + 1e-12


def test_sort_order_sorts_by_the_statistic():
    data = calib(C=12)
    for stat in ("mean", "variance", "energy", "sparsity"):
        o = SortOrder(statistic=stat).fit(data)
        vals = o.statistic_values_[o.permutation_]
        assert np.all(np.diff(vals) >= 0)
    o = SortOrder("mean", descending=True).fit(data)
    assert np.all(np.diff(o.statistic_values_[o.permutation_]) <= 0)
    means = np.mean([x.mean(axis=(1, 2)) for x in data], axis=0)
    assert o.statistic_values_ == pytest.approx(means, rel=1e-5)


def test_nan_in_calibration_is_rejected_by_every_orderer():
    data = calib()
    data[2] = data[2].copy()
    data[2][0, 0, 0] = np.inf
    for name in ORDER_NAMES + ["fixed:path=unused"]:
        o = make_orderer(name)
        with pytest.raises(ValueError, match="calibration image 2"):
            o.fit(data)


def test_sklearn_conventions():
    o = TSPOrder(metric="mse", solver="lkh")
    names = [p for p in inspect.signature(TSPOrder.__init__).parameters if p != "self"]
    assert list(o.get_params()) == names
    assert o.get_params()["metric"] == "mse"
    assert o.set_params(normalization="zscore") is o and o.normalization == "zscore"
    with pytest.raises(ValueError, match="Invalid parameter 'metrik'"):
        o.set_params(metrik="mse")
    with pytest.raises(NotFittedError, match="not fitted"):
        o.transform(np.zeros((10, 2, 2)))
    assert not hasattr(o, "permutation_")  # __init__ only stores parameters


def test_make_orderer_parses_options():
    assert parse_spec("tsp-correlation:normalization=zscore,solver=lkh,start=3,time_budget=1.5") == (
        "tsp-correlation", {"normalization": "zscore", "solver": "lkh", "start": 3, "time_budget": 1.5})
    o = make_orderer("tsp-correlation:normalization=zscore,solver=lkh")
    assert isinstance(o, TSPOrder)
    assert (o.metric, o.normalization, o.solver) == ("correlation", "zscore", "lkh")
    assert make_orderer("cluster-mse:method=complete").method == "complete"
    assert make_orderer("random:seed=4").seed == 4
    assert make_orderer("tsp-ssim").downsample == 2
    with pytest.raises(ValueError, match="unknown orderer 'tsp'|unknown orderer 'magic'"):
        make_orderer("magic")
    with pytest.raises(ValueError, match="no option 'colour'"):
        make_orderer("tsp-mse:colour=red")
    with pytest.raises(ValueError, match="unknown TSP solver"):
        make_orderer("tsp-mse:solver=quantum")
    with pytest.raises(ValueError, match="unknown metric 'l7'"):
        make_orderer("tsp-l7")
    with pytest.raises(ValueError, match="key=value"):
        make_orderer("tsp-mse:zscore")


def test_provenance_and_saved_permutation(tmp_path):
    o = make_orderer("tsp-correlation:solver=lkh").fit(calib())
    p = o.to_permutation(model="mobilenet_v2", layer="features.4.conv.0", calibration_digest="abc", solver="mine")
    prov = p.provenance
    assert prov["orderer"] == "tsp-correlation:solver=lkh" and prov["metric"] == "correlation"
    assert prov["normalization"] == "none" and prov["tour_cost"] == pytest.approx(o.tour_cost_)
    assert prov["solver"] == "mine"  # caller's provenance wins
    assert prov["model"] == "mobilenet_v2" and "package_version" in prov
    path = p.save(tmp_path / "o.json")
    json.loads(path.read_text())
    back = Permutation.load(path, n_channels=10)
    assert np.array_equal(back.order, o.permutation_)
    assert back.provenance["calibration_digest"] == "abc"


def test_fixed_order_from_list_file_and_mismatch(tmp_path):
    data = calib(C=4)
    assert FixedOrder([3, 1, 0, 2]).fit(data).permutation_.tolist() == [3, 1, 0, 2]
    path = tmp_path / "hand.txt"
    path.write_text("2 3 1 0")
    o = make_orderer(f"fixed:path={path}").fit(data)
    assert o.permutation_.tolist() == [2, 3, 1, 0]
    assert make_orderer(f"file:{path}").fit(data).permutation_.tolist() == [2, 3, 1, 0]
    with pytest.raises(ValueError, match="has 4 entries but the features have 5 channels"):
        FixedOrder(path).fit(calib(C=5))


def test_fit_reads_a_one_shot_stream_once():
    seen = []

    def stream():
        for i, x in enumerate(calib(n=4)):
            seen.append(i)
            yield x

    o = TSPOrder().fit(stream())
    assert seen == [0, 1, 2, 3] and o.n_images_ == 4


def test_quantized_normalization_with_a_given_quantizer():
    class Codes:
        bits = 8

        def quantize(self, x):
            return np.clip(np.rint(x * 40), 0, 255).astype(np.uint16)

    imgs, hidden = planted()
    o = TSPOrder(metric="mse", normalization="quantized", quantizer=Codes()).fit(imgs)
    assert o.permutation_.tolist() in (hidden.tolist(), hidden[::-1].tolist())
    assert IdentityOrder().fit(imgs).permutation_.tolist() == list(range(16))


def test_quantized_normalization_fits_a_codec_quantizer_by_name():
    pytest.importorskip("codec")
    imgs, hidden = planted()
    o = make_orderer("tsp-mse:normalization=quantized,quantizer=uniform").fit(imgs)
    assert o.quantizer_.is_fitted
    codes = o.quantizer_.quantize(imgs[0])
    assert np.issubdtype(codes.dtype, np.integer) and codes.max() > 100  # 8-bit codes over the fitted range
    assert o.permutation_.tolist() in (hidden.tolist(), hidden[::-1].tolist())
    assert "quantizer" in o.to_permutation().provenance
    with pytest.raises(ValueError, match="re-iterable"):
        make_orderer("tsp-mse:normalization=quantized").fit(iter(imgs))


@pytest.mark.parametrize("normalized", [False, True])
def test_spectral_order_is_the_dense_fiedler_vector_order(normalized):
    """scikit-learn's spectral_embedding gives the same order as the Laplacian's dense eigenvector."""
    from scipy.linalg import eigh

    from reorder.similarity import affinity

    rng = np.random.default_rng(3)
    base = rng.random((4, 12, 12))
    calib = [np.concatenate([base + 0.05 * k * rng.random((4, 12, 12)) for k in range(5)]) for _ in range(3)]
    o = make_orderer("spectral-correlation", normalized=normalized).fit(calib)
    W = affinity(o.distance_)
    deg = W.sum(axis=1)
    if normalized:
        inv = 1.0 / np.sqrt(deg)
        f = eigh(np.eye(len(deg)) - inv[:, None] * W * inv[None, :], subset_by_index=[1, 1])[1][:, 0] * inv
    else:
        f = eigh(np.diag(deg) - W, subset_by_index=[1, 1])[1][:, 0]
    f = -f if f[np.argmax(np.abs(f))] < 0 else f
    np.testing.assert_array_equal(o.permutation_, np.argsort(f, kind="stable"))
