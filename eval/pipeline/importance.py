"""Channel importance for the task, measured on the calibration split, and the model of what a position costs.

Under random access a channel's position decides its QP (:mod:`reorder.importance`). This module
measures, on calibration features only, the two things an importance-aware order needs:

1. **What a channel loses at each position** (:class:`reorder.position_loss.PositionLoss`): every
   calibration image is coded through the shared core (:func:`eval.pipeline.cell.code_features`)
   at base QP ``qp`` under ``rolls`` cyclic shifts of the identity order, chosen so that every
   channel sits once at a position of the structure's largest QP offset (VVenC GOP 32: +9, the odd
   positions; two shifts); each channel's code MSE at each position it took is a sample, and the
   saturating step model is fitted to them.
2. **What the task loses** when one channel alone carries the coding error it gets at the largest
   offset (its real decoded error from step 1, all other channels exact):

   * ``perturbation`` (measured): the tail is run once per channel with that channel replaced by
     its decoded version; the task loss is the mean KL divergence of the model's per-unit
     distributions (:meth:`eval.models.base.ModelAdapter.task_log_probs`) from the uncompressed
     ones: MobileNetV2's windows' class softmax (the quantity behind
     :class:`eval.tasks.classification.KLFidelity`), the SSDLite detector's anchors' person scores;
   * ``gradient`` (estimate): KL is second order around the uncompressed prediction (its gradient
     there is 0), so the first non-vanishing term is ``0.5 * e^T J^T F J e`` (``J`` the tail's
     Jacobian, ``F`` the Fisher matrix of the softmax, ``e`` the channel's error). With ``y`` drawn
     from the predicted distribution, ``E_y[(grad log p_y . e)^2] = e^T J^T F J e``: ``samples``
     backward passes per window give every channel's estimate at once (gradient x perturbation);
   * ``both``: the measured one is the importance, the estimate is kept with their Spearman
     correlation in the provenance.

Models that give ``task_log_probs`` are supported (MobileNetV2, SSDLite); the gradient estimate
needs a classifier adapter with ``window_batch`` and ``tail_tensor(..., grad=True)`` (MobileNetV2).

:func:`cached_importance` stores the result as JSON (:meth:`reorder.importance.ChannelImportance.save`)
under ``<cache_dir>/importance/``, keyed by the model (its tail identity: weights, layer, windows),
the calibration digest, the quantizer, the codec, the QP and the method; the importance-aware
orderers (``imptsp``, ``impcost``) read that file (``importance=PATH``).
"""
from __future__ import annotations

import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

__all__ = ["ImageMeasurement", "measure_image", "position_rolls", "channel_importance", "cached_importance",
           "importance_key", "fit_position_loss", "needs_importance", "importance_for_setup", "supports_importance",
           "gradient_supported", "METHODS"]

METHODS = ("perturbation", "gradient", "both")
#: what :func:`measure_image` also accepts: code the rolls and keep the loss-model samples only
CODING_ONLY = "none"


def position_rolls(qp_offsets) -> list[int]:
    """Cyclic shifts ``s`` (channel ``c`` at position ``(c + s) % C``) until every channel has sat once at a
    position of the largest QP offset (greedy, smallest shifts first)."""
    off = np.asarray(qp_offsets, dtype=np.float64)
    n = off.size
    top = off == off.max()
    covered = np.zeros(n, dtype=bool)
    rolls = []
    for s in range(n):
        at_top = top[(np.arange(n) + s) % n]
        if (at_top & ~covered).any():
            rolls.append(s)
            covered |= at_top
        if covered.all():
            break
    return rolls


@dataclass
class ImageMeasurement:
    """One calibration image: samples for the loss model, and per-channel task losses (sums over windows)."""

    image_id: str
    channels: np.ndarray  # loss-model samples: channel, frame QP offset, code MSE
    offsets: np.ndarray
    code_mse: np.ndarray
    code_variance: np.ndarray  # [C]
    windows: int
    kl_measured: np.ndarray | None = None  # [C] summed over windows
    kl_estimated: np.ndarray | None = None  # [C] summed over windows
    kl_all: float | None = None  # every channel perturbed at once (how far the losses add up)
    seconds: dict = field(default_factory=dict)


def _kl_sum(lp_ref: np.ndarray, lp: np.ndarray) -> float:
    """KL(ref || coded) summed over units, from ``[units, K]`` log-probabilities."""
    return float(np.maximum((np.exp(lp_ref) * (lp_ref - lp)).sum(axis=1), 0.0).sum())


