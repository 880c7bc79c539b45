"""The tuning study's search space: how an Optuna trial becomes a quantizer, and back.

Every registered global curve (uniform, log, power, mu-law) with its shape parameter
(log-uniform priors), the clipping percentile, 8 or 10 bits and, when asked, the quantizer's
scope: one global range, or each channel normalized first (its statistic and centring).
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from codec import CURVE_NAMES, QUANTIZERS
from eval.analysis.curves import QUALITY_METRICS

__all__ = ["CURVES", "SHAPE_PARAMS", "CLIP_TAIL", "BITS", "QUANTIZER_SCOPES", "STATS", "OBJECTIVES", "QUALITY_METRICS",
           "suggest_quantizer", "quantizer_kwargs", "anchor_params", "trial_params", "split_calibration"]

#: the curves tuned: every registered global curve (a new curve quantizer joins the search space);
#: per-channel normalization (codec.normalize) is not sampled yet
CURVES = CURVE_NAMES
#: curve -> (quantizer keyword, low, high), each quantizer's own ``shape_param``; sampled
#: log-uniformly under the trial-parameter name "<curve>_<keyword>"
SHAPE_PARAMS = {name: QUANTIZERS.get(name).shape_param for name in CURVES if QUANTIZERS.get(name).shape_param}
CLIP_TAIL = (1e-3, 1.0)  # percent of values clipped on each side when clipping is on
BITS = (8, 10)
#: where the quantizer's range applies: "global", one curve for all channels; "channel", each channel
#: first normalized by its own calibration statistic (codec.normalize.ChannelQuantizer, fixed per
#: channel, no side bits). Trials record it as their parameter "norm" (the name stored studies hold).
QUANTIZER_SCOPES = ("global", "channel")
STATS = ("p99", "p99.9", "max", "std")  # the per-channel statistic tried (ChannelQuantizer's ``stat``)
#: what a trial minimises: one BD-rate, or ``worst`` = the larger (worse) of the feature-PSNR and task BD-rates
OBJECTIVES = ("feature_psnr", "task", "worst")


def suggest_quantizer(trial, scopes: Sequence[str] = ("global",)) -> tuple[str, dict]:
    """Sample a quantizer from ``trial``; returns ``(name, keyword arguments)`` for make_quantizer.

    ``scopes`` (a subset of :data:`QUANTIZER_SCOPES`): with ``channel`` among several, the
    trial also picks ``norm`` and, for ``channel``, the statistic ``stat`` and ``center``.
    """
    curve = trial.suggest_categorical("curve", list(CURVES))
    if curve in SHAPE_PARAMS:
        key, lo, hi = SHAPE_PARAMS[curve]
        trial.suggest_float(f"{curve}_{key}", lo, hi, log=True)
    trial.suggest_categorical("bits", list(BITS))
    if trial.suggest_categorical("clip", [False, True]):
        trial.suggest_float("clip_tail", *CLIP_TAIL, log=True)
    norms = list(scopes)
    unknown = [n for n in norms if n not in QUANTIZER_SCOPES]
    if unknown or not norms:
        raise ValueError(f"quantizer scopes {unknown or norms}: use some of {', '.join(QUANTIZER_SCOPES)}")
    norm = trial.suggest_categorical("norm", norms) if len(norms) > 1 else norms[0]
    if norm == "channel":
        if len(norms) == 1:
            trial.set_user_attr("norm", "channel")
        trial.suggest_categorical("stat", list(STATS))
        trial.suggest_categorical("center", [False, True])
    return quantizer_kwargs({**trial.params, "norm": norm})


def quantizer_kwargs(params: Mapping[str, Any]) -> tuple[str, dict]:
    """Trial parameters (the names :func:`suggest_quantizer` uses) -> ``(name, kwargs)``."""
    curve = params["curve"]
    if curve not in CURVES:
        raise ValueError(f"unknown curve {curve!r} in trial parameters; expected one of {', '.join(CURVES)}")
    kwargs: dict[str, Any] = {"bits": int(params["bits"])}
    if curve in SHAPE_PARAMS:
        key = SHAPE_PARAMS[curve][0]
        kwargs[key] = float(params[f"{curve}_{key}"])
    kwargs["percentile"] = 100.0 - float(params["clip_tail"]) if params.get("clip") else 100.0
    if params.get("norm", "global") == "channel":  # per-channel normalization in front of the same curve
        shape = kwargs.pop(SHAPE_PARAMS[curve][0], None) if curve in SHAPE_PARAMS else None
        kwargs.update(curve=curve, stat=str(params["stat"]), center=bool(params["center"]), shape=shape)
        return "channel", kwargs
    return curve, kwargs


def anchor_params(spec) -> dict | None:
    """A quantizer spec string in trial-parameter names (None when outside the search space, e.g. a saved dict).

    Per-channel specs (``channel:...``) carry ``norm="channel"``, ``stat`` and ``center``; global ones no
    ``norm`` (the caller adds ``norm="global"`` where the study samples it).
    """
    from codec import make_quantizer

    if not isinstance(spec, str):
        return None
    q = make_quantizer(spec)
    p = q.get_params()
    channel = q.name == "channel"
    if channel:
        if p.get("per_image") or p["stat"] not in STATS:
            return None
        curve = p["curve"]
    else:
        curve = q.name
        if curve not in CURVES or p.get("xmin") is not None or p.get("xmax") is not None:
            return None
    params = {"curve": curve, "bits": p["bits"], "clip": p["percentile"] < 100.0}
    if curve in SHAPE_PARAMS:
        key = SHAPE_PARAMS[curve][0]
        shape = p["shape"] if channel else p[key]
        params[f"{curve}_{key}"] = float(shape if shape is not None else QUANTIZERS.get(curve)().get_params()[key])
    if params["clip"]:
        params["clip_tail"] = 100.0 - float(p["percentile"])
    if channel:
        params.update(norm="channel", stat=p["stat"], center=bool(p["center"]))
    return params


def trial_params(trial) -> dict:
    """A trial's parameters with ``norm`` filled in (a study over one normalization does not sample it)."""
    return {**trial.params, "norm": trial.params.get("norm", trial.user_attrs.get("norm", "global"))}


def split_calibration(samples: Sequence, n_val: int, seed: int = 0) -> tuple[list, list]:
    """Reproducible (fit, validation) split of the calibration samples; the test split is never used."""
    from eval.data.images import split

    samples = list(samples)
    if len(samples) < 2:
        raise ValueError(
            f"quantizer tuning needs at least 2 calibration images (one to fit ranges, one to validate), got {len(samples)}; "
            "add calibration images or raise the data limit"
        )
    if not 1 <= n_val < len(samples):
        raise ValueError(f"n_val={n_val}: must be between 1 and {len(samples) - 1} for {len(samples)} calibration images")
    return split(samples, n_calib=len(samples) - n_val, seed=seed)
