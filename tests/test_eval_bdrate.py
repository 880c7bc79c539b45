"""BD-rate / BD-quality against independently published reference values, plus the error cases."""

import math
import warnings

import numpy as np
import pytest

from eval.analysis.bdrate import RDCurveWarning, bd_psnr, bd_quality, bd_rate, check_curve
from eval.errors import RDCurveError

# VCEG-M33's example curves and the 9-point "barb512" curves, with the BD values that the ETRO
# reference implementation asserts for them (tbr/bjontegaard_cpp, example.cpp: "VCEG-M33 numbers",
# bdsnr 0.800713 dB / bdbr -13.261773 %; "ETRO barb512 numbers", 0.072297 dB / -0.903450 %). That
# implementation fits a 3rd-order polynomial (least squares for more than 4 points), i.e. our "cubic".
M33_A = ([90.33, 181.03, 332.99, 547.79], [27.95, 31.17, 34.44, 38.11])
M33_B = ([127.1719, 186.14, 307.2924, 481.5588], [29.9286, 32.4165, 34.7013, 37.4561])
ETRO_A = ([2.99899, 1.99884, 1.49673, 0.99707, 0.745941, 0.596436, 0.495148, 0.29425, 0.244049],
          [48.6681, 43.8357, 41.3982, 38.0124, 35.5122, 33.8673, 32.6658, 29.4505, 28.484])
ETRO_B = ([2.997253, 1.968292, 1.472565, 0.994965, 0.748871, 0.58902, 0.499176, 0.296753, 0.249634],
          [48.5637, 43.7318, 41.2727, 38.0001, 35.6375, 33.9057, 32.8318, 29.6851, 28.8244])

# x265 curves published as the usage example of the FAU-LMS "bjontegaard" package (BSD-3-Clause;
# README and example_usage.py). Expected PCHIP values were produced by that package (v1.3.0,
# method="pchip"), whose authors verified its PCHIP against the JVET CTC Excel sheet (JVET-T2010)
# to at least 10 decimals. Our implementation is independent (scipy's PchipInterpolator).
FAU_A = ([9487.76, 4593.60, 2486.44, 1358.24], [40.037, 38.615, 36.845, 34.851])
FAU_B = ([9787.80, 4469.00, 2451.52, 1356.24], [40.121, 38.651, 36.970, 34.987])
FAU_HIGH_A = ([82472.76, 26875.24, 9487.76, 4593.6], [43.825, 41.404, 40.037, 38.615])
FAU_HIGH_B = ([99896.96, 33952.04, 9787.8, 4469.0], [44.731, 41.875, 40.121, 38.651])


def test_cubic_matches_vceg_m33_reference():
    assert bd_rate(*M33_A, *M33_B, method="cubic") == pytest.approx(-13.261773, abs=5e-7)
    assert bd_quality(*M33_A, *M33_B, method="cubic") == pytest.approx(0.800713, abs=5e-7)


def test_cubic_least_squares_matches_etro_nine_point_reference():
    assert bd_rate(*ETRO_A, *ETRO_B, method="cubic") == pytest.approx(-0.903450, abs=5e-7)
    assert bd_psnr(*ETRO_A, *ETRO_B, method="cubic") == pytest.approx(0.072297, abs=5e-7)


@pytest.mark.parametrize("a, b, rate, psnr", [
    (FAU_A, FAU_B, -4.417485350589045, 0.11969278542479489),
    (FAU_HIGH_A, FAU_HIGH_B, -4.47218200276197, 0.08887484704747745),
    (M33_A, M33_B, -13.29252411102112, 0.8091320352726121),
])
def test_pchip_matches_jvet_style_reference(a, b, rate, psnr):
    assert bd_rate(*a, *b) == pytest.approx(rate, abs=1e-9)
    assert bd_quality(*a, *b) == pytest.approx(psnr, abs=1e-9)


