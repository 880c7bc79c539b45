"""What a channel loses when it is coded at a frame position: its code MSE as a function of the position's QP.

Under random access each frame position has a QP offset (VVenC GOP 32: intra -3, temporal layers
+2, +3, +6, +8, +9; :attr:`codec.structure.PredictionStructure.qp_offset`), so the channel an order
puts at a position is quantised with that position's step. Measured on MobileNetV2 features coded
by VVenC (see :mod:`eval.pipeline.importance`), a channel's code-domain MSE follows the quantiser
step until it reaches the channel's own variance (a channel coded much coarser than its spread is
reconstructed as its prediction, and loses at most what it holds)::

    mse_c(q) = v_c * (1 - exp(-a * k_c * step2(q) / v_c)),    step2(q) = 4**(bits - 8) * 2**((q - 4) / 3)

``q`` is the frame's QP (base QP + position offset), ``step2`` the squared VVC quantiser step in
code units of ``bits``-bit samples, ``v_c`` the channel's code variance, ``a`` one constant for the
base QP the model was fitted at and ``k_c`` a per-channel factor (texture: how much of a channel's
error the codec's prediction leaves). Only ratios between positions matter to an order
(:meth:`PositionLoss.ratio`), so the model is fitted at one base QP.

:meth:`PositionLoss.fit` takes measured samples (channel, frame QP, code MSE); the model knows no
network, only codes and QPs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

__all__ = ["PositionLoss", "step_squared"]


def step_squared(qp, bits: int = 8) -> np.ndarray:
    """Squared VVC quantiser step at ``qp`` in code units of ``bits``-bit samples (+6 QP doubles the step)."""
    return 4.0 ** (int(bits) - 8) * 2.0 ** ((np.asarray(qp, dtype=np.float64) - 4.0) / 3.0)


@dataclass(frozen=True)
class PositionLoss:
    """Per-channel code MSE at a frame QP (the saturating model of the module docstring).

    ``variance`` [C] and ``scale`` [C] (``k_c``, 1 when not fitted per channel), ``a`` the fitted
    constant, ``qp`` the base QP it was fitted at, ``bits`` the code bit depth; ``fit_rmse`` the
    fit's root-mean-square error in natural-log units (0.2 is about 20 %), ``n_samples`` how many
    measured (channel, position) samples it came from.
    """

    variance: np.ndarray
    a: float
    qp: float
    bits: int = 8
    scale: np.ndarray | None = None
    fit_rmse: float | None = None
    n_samples: int = 0

    def __post_init__(self):
        v = np.asarray(self.variance, dtype=np.float64)
        if v.ndim != 1 or v.size == 0 or not np.isfinite(v).all() or (v < 0).any():
            raise ValueError("position loss: variance must be a non-empty vector of finite values >= 0")
        k = np.ones_like(v) if self.scale is None else np.asarray(self.scale, dtype=np.float64)
        if k.shape != v.shape or not np.isfinite(k).all() or (k <= 0).any():
            raise ValueError(f"position loss: scale must be {v.size} finite values > 0")
        if not (np.isfinite(self.a) and self.a > 0):
            raise ValueError(f"position loss: a={self.a} must be a finite value > 0")
        object.__setattr__(self, "variance", v)
        object.__setattr__(self, "scale", k)
        object.__setattr__(self, "a", float(self.a))
        object.__setattr__(self, "qp", float(self.qp))
        object.__setattr__(self, "bits", int(self.bits))

    @property
    def n_channels(self) -> int:
        return int(self.variance.size)

    def mse(self, offsets, qp: float | None = None) -> np.ndarray:
        """[C, K] code MSE of every channel at each QP offset in ``offsets`` (K of them) from base ``qp``."""
        q = (self.qp if qp is None else float(qp)) + np.asarray(offsets, dtype=np.float64).reshape(1, -1)
        v = self.variance[:, None]
        raw = self.a * self.scale[:, None] * step_squared(q, self.bits)
        return np.where(v > 0, v * -np.expm1(-raw / np.maximum(v, 1e-300)), 0.0)

    def ratio(self, offsets, reference: float) -> np.ndarray:
        """[C, K]: each channel's MSE at ``offsets`` relative to its MSE at offset ``reference`` (1 where it has none)."""
        m = self.mse(list(np.ravel(offsets)) + [reference])
        ref = m[:, -1:]
        return np.where(ref > 0, m[:, :-1] / np.where(ref > 0, ref, 1.0), 1.0)

    @classmethod
    def fit(cls, channels: Sequence[int], frame_qp: Sequence[float], mse: Sequence[float], variance,
            qp: float, bits: int = 8, per_channel: bool = True, sample_variance=None) -> "PositionLoss":
        """Fit ``a`` (and ``k_c`` when ``per_channel``) to measured samples in log space.

        ``channels``, ``frame_qp`` and ``mse`` are parallel: a channel, the QP of the frame it was
        coded in and its measured code MSE there (one image's or several images' encodes);
        ``variance`` [C] the channels' code variance (the model's), ``qp`` the base QP of those encodes;
        ``sample_variance`` (one per sample) the variance of the channel in the image each sample
        comes from, where images differ: a channel nearly constant in one image saturates there at
        its variance in that image, not at its mean over images.
        ``k_c`` (geometric mean 1) is fitted per channel on a grid of ``exp(-3..3)`` (1 for channels
        without samples), alternating with ``a``.
        """
        ch = np.asarray(channels, dtype=np.int64)
        fq = np.asarray(frame_qp, dtype=np.float64)
        m = np.asarray(mse, dtype=np.float64)
        v = np.asarray(variance, dtype=np.float64)
        if not (ch.shape == fq.shape == m.shape) or ch.ndim != 1 or ch.size == 0:
            raise ValueError("position loss fit: channels, frame_qp and mse must be equal-length non-empty vectors")
        if ch.min() < 0 or ch.max() >= v.size:
            raise ValueError(f"position loss fit: channel indices must lie in 0..{v.size - 1}")
        if not (np.isfinite(m).all() and (m >= 0).all()):
            raise ValueError("position loss fit: mse must be finite and >= 0")
        s2 = step_squared(fq, bits)
        vc = v[ch] if sample_variance is None else np.asarray(sample_variance, dtype=np.float64)
        if vc.shape != ch.shape or not np.isfinite(vc).all():
            raise ValueError("position loss fit: sample_variance must give one finite value per sample")
        vc = np.maximum(vc, 1e-12)
        target = np.log1p(m)

        def residual(log_a: float, k: np.ndarray) -> np.ndarray:
            pred = vc * -np.expm1(-np.exp(log_a) * k[ch] * s2 / vc)
            return target - np.log1p(pred)

        from scipy.optimize import minimize_scalar

        k = np.ones(v.size)
        log_a = 0.0
        for _ in range(3 if per_channel else 1):  # alternate: a given k_c, then k_c given a
            log_a = float(minimize_scalar(lambda la: float(np.mean(residual(la, k) ** 2)), bounds=(-12.0, 6.0),
                                          method="bounded").x)
            if not per_channel:
                break
            grid = np.linspace(-3.0, 3.0, 241)  # log k_c: each channel's best value given a
            pred = vc[:, None] * -np.expm1(-np.exp(log_a + grid)[None, :] * s2[:, None] / vc[:, None])
            sq = (target[:, None] - np.log1p(pred)) ** 2
            per_channel_sq = np.zeros((v.size, grid.size))
            np.add.at(per_channel_sq, ch, sq)
            seen = np.bincount(ch, minlength=v.size) > 0
            k = np.exp(np.where(seen, grid[per_channel_sq.argmin(axis=1)], 0.0))
            k /= np.exp(np.mean(np.log(k[seen])))  # a carries the overall level, k_c only the channel's departure
        rmse = float(np.sqrt(np.mean(residual(log_a, k) ** 2)))
        return cls(v, float(np.exp(log_a)), float(qp), int(bits), k if per_channel else None, rmse, int(ch.size))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "saturating-step", "a": self.a, "qp": self.qp, "bits": self.bits,
                "variance": [float(x) for x in self.variance], "scale": [float(x) for x in self.scale],
                "fit_rmse_log": self.fit_rmse, "n_samples": self.n_samples}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "PositionLoss":
        if d.get("kind", "saturating-step") != "saturating-step":
            raise ValueError(f"position loss kind {d.get('kind')!r} is not known; this package writes 'saturating-step'")
        try:
            return cls(np.asarray(d["variance"], dtype=np.float64), float(d["a"]), float(d["qp"]), int(d.get("bits", 8)),
                       np.asarray(d["scale"], dtype=np.float64) if d.get("scale") is not None else None,
                       d.get("fit_rmse_log"), int(d.get("n_samples", 0)))
        except KeyError as exc:
            raise ValueError(f"position loss: the saved model lacks {exc.args[0]!r}") from None
