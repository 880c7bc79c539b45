"""Per-channel normalized quantizer (codec.normalize, registered as "channel").

codec.normalize is imported inside the tests only: it joins QUANTIZERS on first use, and the
curve tests and the tuner iterate QUANTIZERS.names() at collection/import.
"""
import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from codec import make_quantizer, quantizer_from_dict

SCALES = np.array([0.01, 0.3, 1.0, 20.0, 500.0])


def scaled_relu(seed=0, n=6, hw=(7, 9)):
    """Channels whose values differ in scale by up to 5e4 (plus one dead channel at the end)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        x = np.maximum(rng.normal(0.2, 1.0, size=(len(SCALES), *hw)), 0) * SCALES[:, None, None]
        out.append(np.concatenate([x, np.zeros((1, *hw))]).astype(np.float32))
    return out


def grid(q, n_ch):
    return np.broadcast_to(np.arange(q.levels, dtype=np.uint16), (n_ch, 1, q.levels)).copy()


@pytest.mark.parametrize("spec", [
    "channel", "channel:stat=max,curve=uniform", "channel:stat=std,curve=mulaw,bits=10",
    "channel:stat=p99,curve=power,shape=0.5", "channel:stat=p99.9,center=false,bits=10",
    "channel:stat=std,center=false,curve=log,shape=20,percentile=99.5",
])
def test_exact_inverse_on_the_integer_grid(spec):
    calib = scaled_relu()
    q = make_quantizer(spec).fit(calib)
    codes = grid(q, calib[0].shape[0])
    values = q.dequantize(codes)
    assert values.dtype == np.float32 and values.shape == codes.shape
    np.testing.assert_array_equal(q.quantize(values), codes)
    np.testing.assert_array_equal(q.dequantize(q.quantize(values)), values)
    assert np.all(np.diff(values[:-1].astype(np.float64), axis=-1) > 0)  # monotone in every live channel


def test_per_image_round_trip_and_side_bits():
    calib = scaled_relu()
    q = make_quantizer("channel:per_image=true,stat=max").fit(calib)
    n_ch = calib[0].shape[0]
    assert q.side_bits(n_ch) == 32 * n_ch and make_quantizer("channel").fit(calib).side_bits(n_ch) == 0
    assert make_quantizer("log").fit(calib).side_bits(n_ch) == 0
    x = scaled_relu(seed=5, n=1)[0] * 3.0
    codes = q.quantize(x)
    o16, s16 = q.side_
    assert o16.dtype == np.float16 and s16.dtype == np.float16 and o16.shape == (n_ch,)
    values = q.dequantize(grid(q, n_ch))
    np.testing.assert_array_equal(q.quantize(values), grid(q, n_ch))
    rec = q.dequantize(codes, side=(o16, s16))
    assert np.abs(rec - x).max() < 0.05 * np.abs(x).max()
    with pytest.raises(ValueError, match="side information"):
        clone(q).fit(calib).dequantize(codes)


def test_lower_error_per_channel_than_the_global_log_quantizer():
    calib, test = scaled_relu(n=8), scaled_relu(seed=3, n=3)
    for bits in (8, 10):
        glob = make_quantizer("log", bits=bits).fit(calib)
        chan = make_quantizer("channel", bits=bits, stat="max").fit(calib)
        err_g = np.mean([((glob.dequantize(glob.quantize(x)) - x) ** 2).mean(axis=(1, 2)) for x in test], axis=0)
        err_c = np.mean([((chan.dequantize(chan.quantize(x)) - x) ** 2).mean(axis=(1, 2)) for x in test], axis=0)
        live = slice(0, len(SCALES))
        # relative to each channel's power: the small channels are where the global range fails
        power = np.mean([(x ** 2).mean(axis=(1, 2)) for x in test], axis=0)[live]
        assert np.all(err_c[live] / power <= err_g[live] / power + 1e-12)
        assert np.all(err_c[:2] < err_g[:2] / 10)


def test_permuted_parameters_follow_the_channel_order():
    from reorder import Permutation

    calib = scaled_relu()
    q = make_quantizer("channel:stat=p99.9").fit(calib)
    perm = Permutation(np.array([3, 0, 5, 1, 4, 2]))
    x = scaled_relu(seed=9, n=1)[0]
    qp = q.permuted(perm)
    assert qp is not q and np.array_equal(qp.offset_, q.offset_[perm.order])
    np.testing.assert_array_equal(qp.quantize(perm.apply(x)), perm.apply(q.quantize(x)))
    codes = q.quantize(x)
    np.testing.assert_array_equal(perm.invert(qp.dequantize(perm.apply(codes))), q.dequantize(codes))
    np.testing.assert_array_equal(q.quantize(x), codes)  # the original is untouched
    assert np.array_equal(q.permuted(np.arange(6)).table_, q.table_)
    glob = make_quantizer("log").fit(calib)
    assert glob.permuted(perm) is glob
    with pytest.raises(ValueError, match="permutation of 6"):
        q.permuted([0, 1, 2])


@pytest.mark.parametrize("spec", ["channel:stat=std,curve=mulaw,bits=10", "channel:stat=p99.9,percentile=99.5",
                                  "channel:per_image=true"])
def test_to_dict_round_trip_through_json(spec):
    q = make_quantizer(spec).fit(scaled_relu())
    d = json.loads(json.dumps(q.to_dict()))
    assert d["name"] == "channel" and d["n_channels"] == 6
    if not q.per_image:
        assert d["offsets"] == list(q.offset_) and d["scales"] == list(q.scale_)
    q2 = quantizer_from_dict(d)
    assert type(q2) is type(q) and q2.is_fitted and q2.get_params() == q.get_params()
    assert q2.to_dict() == q.to_dict()
    x = scaled_relu(seed=4, n=1)[0]
    codes = q.quantize(x)
    np.testing.assert_array_equal(q2.quantize(x), codes)
    np.testing.assert_array_equal(q2.dequantize(codes), q.dequantize(codes))
    assert not quantizer_from_dict(make_quantizer(spec).to_dict()).is_fitted


def test_clone_and_estimator_conventions():
    q = make_quantizer("channel:stat=std,bits=10").fit(scaled_relu())
    c = clone(q)
    assert type(c) is type(q) and c.get_params() == q.get_params()
    assert not c.is_fitted and not any(k.endswith("_") for k in vars(c))
    with pytest.raises(NotFittedError, match="not fitted"):
        c.quantize(scaled_relu()[0])
    np.testing.assert_array_equal(c.fit(scaled_relu()).table_, q.table_)
    q.set_params(stat="max")
    assert not q.is_fitted


def test_spec_strings_and_bad_options():
    from codec import ChannelQuantizer

    q = make_quantizer("channel:curve=mulaw,stat=std,bits=10,shape=30")
    assert isinstance(q, ChannelQuantizer) and (q.curve, q.stat, q.bits, q.shape) == ("mulaw", "std", 10, 30)
    assert isinstance(make_quantizer("per-channel"), ChannelQuantizer)
    assert make_quantizer("channel", per_image=True).per_image is True
    for spec, match in [("channel:stat=p30", "stat"), ("channel:stat=median", "stat"), ("channel:curve=cubic", "curve"),
                        ("channel:curve=uniform,shape=3", "no shape"), ("channel:bits=12", "bits=12"),
                        ("channel:center=maybe", "center")]:
        with pytest.raises(ValueError, match=match):
            make_quantizer(spec)
    with pytest.raises(ValueError, match="iterator"):
        make_quantizer("channel").fit(iter(scaled_relu()))
    with pytest.raises(ValueError, match="6 channels"):
        make_quantizer("channel").fit(scaled_relu()).quantize(np.zeros((4, 3, 3)))
