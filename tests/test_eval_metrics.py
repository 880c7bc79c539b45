"""Feature PSNR, MSE and bits per pixel."""

import math

import numpy as np
import pytest

from eval.analysis.metrics import bits_per_pixel, feature_psnr, mse


def test_mse_and_psnr_known_values():
    ref = np.zeros((2, 4, 4), np.float32)
    ref[0, 0, 0] = 4.0  # range 4
    rec = ref.copy()
    rec[1] += 0.5  # 16 of 32 values off by 0.5 -> MSE 0.125
    assert mse(ref, rec) == pytest.approx(0.125)
    assert feature_psnr(ref, rec) == pytest.approx(10 * math.log10(16 / 0.125))
    assert feature_psnr(ref, rec, peak=1.0) == pytest.approx(10 * math.log10(1 / 0.125))


def test_psnr_identical_is_inf_and_invariant_to_offset_and_scale():
    rng = np.random.default_rng(0)
    ref = rng.random((3, 8, 8)).astype(np.float32)
    assert feature_psnr(ref, ref.copy()) == math.inf
    rec = ref + rng.normal(0, 0.01, ref.shape).astype(np.float32)
    base = feature_psnr(ref, rec)
    assert feature_psnr(3 * ref + 7, 3 * rec + 7) == pytest.approx(base, abs=1e-4)


def test_psnr_peak_comes_from_reference_not_reconstruction():
    ref = np.array([[[0.0, 1.0]]])
    rec_wild = np.array([[[0.0, 100.0]]])
    # a reconstruction with a huge range must not inflate its own PSNR
    assert feature_psnr(ref, rec_wild) == pytest.approx(10 * math.log10(1.0 / (99.0 ** 2 / 2)))


def test_errors():
    with pytest.raises(ValueError, match="shape"):
        mse(np.zeros((2, 3)), np.zeros((3, 2)))
    with pytest.raises(ValueError, match="constant"):
        feature_psnr(np.ones((2, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match="NaN or Inf"):
        mse(np.zeros(3), np.array([0.0, np.nan, 0.0]))
    with pytest.raises(ValueError, match="peak"):
        feature_psnr(np.arange(4.0), np.zeros(4), peak=-1)


def test_bits_per_pixel():
    assert bits_per_pixel(8 * 1000, 512 * 512) == pytest.approx(8000 / 262144)
    assert bits_per_pixel(0, 10) == 0.0
    with pytest.raises(ValueError, match="total_pixels"):
        bits_per_pixel(100, 0)
    with pytest.raises(ValueError, match="total_bits"):
        bits_per_pixel(-1, 10)
