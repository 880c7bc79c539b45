"""Streaming channel distances equal a direct batch computation; SSIM; normalization; bad input."""

import numpy as np
import pytest
import torch
from skimage.metrics import structural_similarity

from reorder.similarity import (
    SIMILARITY_METRICS,
    SimilarityAccumulator,
    distance_matrix,
    downsample_features,
    normalize_channels,
)


def images(n=3, C=6, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        x = rng.gamma(1.0, 1.0, size=(C, 9 + i, 11 + 2 * i)).astype(np.float32)
        x[1] = 0.5 * x[0] + 0.1 * x[1]  # a correlated pair
        x[2] = 3.0  # a constant channel
        out.append(x)
    return out


def naive_distance(imgs, metric, normalization):
    """Direct per-pair loops over all images held in memory (the batch reference)."""
    C = imgs[0].shape[0]
    total = np.zeros((C, C))
    for x in imgs:
        x = x.astype(np.float64)
        if normalization == "minmax":
            lo = x.min(axis=(1, 2), keepdims=True)
            span = x.max(axis=(1, 2), keepdims=True) - lo
            x = np.where(span > 0, (x - lo) / np.where(span > 0, span, 1), 0.0)
        elif normalization == "zscore":
            m = x.mean(axis=(1, 2), keepdims=True)
            s = x.std(axis=(1, 2), keepdims=True)
            x = np.where(s > 0, (x - m) / np.where(s > 0, s, 1), 0.0)
        for a in range(C):
            for b in range(C):
                u, v = x[a].ravel(), x[b].ravel()
                if metric == "mse":
                    val = np.mean((u - v) ** 2)
                elif metric == "correlation":
                    ok = u.std() > 0 and v.std() > 0
                    val = np.corrcoef(u, v)[0, 1] if ok else 0.0
                elif metric == "cosine":
                    nu, nv = np.linalg.norm(u), np.linalg.norm(v)
                    val = u @ v / (nu * nv) if nu > 0 and nv > 0 else 0.0
                total[a, b] += val
    M = total / len(imgs)
    D = M if metric == "mse" else 1 - M
    np.fill_diagonal(D, 0)
    return np.maximum(D, 0)


@pytest.mark.parametrize("metric", ["mse", "correlation", "cosine"])
@pytest.mark.parametrize("normalization", ["none", "minmax", "zscore"])
def test_streaming_equals_batch(metric, normalization):
    imgs = images()
    D = distance_matrix(iter(imgs), metric=metric, normalization=normalization)  # one-shot iterator: one pass
    assert D == pytest.approx(naive_distance(imgs, metric, normalization), abs=1e-9)
    assert np.allclose(D, D.T) and np.all(np.diag(D) == 0) and D.min() >= 0


def test_ssim_matches_scikit_image_per_pair_and_self_is_one():
    imgs = images(n=2, C=4)
    acc = SimilarityAccumulator("ssim", "minmax")
    for x in imgs:
        acc.update(x)
    expected = np.zeros((4, 4))
    for x in imgs:
        y = normalize_channels(x, "minmax")
        for a in range(4):
            for b in range(4):
                expected[a, b] += structural_similarity(y[a], y[b], win_size=7, data_range=1.0)
    S = acc.mean_matrix()
    assert S == pytest.approx(expected / 2, abs=1e-5)
    assert np.diag(S) == pytest.approx(1.0, abs=1e-6)
    D = acc.distance()
    assert np.all(np.diag(D) == 0) and D.min() >= 0


@pytest.mark.parametrize("metric", SIMILARITY_METRICS)
def test_identical_channels_have_zero_distance(metric):
    rng = np.random.default_rng(1)
    x = rng.random((4, 12, 12))
    x[3] = x[1]
    D = distance_matrix([x, x * 2.0], metric=metric, normalization="zscore")
    assert D[1, 3] == pytest.approx(0.0, abs=1e-6)
    assert D[0, 1] > 1e-3


def test_quantized_normalization_uses_the_codes():
    class Floor255:
        bits = 8

        def quantize(self, x):
            return np.clip(np.floor(x * 255), 0, 255).astype(np.uint16)

    rng = np.random.default_rng(2)
    x = rng.random((3, 8, 8))
    x[1] = x[0] + 1e-4  # identical after 8-bit quantization except at bin edges
    D = distance_matrix([x], metric="mse", normalization="quantized", quantizer=Floor255())
    codes = Floor255().quantize(x).astype(float)
    assert D[0, 2] == pytest.approx(np.mean((codes[0] - codes[2]) ** 2))
    with pytest.raises(ValueError, match="quantizer"):
        SimilarityAccumulator("mse", "quantized")


def test_nan_and_inf_are_rejected_naming_the_image():
    imgs = images()
    imgs[1] = imgs[1].copy()
    imgs[1][4, 2, 3] = np.nan
    with pytest.raises(ValueError, match="calibration image 1 contains 1 NaN/Inf.*channel 4"):
        distance_matrix(imgs)
    imgs[1][4, 2, 3] = np.inf
    with pytest.raises(ValueError, match="calibration image 1"):
        distance_matrix(imgs, metric="mse")


def test_shape_and_option_errors():
    with pytest.raises(ValueError, match="has 5 channels but earlier images have 6"):
        distance_matrix([np.zeros((6, 8, 8)), np.zeros((5, 8, 8))])
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        distance_matrix([np.zeros((8, 8))])
    with pytest.raises(ValueError, match="unknown metric 'l1'"):
        SimilarityAccumulator("l1")
    with pytest.raises(ValueError, match="unknown normalization"):
        SimilarityAccumulator("mse", "log")
    with pytest.raises(ValueError, match="at least one"):
        distance_matrix([])


def test_downsample_is_average_pooling_and_torch_input_is_accepted():
    rng = np.random.default_rng(3)
    x = rng.random((5, 10, 12)).astype(np.float32)
    pooled = x.reshape(5, 5, 2, 6, 2).mean(axis=(2, 4))
    assert np.allclose(downsample_features(x, 2), pooled)
    a = distance_matrix([torch.from_numpy(x)], metric="correlation", downsample=2)
    b = distance_matrix([pooled], metric="correlation")
    assert a == pytest.approx(b, abs=1e-9)
