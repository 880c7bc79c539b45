"""Channel-to-channel distances accumulated over a calibration set in one streaming pass.

A video codec predicts a frame from its neighbours, so a good channel order puts
channels that look alike next to each other. "Alike" is measured here per image
and averaged over the calibration images, which are seen one at a time (never
stacked), so memory stays at one image plus C x C accumulators.

Metrics (all returned as a symmetric distance matrix, zero diagonal, >= 0):

- ``mse``: mean squared difference of two channels.
- ``correlation``: ``1 - r`` with r the Pearson correlation (constant channels get r = 0).
- ``cosine``: ``1 - cos`` of the two channels as vectors (all-zero channels get cos = 0).
- ``ssim``: ``1 - SSIM`` with the usual 7x7 sliding-window SSIM (clipped to >= 0).

MSE, correlation and cosine are all Gram-matrix computations (``X @ X.T`` in float64
for the image's channels as rows), about a second per 256-channel 200x272 image.
SSIM needs windowed cross moments for every channel pair, computed in blocks with
box filters in torch: C**2/2 pairs times the pixels, hence the ``downsample`` factor.

How channels are normalized before comparison is a choice (it changes which
channels look alike): ``none``; ``minmax`` (each channel of each image to [0, 1]);
``zscore`` (zero mean, unit variance per channel per image); ``quantized`` (the
integer codes of a quantizer passed in: any object with ``quantize(x)``, e.g. a
fitted ``codec`` quantizer, so distances are measured on what the codec sees).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

SIMILARITY_METRICS = ("mse", "correlation", "cosine", "ssim")
NORMALIZATIONS = ("none", "minmax", "zscore", "quantized")

SSIM_WINDOW = 7
SSIM_K1, SSIM_K2 = 0.01, 0.03


def check_choice(value: str, valid: tuple[str, ...], what: str) -> str:
    """Canonical spelling of an option value (a few aliases such as ``pearson``), or ValueError listing the valid ones."""
    key = str(value).strip().lower()
    aliases = {"pearson": "correlation", "corr": "correlation", "cos": "cosine", "min-max": "minmax",
               "z-score": "zscore", "standardize": "zscore", "quantised": "quantized", "codes": "quantized"}
    key = aliases.get(key, key)
    if key not in valid:
        raise ValueError(f"unknown {what} {value!r}; valid: {', '.join(valid)}")
    return key


def as_numpy_features(x: Any, index: int | None = None) -> np.ndarray:
    """One image's features as a numpy array [C, H, W] (torch tensors are moved to the CPU)."""
    where = f"calibration image {index}" if index is not None else "features"
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 3:
        raise ValueError(f"{where}: expected one image's features as [C, H, W], got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ValueError(f"{where}: features must be real numbers, got dtype {x.dtype}")
    return x


def check_finite(x: np.ndarray, index: int | None = None) -> None:
    """Raise ValueError naming the image if ``x`` holds NaN or Inf."""
    if np.issubdtype(x.dtype, np.floating) and not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        ch = int(np.argwhere(~np.isfinite(x))[0][0])
        where = f"calibration image {index}" if index is not None else "features"
        raise ValueError(
            f"{where} contains {bad} NaN/Inf values (first in channel {ch}); "
            "drop or repair that image before fitting a channel order"
        )


def downsample_features(x: np.ndarray, factor: int) -> np.ndarray:
    """Average-pool [C, H, W] by ``factor`` (trailing rows/columns that do not fill a block are dropped)."""
    f = int(factor)
    if f <= 1:
        return x
    C, H, W = x.shape
    h, w = H // f, W // f
    if h < 1 or w < 1:
        raise ValueError(f"downsample factor {f} is larger than the feature map {H}x{W}; use a smaller factor")
    return x[:, : h * f, : w * f].reshape(C, h, f, w, f).mean(axis=(2, 4))


def normalize_channels(x: np.ndarray, normalization: str, quantizer: Any = None) -> np.ndarray:
    """Per-channel normalization of one image [C, H, W] before comparison; returns float64.

    Constant channels become all zeros under ``minmax`` and ``zscore``.
    """
    normalization = check_choice(normalization, NORMALIZATIONS, "normalization")
    if normalization == "quantized":
        if quantizer is None or not hasattr(quantizer, "quantize"):
            raise ValueError(
                "normalization='quantized' needs a quantizer object with .quantize(x) "
                "(e.g. codec.make_quantizer('uniform').fit(calib))"
            )
        codes = np.asarray(quantizer.quantize(x))
        if codes.shape != x.shape:
            raise ValueError(f"quantizer.quantize returned shape {codes.shape} for features of shape {x.shape}")
        return codes.astype(np.float64)
    y = x.astype(np.float64, copy=True)
    if normalization == "none":
        return y
    flat = y.reshape(y.shape[0], -1)
    if normalization == "minmax":
        lo = flat.min(axis=1, keepdims=True)
        span = flat.max(axis=1, keepdims=True) - lo
        flat -= lo
        np.divide(flat, span, out=flat, where=span > 0)
        flat[(span == 0)[:, 0]] = 0.0
    else:  # zscore
        flat -= flat.mean(axis=1, keepdims=True)
        sd = flat.std(axis=1, keepdims=True)
        np.divide(flat, sd, out=flat, where=sd > 0)
        flat[(sd == 0)[:, 0]] = 0.0
    return y


# --------------------------------------------------------------------------------------------- SSIM


def _box_mean(t, k: int):
    """Mean over every k x k window ('valid' positions) of t [..., H, W]: two separable average pools."""
    import torch.nn.functional as F

    shape = t.shape
    flat = t.reshape(-1, 1, shape[-2], shape[-1])
    out = F.avg_pool2d(F.avg_pool2d(flat, (k, 1), stride=1), (1, k), stride=1)
    return out.reshape(*shape[:-2], out.shape[-2], out.shape[-1])


def ssim_matrix(x: np.ndarray, data_range: float, window: int = SSIM_WINDOW, block: int | None = None,
                device: str | None = None) -> np.ndarray:
    """Mean SSIM between every pair of channels of one image [C, H, W] (uniform ``window`` x ``window``).

    Same definition as scikit-image's ``structural_similarity`` with a uniform filter and
    sample covariances (``use_sample_covariance=True``), averaged over the valid window
    positions (maps smaller than the window use the largest odd window that fits). Channel pairs are processed in blocks (float32 in torch, ~16M values per
    block) and only blocks on or above the diagonal are computed.
    """
    import torch

    C, H, W = x.shape
    if min(H, W) < window:  # small maps: the largest odd window that fits
        window = min(H, W) - (1 - min(H, W) % 2)
    if window < 3:
        raise ValueError(f"SSIM needs feature maps of at least 3x3, got {H}x{W}; use a smaller downsample factor")
    n = window * window
    cov_norm = n / (n - 1.0)
    c1 = (SSIM_K1 * data_range) ** 2
    c2 = (SSIM_K2 * data_range) ** 2
    # centre and scale by the data range first: SSIM is unchanged, float32 keeps its precision
    shift = float(np.mean(x))
    X = torch.as_tensor((np.asarray(x, dtype=np.float64) - shift) / data_range, dtype=torch.float32, device=device)
    c1 /= data_range**2
    c2 /= data_range**2
    with torch.no_grad():
        mu = _box_mean(X, window)  # [C, h, w] in shifted units
        var = (_box_mean(X * X, window) - mu * mu) * cov_norm
        mu_true = mu + shift / data_range  # SSIM's luminance term needs the unshifted means
        mu2 = mu_true * mu_true
        if block is None:
            block = max(1, min(C, int(np.sqrt(2**24 / (H * W)))))
        out = torch.empty((C, C), dtype=torch.float64)
        for i0 in range(0, C, block):
            i1 = min(C, i0 + block)
            for j0 in range(i0, C, block):
                j1 = min(C, j0 + block)
                cov = _box_mean(X[i0:i1, None] * X[None, j0:j1], window)
                cov.sub_(mu[i0:i1, None] * mu[None, j0:j1]).mul_(2.0 * cov_norm).add_(c2)  # 2 cov + c2
                lum = mu_true[i0:i1, None] * mu_true[None, j0:j1]
                cov.mul_(lum.mul_(2.0).add_(c1))  # numerator
                den = (mu2[i0:i1, None] + mu2[None, j0:j1]).add_(c1)
                den.mul_((var[i0:i1, None] + var[None, j0:j1]).add_(c2))
                s = cov.div_(den).mean(dim=(-2, -1), dtype=torch.float64).cpu()
                out[i0:i1, j0:j1] = s
                out[j0:j1, i0:i1] = s.T
    return out.numpy()


# --------------------------------------------------------------------------------------------- accumulator


class SimilarityAccumulator:
    """Streaming per-image channel statistics: ``update(x)`` once per image, then ``distance()``.

    Every metric is computed for each image on its normalized channels and averaged
    over images (each image weighs the same): that is the similarity a codec sees
    when it codes one image's channels as consecutive frames.

    Parameters: ``metric`` in :data:`SIMILARITY_METRICS`; ``normalization`` in :data:`NORMALIZATIONS`;
    ``quantizer`` (object with ``quantize``; needed for ``quantized``); ``downsample``
    (integer average-pooling factor applied first, for speed); ``data_range`` for SSIM
    (default: ``2**bits - 1`` of the quantizer for ``quantized``, 1 for ``minmax``,
    otherwise the value range of each image's normalized features); ``device`` for the
    torch SSIM computation.
    """

    def __init__(self, metric: str = "correlation", normalization: str = "none", quantizer: Any = None,
                 downsample: int = 1, data_range: float | None = None, device: str | None = None):
        self.metric = check_choice(metric, SIMILARITY_METRICS, "metric")
        self.normalization = check_choice(normalization, NORMALIZATIONS, "normalization")
        if self.normalization == "quantized" and (quantizer is None or not hasattr(quantizer, "quantize")):
            raise ValueError("normalization='quantized' needs quantizer=<object with .quantize(x)>")
        if int(downsample) < 1:
            raise ValueError(f"downsample must be an integer >= 1, got {downsample!r}")
        self.quantizer = quantizer
        self.downsample = int(downsample)
        self.data_range = data_range
        self.device = device
        self.n_images = 0
        self.n_channels: int | None = None
        self._sum: np.ndarray | None = None  # sum over images of the per-image similarity / MSE matrix

    def _ssim_range(self, y: np.ndarray) -> float:
        if self.data_range is not None:
            return float(self.data_range)
        if self.normalization == "quantized" and getattr(self.quantizer, "bits", None):
            return float(2 ** int(self.quantizer.bits) - 1)
        if self.normalization == "minmax":
            return 1.0
        span = float(y.max() - y.min())
        return span if span > 0 else 1.0

    def image_matrix(self, y: np.ndarray) -> np.ndarray:
        """The per-image matrix for normalized features ``y`` [C, H, W]: MSE or a similarity (r, cos, SSIM)."""
        C = y.shape[0]
        if self.metric == "ssim":
            return ssim_matrix(y, self._ssim_range(y), device=self.device)
        Xf = y.reshape(C, -1)
        P = Xf.shape[1]
        if self.metric == "correlation":
            Xf = Xf - Xf.mean(axis=1, keepdims=True)
        G = Xf @ Xf.T
        d = np.diag(G).copy()
        if self.metric == "mse":
            return np.maximum(d[:, None] + d[None, :] - 2.0 * G, 0.0) / P
        norm = np.sqrt(np.maximum(d, 0.0))
        scale = np.outer(norm, norm)
        S = np.divide(G, scale, out=np.zeros_like(G), where=scale > 0)
        return np.clip(S, -1.0, 1.0)

    def update(self, x: Any, index: int | None = None) -> "SimilarityAccumulator":
        """Add one image's features [C, H, W]; ``index`` names it in error messages."""
        index = self.n_images if index is None else index
        x = as_numpy_features(x, index)
        check_finite(x, index)
        if self.n_channels is None:
            self.n_channels = int(x.shape[0])
        elif x.shape[0] != self.n_channels:
            raise ValueError(
                f"calibration image {index} has {x.shape[0]} channels but earlier images have {self.n_channels}; "
                "all calibration features must come from the same layer"
            )
        y = normalize_channels(downsample_features(x, self.downsample), self.normalization, self.quantizer)
        M = self.image_matrix(y)
        self._sum = M if self._sum is None else self._sum + M
        self.n_images += 1
        return self

    def mean_matrix(self) -> np.ndarray:
        """Average per-image matrix (MSE, or similarity in [-1, 1] for correlation/cosine/SSIM)."""
        if self._sum is None:
            raise ValueError("no calibration images were given; fit needs at least one feature array")
        return self._sum / self.n_images

    def distance(self) -> np.ndarray:
        """Symmetric C x C distance: MSE, ``1 - r``, ``1 - cos`` or ``1 - SSIM``; zero diagonal, >= 0."""
        M = self.mean_matrix()
        D = M.copy() if self.metric == "mse" else 1.0 - M
        D = np.maximum((D + D.T) / 2.0, 0.0)
        np.fill_diagonal(D, 0.0)
        return D


def distance_matrix(calib: Iterable[Any], metric: str = "correlation", normalization: str = "none",
                    quantizer: Any = None, downsample: int = 1, data_range: float | None = None,
                    device: str | None = None) -> np.ndarray:
    """One streaming pass over ``calib`` (iterable of [C, H, W] arrays) -> C x C distance matrix."""
    acc = SimilarityAccumulator(metric, normalization, quantizer, downsample, data_range, device)
    for i, x in enumerate(calib):
        acc.update(x, index=i)
    return acc.distance()


def affinity(D: np.ndarray) -> np.ndarray:
    """Similarity-graph weights ``exp(-D / median off-diagonal distance)`` (zero diagonal), for spectral ordering."""
    D = np.asarray(D, dtype=np.float64)
    off = D[~np.eye(D.shape[0], dtype=bool)]
    scale = float(np.median(off)) if off.size else 1.0
    W = np.exp(-D / (scale if scale > 0 else 1.0))
    np.fill_diagonal(W, 0.0)
    return W
