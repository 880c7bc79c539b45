"""Quantizers: exact inverse on every code, monotone curves, streaming range fitting, serialisation,
scikit-learn estimator conventions and the quantizer registry."""
import json

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from codec import (
    CURVE_NAMES,
    QUANTIZERS,
    Quantizer,
    LogQuantizer,
    MuLawQuantizer,
    PowerQuantizer,
    UniformQuantizer,
    make_quantizer,
    quantizer_from_dict,
)


def relu_like(seed=0, n=6, shape=(5, 9, 11)):
    rng = np.random.default_rng(seed)
    return [np.maximum(rng.normal(0.2, 1.0, size=shape), 0).astype(np.float32) * (1 + i % 3) for i in range(n)]


def signed(seed=1, n=4):
    rng = np.random.default_rng(seed)
    return [(rng.standard_t(3, size=(3, 8, 8)) - 0.7).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("name", CURVE_NAMES)
@pytest.mark.parametrize("bits", [8, 10])
@pytest.mark.parametrize("data", ["relu", "signed"])
def test_exact_inverse_on_every_code(name, bits, data):
    calib = relu_like() if data == "relu" else signed()
    q = make_quantizer(name, bits=bits).fit(calib)
    codes = np.arange(2 ** bits, dtype=np.uint16)
    values = q.dequantize(codes)
    assert values.dtype == np.float32
    np.testing.assert_array_equal(q.quantize(values), codes)
    # monotone and strictly increasing in the code
    assert np.all(np.diff(values.astype(np.float64)) > 0)
    assert values[0] == pytest.approx(q.xmin_, abs=1e-6) and values[-1] == pytest.approx(q.xmax_, rel=1e-6)


@pytest.mark.parametrize("name", CURVE_NAMES)
def test_quantize_is_monotone_and_clips(name):
    q = make_quantizer(name, bits=8, xmin=-1.0, xmax=3.0).fit([])
    x = np.linspace(-2, 4, 5001)
    c = q.quantize(x)
    assert c.dtype == np.uint16
    assert np.all(np.diff(c.astype(int)) >= 0)
    assert c[0] == 0 and c[-1] == 255


def test_error_is_at_most_half_a_step_for_uniform():
    calib = relu_like()
    q = UniformQuantizer(bits=8).fit(calib)
    x = calib[0]
    err = np.abs(q.dequantize(q.quantize(x)) - x)
    assert err.max() <= (q.xmax_ - q.xmin_) / 255 / 2 + 1e-6


def test_log_curve_spends_codes_near_zero():
    calib = relu_like()
    u, lg = UniformQuantizer().fit(calib), LogQuantizer().fit(calib)
    small = np.array([0.01, 0.05])
    assert np.all(lg.quantize(small) > u.quantize(small))
    # documented curve: v = log1p(s u) / log1p(s)
    x = np.array([0.3 * lg.xmax_])
    expected = np.rint(np.log1p(100 * 0.3) / np.log1p(100) * 255)
    assert lg.quantize(x)[0] == expected


def test_power_and_mulaw_curves_match_docstrings():
    p = PowerQuantizer(gamma=0.5, xmin=0.0, xmax=4.0).fit([])
    assert p.quantize(np.array([1.0]))[0] == round(0.5 * 255)
    m = MuLawQuantizer(mu=255.0, xmin=-2.0, xmax=2.0).fit([])
    assert m.quantize(np.array([0.0]))[0] in (127, 128)  # zero sits in the middle for a symmetric range
    lg = LogQuantizer(shape=255.0, xmin=0.0, xmax=2.0).fit([])
    m0 = MuLawQuantizer(mu=255.0, xmin=0.0, xmax=2.0).fit([])
    x = np.linspace(0, 2, 301)
    np.testing.assert_array_equal(lg.quantize(x), m0.quantize(x))


def test_fit_minmax_streams_over_a_generator():
    calib = relu_like()
    consumed = []

    def gen():
        for a in calib:
            consumed.append(1)
            yield a

    q = UniformQuantizer().fit(gen())
    assert len(consumed) == len(calib)
    assert q.xmin_ == float(min(a.min() for a in calib))
    assert q.xmax_ == float(max(a.max() for a in calib))


def test_percentile_is_mean_of_per_array_percentiles():
    calib = relu_like()
    q = UniformQuantizer(percentile=99.0).fit(calib)
    hi = np.mean([np.percentile(a.astype(np.float64), 99.0) for a in calib])
    lo = np.mean([np.percentile(a.astype(np.float64), 1.0) for a in calib])
    assert q.xmax_ == pytest.approx(hi)
    assert q.xmin_ == pytest.approx(max(lo, min(a.min() for a in calib)))
    assert q.xmax_ < max(a.max() for a in calib)
    # values above the range clip to the top code
    assert q.quantize(np.array([1e3]))[0] == 255


def test_fixed_range_is_kept_and_partial_range_fitted():
    calib = relu_like()
    q = LogQuantizer(xmin=0.0, xmax=6.0).fit(calib)
    assert (q.xmin_, q.xmax_) == (0.0, 6.0)
    q2 = UniformQuantizer(xmin=-1.0).fit(calib)
    assert q2.xmin_ == -1.0 and q2.xmax_ == float(max(a.max() for a in calib))


def test_constant_calibration_data_round_trips():
    q = UniformQuantizer().fit([np.zeros((2, 3, 3), np.float32)])
    assert q.xmax_ > q.xmin_
    assert np.all(q.dequantize(q.quantize(np.zeros(4))) == 0)


@pytest.mark.parametrize("name", CURVE_NAMES)
def test_to_dict_round_trip_through_json(name):
    q = make_quantizer(name, bits=10, percentile=99.5).fit(signed())
    d = json.loads(json.dumps(q.to_dict()))
    q2 = quantizer_from_dict(d)
    assert type(q2) is type(q) and q2.get_params() == q.get_params()
    assert (q2.xmin_, q2.xmax_) == (q.xmin_, q.xmax_)
    codes = np.arange(1024, dtype=np.uint16)
    np.testing.assert_array_equal(q2.dequantize(codes), q.dequantize(codes))
    unfitted = quantizer_from_dict(make_quantizer(name).to_dict())
    assert not unfitted.is_fitted


def test_make_quantizer_spec_strings():
    q = make_quantizer("log:bits=10,percentile=99.9")
    assert isinstance(q, LogQuantizer) and q.bits == 10 and q.percentile == 99.9
    q = make_quantizer("power:gamma=0.4", bits=10)
    assert isinstance(q, PowerQuantizer) and q.gamma == 0.4 and q.bits == 10
    assert isinstance(make_quantizer("mu-law"), MuLawQuantizer)
    with pytest.raises(ValueError, match="valid names: uniform, log, power, mulaw"):
        make_quantizer("cubic")
    with pytest.raises(ValueError, match="no option 'gamma'.*valid options"):
        make_quantizer("log", gamma=2)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"bits": 12}, "bits=12"), ({"percentile": 30}, "percentile"), ({"xmin": 2.0, "xmax": 1.0}, "xmax"),
     ({"shape": 0}, "shape=0")],
)
def test_bad_parameters_raise_in_fit_and_make_quantizer(kwargs, match):
    q = LogQuantizer(**kwargs)  # scikit-learn convention: __init__ only stores its arguments
    assert q.get_params()[next(iter(kwargs))] == next(iter(kwargs.values()))
    with pytest.raises(ValueError, match=match):
        q.fit(relu_like())
    with pytest.raises(ValueError, match=match):
        make_quantizer("log", **kwargs)