def supports_importance(adapter) -> bool:
    """Whether ``adapter`` gives the per-unit task distribution that channel importance is measured by."""
    return getattr(adapter, "task_distribution", None) is not None


def gradient_supported(adapter) -> bool:
    """Whether the gradient estimate works for ``adapter`` (a windowed classifier with a differentiable tail)."""
    return hasattr(adapter, "window_batch") and hasattr(adapter, "tail_tensor")


def _gradient_kl(adapter, features: np.ndarray, errors: np.ndarray, samples: int, seed: int) -> np.ndarray:
    """[C]: ``0.5 * E_y[(grad log p_y . e_c)^2]`` summed over windows, for every channel's error map ``e_c``."""
    import torch

    if not gradient_supported(adapter):
        raise ValueError(f"{adapter.name}: the gradient importance needs an adapter with window_batch and "
                         "tail_tensor(..., grad=True); use method='perturbation'")
    crops = adapter.window_batch(features)
    ecrops = adapter.window_batch(errors).double()
    gen = torch.Generator().manual_seed(int(seed))
    total = torch.zeros(features.shape[0], dtype=torch.float64)
    bs = int(getattr(adapter, "batch_size", 16))
    for i in range(0, crops.shape[0], bs):
        x = crops[i:i + bs].clone().requires_grad_(True)
        lp = torch.log_softmax(adapter.tail_tensor(x, grad=True), dim=1)
        ys = torch.multinomial(lp.detach().exp().cpu(), samples, replacement=True, generator=gen).to(lp.device)
        e = ecrops[i:i + bs]
        for k in range(samples):
            (g,) = torch.autograd.grad(lp.gather(1, ys[:, k:k + 1]).sum(), x, retain_graph=k < samples - 1)
            total += ((g.double() * e).sum(dim=(2, 3)) ** 2).sum(dim=0).cpu() / samples
    return 0.5 * total.numpy()


def measure_image(adapter, features: np.ndarray, meta: dict, quantizer, codec, structure, qp: int,
                  method: str = "both", packing=None, samples: int = 8, seed: int = 0,
                  image_id: str = "") -> ImageMeasurement:
    """Code one image under the position rolls and measure what each channel costs the task (module docstring)."""
    from codec import make_packing
    from eval.pipeline.cell import check_features, code_features
    from reorder import Permutation

    if method not in METHODS + (CODING_ONLY,):
        raise ValueError(f"importance method {method!r}: use one of {', '.join(METHODS)}")
    if not supports_importance(adapter):
        raise ValueError(f"{adapter.name} gives no per-unit task distribution (task_log_probs); channel importance "
                         "is measured for models that do (mobilenet_v2, ssdlite-person)")
    f = check_features(features)
    C = f.shape[0]
    off = np.asarray(structure.qp_offset, dtype=np.float64)
    if off.size != C:
        raise ValueError(f"the structure has {off.size} positions for {C} channels")
    packing = packing or make_packing("temporal")
    codes = quantizer.quantize(f).astype(np.float64)
    top = off.max()
    errors = np.zeros_like(f)
    have = np.zeros(C, dtype=bool)
    chans, offs, mses = [], [], []
    t0 = time.perf_counter()
    for s in position_rolls(off):
        order = (np.arange(C) - s) % C  # position k holds channel k - s: channel c at position c + s
        res = code_features(f, Permutation(order, {"name": f"roll{s}"}), quantizer, packing, codec, qp)
        rec_codes = quantizer.quantize(res.reconstruction).astype(np.float64)  # exact: dequantize then quantize
        pos = (np.arange(C) + s) % C
        chans.append(np.arange(C))
        offs.append(off[pos])
        mses.append(((rec_codes - codes) ** 2).mean(axis=(1, 2)))
        first = (off[pos] == top) & ~have
        errors[first] = (res.reconstruction - f)[first]
        have |= first
    t_code = time.perf_counter() - t0
    lp_ref = adapter.task_log_probs(f, meta)
    out = ImageMeasurement(image_id, np.concatenate(chans), np.concatenate(offs), np.concatenate(mses),
                           codes.var(axis=(1, 2)), int(lp_ref.shape[0]))
    out.seconds["code"] = round(t_code, 2)
    if method in ("perturbation", "both"):
        t0 = time.perf_counter()
        kl = np.zeros(C)
        g = f.copy()
        for c in range(C):
            g[c] = f[c] + errors[c]
            kl[c] = _kl_sum(lp_ref, adapter.task_log_probs(g, meta))
            g[c] = f[c]
        out.kl_measured = kl
        out.kl_all = _kl_sum(lp_ref, adapter.task_log_probs(f + errors, meta))
        out.seconds["perturbation"] = round(time.perf_counter() - t0, 2)
    if method in ("gradient", "both"):
        t0 = time.perf_counter()
        out.kl_estimated = _gradient_kl(adapter, f, errors, samples, seed)
        out.seconds["gradient"] = round(time.perf_counter() - t0, 2)
    return out