@pytest.mark.parametrize("method", ["pchip", "cubic"])
def test_scaled_rates_give_exact_percentage(method):
    rate = np.array([100.0, 180.0, 350.0, 700.0, 1300.0])
    q = np.array([30.0, 32.5, 35.1, 37.0, 39.2])
    assert bd_rate(rate, q, 0.8 * rate, q, method=method) == pytest.approx(-20.0, abs=1e-9)
    assert bd_rate(rate, q, 1.25 * rate, q, method=method) == pytest.approx(25.0, abs=1e-9)
    assert bd_quality(rate, q, rate, q + 0.7, method=method) == pytest.approx(0.7, abs=1e-9)
    assert bd_rate(rate, q, rate, q, method=method) == pytest.approx(0.0, abs=1e-12)


def test_point_order_and_curve_swap():
    r, q = FAU_A
    shuffled = bd_rate(r[::-1], q[::-1], *FAU_B)
    assert shuffled == pytest.approx(bd_rate(*FAU_A, *FAU_B), abs=1e-12)
    # swapping anchor and test inverts the mean log-rate ratio: (1+a)(1+b) = 1
    ab = bd_rate(*FAU_A, *FAU_B) / 100
    ba = bd_rate(*FAU_B, *FAU_A) / 100
    assert (1 + ab) * (1 + ba) == pytest.approx(1.0, abs=1e-12)


def test_too_few_points_names_curve():
    with pytest.raises(RDCurveError, match=r"test curve has 3 points.*at least 4"):
        bd_rate(*FAU_A, FAU_B[0][:3], FAU_B[1][:3])


def test_nan_and_nonpositive_rates_rejected():
    with pytest.raises(RDCurveError, match=r"anchor curve has NaN/Inf at #"):
        bd_rate(FAU_A[0], [40.0, math.nan, 36.0, 34.0], *FAU_B)
    with pytest.raises(RDCurveError, match=r"non-positive rates"):
        bd_rate([0.0, 1.0, 2.0, 3.0], [30.0, 31.0, 32.0, 33.0], *FAU_B)
    with pytest.raises(RDCurveError, match=r"2 rates but 3 quality"):
        check_curve([1.0, 2.0], [1.0, 2.0, 3.0])


def test_nonmonotonic_curve_rejected_with_points_named():
    rate = [100.0, 200.0, 400.0, 800.0]
    q = [30.0, 33.0, 32.0, 36.0]  # quality drops between 200 and 400
    with pytest.raises(RDCurveError, match=r"identity curve is not monotonic.*rate=200.*rate=400"):
        bd_rate(rate, q, rate, [31.0, 33.5, 35.0, 37.0], names=("identity", "tsp"))


def test_nonmonotonic_allowed_returns_value_and_warns():
    rate = [100.0, 200.0, 400.0, 800.0]
    q = [30.0, 33.0, 32.0, 36.0]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        value = bd_rate(rate, q, [r * 0.9 for r in rate], q, allow_nonmonotonic=True)
    assert value == pytest.approx(-10.0, abs=1e-9)
    messages = sorted(str(w.message) for w in caught if issubclass(w.category, RDCurveWarning))
    assert len(messages) == 2 and messages[0].startswith("anchor curve is not monotonic")
    assert messages[1].startswith("test curve is not monotonic")


def test_duplicate_points_rejected():
    with pytest.raises(RDCurveError, match="same rate twice"):
        bd_rate([100.0, 100.0, 400.0, 800.0], [30.0, 31.0, 32.0, 36.0], *FAU_B)
    with pytest.raises(RDCurveError, match="same quality at two rates"):
        bd_rate([100.0, 200.0, 400.0, 800.0], [30.0, 31.0, 31.0, 36.0], *FAU_B)


def test_disjoint_quality_ranges_rejected():
    with pytest.raises(RDCurveError, match="do not overlap"):
        bd_rate([1, 2, 3, 4], [10.0, 11.0, 12.0, 13.0], [1, 2, 3, 4], [20.0, 21.0, 22.0, 23.0])


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown BD method 'akima'"):
        bd_rate(*FAU_A, *FAU_B, method="akima")


def test_monotonic_curves_do_not_warn():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        bd_rate(*FAU_A, *FAU_B)