def test_bad_inputs_name_the_problem():
    q = UniformQuantizer()
    with pytest.raises(ValueError, match="not fitted"):
        q.quantize(np.zeros(3))
    with pytest.raises(ValueError, match="calibration array 1 contains 1 NaN"):
        q.fit([np.zeros(3), np.array([0.0, np.nan])])
    with pytest.raises(ValueError, match="calibration data is empty"):
        q.fit([])
    q.fit(relu_like())
    with pytest.raises(ValueError, match="codes span"):
        q.dequantize(np.array([0, 256]))
    with pytest.raises(ValueError, match="integer codes"):
        q.dequantize(np.array([0.5]))


def test_get_and_set_params():
    q = LogQuantizer(bits=10, shape=20.0).fit(relu_like())
    assert q.get_params() == {"bits": 10, "percentile": 100.0, "xmin": None, "xmax": None, "shape": 20.0}
    table = q.table_
    q.set_params(shape=5.0)  # does no work: the old fit stays, but no longer counts as fitted
    assert q.shape == 5.0 and q.table_ is table and not q.is_fitted
    with pytest.raises(NotFittedError, match="parameter changed"):
        q.quantize(np.zeros(3))
    q.set_params(shape=20.0)
    assert q.is_fitted
    with pytest.raises(ValueError, match="Invalid parameter 'mu'"):
        q.set_params(mu=3)