def fit_position_loss(measured, qp: int, bits: int = 8):
    """The :class:`reorder.position_loss.PositionLoss` fitted to the coding samples of every image in ``measured``
    (each sample saturating at its channel's variance in its own image; the model keeps the mean over images)."""
    from reorder.position_loss import PositionLoss

    return PositionLoss.fit(np.concatenate([m.channels for m in measured]),
                            qp + np.concatenate([m.offsets for m in measured]),
                            np.concatenate([m.code_mse for m in measured]),
                            np.mean([m.code_variance for m in measured], axis=0), qp=qp, bits=bits,
                            sample_variance=np.concatenate([m.code_variance[m.channels] for m in measured]))


def channel_importance(adapter, calib, quantizer, codec, qp: int = 32, method: str = "both", samples: int = 8,
                       seed: int = 0, packing=None, progress: bool = True, provenance: dict | None = None):
    """The :class:`reorder.importance.ChannelImportance` of ``adapter``'s layer, measured on ``calib`` (a FeatureSet).

    ``quantizer``: the study's fitted quantizer; ``codec``: a codec backend whose
    ``prediction_structure`` gives QP offsets; ``qp``: the base QP of the measuring encodes.
    Returns ``(importance, measurements)`` (one :class:`ImageMeasurement` per image).
    """
    from reorder.importance import ChannelImportance

    if len(calib) == 0:
        raise ValueError("channel importance needs at least one calibration image")
    C = calib.n_channels
    structure = codec.prediction_structure(C)
    if any(v is None for v in structure.qp_offset):
        raise ValueError(f"codec {codec.spec()} does not give its positions' QP offsets; use vvenc or vtm:cfg=...")
    off = np.asarray(structure.qp_offset, dtype=np.float64)
    t0 = time.perf_counter()
    measured = []
    for i, ref in enumerate(calib.refs):
        if progress:
            print(f"channel importance: image {i + 1}/{len(calib)} ({ref.sample_id})", file=sys.stderr)
        measured.append(measure_image(adapter, ref.load(), ref.meta, quantizer, codec, structure, qp, method,
                                      packing, samples, seed + i, ref.sample_id))
    windows = sum(m.windows for m in measured)
    est = None if measured[0].kl_estimated is None else sum(m.kl_estimated for m in measured) / windows
    meas = None if measured[0].kl_measured is None else sum(m.kl_measured for m in measured) / windows
    importance = meas if meas is not None else est
    bits = int(getattr(quantizer, "bits", 8))
    loss = fit_position_loss(measured, qp, bits)
    prov = {
        **(provenance or {}),
        "model": adapter.name, "layer": adapter.layer,
        "tail": getattr(adapter, "tail_identity", adapter.identity)(),
        "calibration_digest": calib.digest(), "calibration_images": calib.ids,
        "method": method, "task_loss": f"mean KL divergence per unit (nats) of {adapter.task_distribution}",
        "codec": codec.spec(), "structure": structure.source, "qp": int(qp),
        "quantizer": quantizer.to_dict() if hasattr(quantizer, "to_dict") else repr(quantizer),
        "windows": int(windows), "gradient_samples": int(samples) if est is not None else None,
        "seconds": round(time.perf_counter() - t0, 1),
        "per_image": {m.image_id: {"windows": m.windows, **m.seconds,
                                   **({"kl_all": m.kl_all / m.windows} if m.kl_all is not None else {})}
                      for m in measured},
    }
    offs = np.concatenate([m.offsets for m in measured])
    mses = np.concatenate([m.code_mse for m in measured])
    prov["code_mse_by_offset"] = {f"{o:+g}": float(mses[offs == o].mean()) for o in np.unique(offs)}
    prov["loss_model_fit_rmse_log"] = loss.fit_rmse
    if meas is not None:
        prov["importance_measured"] = [float(x) for x in meas]
        prov["sum_of_single_losses"] = float(meas.sum())
        if measured[0].kl_all is not None:
            prov["loss_all_channels"] = float(sum(m.kl_all for m in measured) / windows)
    if est is not None:
        prov["importance_gradient"] = [float(x) for x in est]
    if meas is not None and est is not None:
        from scipy.stats import spearmanr

        prov["spearman_measured_gradient"] = float(spearmanr(meas, est)[0])
    return ChannelImportance(importance, float(off.max()), loss, prov), measured