# ------------------------------------------------------------------ scikit-learn conventions


@pytest.mark.parametrize("name", CURVE_NAMES)
def test_clone_gives_an_equal_unfitted_quantizer(name):
    q = make_quantizer(name, bits=10, percentile=99.0).fit(signed())
    c = clone(q)
    assert type(c) is type(q) and c.get_params() == q.get_params() and c is not q
    assert not c.is_fitted and not any(k.endswith("_") for k in vars(c))
    np.testing.assert_array_equal(c.fit(signed()).table_, q.table_)
    assert c.to_dict() == q.to_dict()


@pytest.mark.parametrize("name", CURVE_NAMES)
def test_unfitted_quantizer_raises_not_fitted_error(name):
    q = make_quantizer(name)
    assert not q.is_fitted
    for call, arg in ((q.quantize, np.zeros(3)), (q.dequantize, np.zeros(3, np.uint16)),
                      (q.transform, np.zeros(3)), (q.inverse_transform, np.zeros(3, np.uint16))):
        with pytest.raises(NotFittedError, match="not fitted"):
            call(arg)
    assert issubclass(NotFittedError, ValueError) and issubclass(NotFittedError, AttributeError)


def test_fit_follows_the_estimator_api():
    q = UniformQuantizer()
    assert q.fit(relu_like(), y=None) is q
    assert {k for k in vars(q) if k.endswith("_")} == {"xmin_", "xmax_", "table_", "fitted_params_"}
    x = relu_like()[0]
    np.testing.assert_array_equal(q.transform(x), q.quantize(x))
    codes = q.quantize(x)
    np.testing.assert_array_equal(q.inverse_transform(codes), q.dequantize(codes))


def test_fixed_range_is_fitted_by_fit_without_reading_data():
    q = MuLawQuantizer(xmin=-2.0, xmax=2.0)
    assert not q.is_fitted and not hasattr(q, "xmin_")
    # described with its range like a fitted one (to_dict output is part of stored cell keys)
    assert q.to_dict()["range"] == [-2.0, 2.0]
    assert quantizer_from_dict(q.to_dict()).is_fitted

    def never():
        raise AssertionError("fit read calibration data for a fixed range")
        yield

    assert q.fit(never()).is_fitted and (q.xmin_, q.xmax_) == (-2.0, 2.0)
    assert q.to_dict() == quantizer_from_dict(q.to_dict()).to_dict()


# ------------------------------------------------------------------ registry and spec strings


@pytest.mark.parametrize("name", CURVE_NAMES)
def test_spec_string_round_trip(name):
    from codec.registry import format_spec

    q = make_quantizer(name, bits=10, percentile=99.5, xmin=-1.5)
    spec = format_spec(name, q.get_params())
    q2 = make_quantizer(spec)
    assert type(q2) is type(q) and q2.get_params() == q.get_params()
    assert q2.to_dict() == q.to_dict()


def test_a_registered_class_is_made_by_name(monkeypatch):
    monkeypatch.setattr(QUANTIZERS, "_classes", dict(QUANTIZERS._classes))
    monkeypatch.setattr(QUANTIZERS, "_aliases", dict(QUANTIZERS._aliases))

    @QUANTIZERS.register("cube-root", "cbrt")
    class CubeRootQuantizer(Quantizer):
        name = "cube-root"

        def _curve(self, u):
            return np.cbrt(u)

        def _inverse_curve(self, v):
            return v ** 3

    assert "cube-root" in QUANTIZERS.names() and CubeRootQuantizer.registry_name == "cube-root"
    q = make_quantizer("cbrt:bits=10").fit(relu_like())
    assert isinstance(q, CubeRootQuantizer) and q.bits == 10
    codes = np.arange(1024, dtype=np.uint16)
    np.testing.assert_array_equal(q.quantize(q.dequantize(codes)), codes)
    assert isinstance(quantizer_from_dict(q.to_dict()), CubeRootQuantizer)
    assert clone(q).get_params() == q.get_params()
    with pytest.raises(ValueError, match="no option 'gamma'; valid options: bits, percentile, xmin, xmax"):
        make_quantizer("cube-root", gamma=2)


# ------------------------------------------------------------------ the MPEG anchors' options of the uniform quantizer
@pytest.mark.parametrize("offset", [0.0, -30.0, 1000.0])
def test_floor_rounding_is_exact_on_every_code_and_keeps_its_steps(offset):
    calib = [a + np.float32(offset) for a in signed()]
    q = make_quantizer("uniform:bits=10,rounding=floor").fit(calib)
    codes = np.arange(1024, dtype=np.uint16)
    values = q.dequantize(codes)
    np.testing.assert_array_equal(q.quantize(values), codes)
    assert np.all(np.diff(values.astype(np.float64)) > 0)
    x = np.concatenate([a.ravel() for a in calib])
    err = x.astype(np.float64) - q.dequantize(q.quantize(x))
    step = (q.xmax_ - q.xmin_) / 1023
    ulp = 2 * float(np.spacing(np.float32(np.abs(x).max())))  # float32 table values near a large offset
    assert err.min() > -ulp and err.max() < step + ulp  # floor: the value lies in [its code's value, +1 step)
    nearest = make_quantizer("uniform:bits=10").fit(calib)
    assert np.abs(x - nearest.dequantize(nearest.quantize(x))).max() <= step / 2 + ulp


def test_new_uniform_options_keep_old_keys_and_round_trip():
    assert "rounding" not in make_quantizer("uniform:bits=10").to_dict()["params"]  # stored cell keys unchanged
    assert make_quantizer("uniform").to_dict() == {"format": "fcm-quantizer", "version": 1, "name": "uniform",
                                                   "params": {"bits": 8, "percentile": 100.0, "xmin": None,
                                                              "xmax": None}, "range": None}
    for spec in ("uniform:bits=10,rounding=floor", "uniform:bits=10,rounding=floor,per_image=true"):
        q = make_quantizer(spec).fit(signed())
        q2 = quantizer_from_dict(json.loads(json.dumps(q.to_dict())))
        assert q2.get_params() == q.get_params() and q2.is_fitted
        x = signed(seed=8)[0]
        np.testing.assert_array_equal(q2.quantize(x), q.quantize(x))
    with pytest.raises(ValueError, match="rounding='up'; use one of nearest, floor"):
        make_quantizer("uniform:rounding=up")
    with pytest.raises(ValueError, match="per_image=true measures the range on each image"):
        make_quantizer("uniform:per_image=true,xmax=3")


def test_per_image_range_is_the_images_and_is_sent():
    q = make_quantizer("uniform:bits=8,per_image=true").fit(relu_like())
    assert q.side_bits(144) == 64 and make_quantizer("uniform").side_bits(144) == 0
    a, b = signed(seed=3)[0], signed(seed=4)[0] * 10
    ca = q.quantize(a)
    side_a = q.side_
    assert (float(side_a[0]), float(side_a[1])) == (float(a.min()), float(a.max())) and ca.max() == 255 and ca.min() == 0
    cb = q.quantize(b)  # the next image brings its own range ...
    np.testing.assert_allclose(q.dequantize(cb), b, atol=(b.max() - b.min()) / 255)
    np.testing.assert_allclose(q.dequantize(ca, side=side_a), a, atol=(a.max() - a.min()) / 255)  # ... or pass one
    flat = q.quantize(np.full((2, 3, 3), 7.5, np.float32))  # a constant image still round-trips
    np.testing.assert_array_equal(q.dequantize(flat), 7.5)
    fresh = make_quantizer("uniform:per_image=true").fit(relu_like())
    with pytest.raises(ValueError, match="dequantize needs the image's"):
        fresh.dequantize(ca)
    with pytest.raises(ValueError, match="input to quantize contains 1 NaN"):
        fresh.quantize(np.array([[[np.nan, 1.0]]]))