def importance_key(adapter, calib, quantizer, codec, qp: int, method: str, samples: int, seed: int) -> str:
    """The cache key of an importance: model (tail identity), calibration, quantizer, codec, QP and method."""
    parts = {
        "tail": getattr(adapter, "tail_identity", adapter.identity)(),
        "calibration": calib.digest(),
        "quantizer": quantizer.to_dict() if hasattr(quantizer, "to_dict") else repr(quantizer),
        "codec": codec.spec() if hasattr(codec, "spec") else str(codec),
        "qp": int(qp), "method": method, "samples": int(samples), "seed": int(seed), "v": 2,
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:24]


def cached_importance(adapter, calib, quantizer, codec, cache_dir, qp: int = 32, method: str = "both",
                      samples: int = 8, seed: int = 0, progress: bool = True):
    """``(ChannelImportance, path)``: read from ``<cache_dir>/importance/<key>.json`` or measured and stored there.

    ``codec``: a backend or a codec spec. Pass the path to the orderers as ``importance=PATH``.
    """
    from codec import make_codec
    from reorder.importance import ChannelImportance

    codec = make_codec(codec) if isinstance(codec, str) else codec
    path = Path(cache_dir) / "importance" / f"{importance_key(adapter, calib, quantizer, codec, qp, method, samples, seed)}.json"
    if path.exists():
        try:
            return ChannelImportance.load(path), path
        except ValueError as exc:
            print(f"warning: importance cache {path} is broken ({exc}); measuring again", file=sys.stderr)
    imp, _ = channel_importance(adapter, calib, quantizer, codec, qp, method, samples, seed, progress=progress)
    imp.save(path)
    return imp, path


def needs_importance(name: str) -> bool:
    """Whether the orderer ``name`` (a :func:`reorder.make_orderer` spec) takes channel importance (``imptsp``,
    ``impcost``): a study then passes it ``importance=PATH`` from :func:`importance_for_setup`."""
    from codec.registry import parse_spec
    from reorder import ORDERERS

    base, _ = parse_spec(name, "orderer")
    return base in ORDERERS and bool(getattr(ORDERERS.get(base), "needs_importance", False))


def importance_for_setup(setup, cache_dir, qp: int = 32, method: str | None = None, window_stride: int | None = 128,
                         samples: int = 8, seed: int = 0, progress: bool = True):
    """``(ChannelImportance, path)`` for a study's :class:`eval.pipeline.setup.Setup`: its model, calibration
    features, fitted quantizer and codec, cached under ``cache_dir`` (see :func:`cached_importance`).

    ``method``: None measures by perturbation and adds the gradient estimate where the model
    supports it (``"both"`` for MobileNetV2, ``"perturbation"`` for the detector).

    ``window_stride``: the tail's window stride (input pixels) while measuring, wider than the study's
    to save time (128: about half the windows of the default 64; None keeps the study's); the
    task loss is a mean over windows, so fewer of them estimate it with more noise, not a bias.
    """
    from eval.models import make_model

    adapter = setup.adapter
    if not supports_importance(adapter):
        raise ValueError(f"{adapter.name} gives no per-unit task distribution, so the importance-aware orders "
                         "(imptsp, impcost) cannot be learned for it; use tsp-<metric> or refcost-<metric>")
    if method is None:
        method = "both" if gradient_supported(adapter) else "perturbation"
    if window_stride is not None and getattr(adapter, "window_stride", window_stride) != window_stride:
        spec = setup.model_spec
        adapter = make_model(spec["name"], **{**spec.get("kwargs", {}), "window_stride": int(window_stride)})
    return cached_importance(adapter, setup.calib, setup.quantizer, setup.codec_spec, cache_dir, qp=qp,
                             method=method, samples=samples, seed=seed, progress=progress)
