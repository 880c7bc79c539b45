"""Optuna tuning of the feature quantizer, run entirely through the shared core.

What is tuned
-------------
The quantizer between float features and the codec's integer samples
(:mod:`codec.quantize`): its curve (``uniform``, ``log``, ``power``, ``mulaw``), the curve's
shape parameter (log ``shape``, power ``gamma``, mu-law ``mu``; log-uniform priors), the
clipping percentile (``clip`` on/off and, when on, the tail clipped per side, 0.001-1 %,
log-uniform) and the code depth (8 or 10 bits). The codec always sees 10-bit samples (VVenC
via ffmpeg is 10-bit only: 8-bit codes are shifted up by 2), so at one QP an 8- and a 10-bit
quantizer get the same codec step relative to the range: the same QPs compare them fairly.

Objective (why this one)
------------------------
BD-rate in percent (minimised) of the candidate against the *untuned* log quantizer (the
package default, ``LogQuantizer()``: shape 100, 8 bit, no clipping), both coding the same
held-out images with the same channel order, packing, codec and QPs, quality measured as
feature PSNR against the *float* features:

* Quality against the float features (not the integer codes) charges the candidate for its
  own quantisation error, so curves of different quantizers sit on one scale; a PSNR of the
  codes would reward a coarse quantizer whose codes the codec reproduces easily.
* A BD-rate summarises the whole QP range as "bits for the same quality", the quantity the
  package reports for orders too; picking one QP would tune for one operating point.
* Feature PSNR rather than the task metric by default: on a handful of images the task
  proxy moves by about +-15 % in BD-rate (see measured.md) and would tune noise. The task
  BD-rate is computed and stored for every trial (``--objective task`` optimises it).
* A BD-rate is only computed over the quality range both curves cover, and that can be
  gamed: an 8-bit uniform quantizer saturates far below the anchor's top PSNR, and over the
  low-quality part it does cover it may look 40 % cheaper (seen on the tiny configuration).
  So a candidate must cover ``min_overlap`` (default 80 %) of the anchor's feature-PSNR range;
  otherwise, or when a curve is not monotone, the trial fails with the reason recorded
  rather than scoring a number from a sliver of the range.

* Measured on MobileNetV2 features, the two disagree: near-uniform curves (uniform with
  light clipping, mu-law with small mu) cut the feature-PSNR BD-rate by 30-40 % while the
  task BD-rate gets a few percent worse, because feature PSNR is dominated by the few
  large activations and the log curve spends its codes on the many small ones. So
  ``max_task_loss`` turns the task into a constraint (a TPE trial constraint): the
  study minimises the feature-PSNR BD-rate among quantizers whose task BD-rate is at most
  ``max_task_loss`` percent, and the best trial is chosen among those.

Data: the calibration split only (never the test split). It is split once, reproducibly,
into a *fit* part (candidate ranges are fitted here) and a *validation* part (coded and
scored here). The best quantizer is finally refitted on the whole calibration split and
saved as JSON (:meth:`Quantizer.to_dict` plus a ``tuning`` record).

Caching and resuming: every coded cell goes through :func:`eval.pipeline.cell.make_jobs` and
:func:`eval.pipeline.runner.run_grid` into one :class:`~eval.pipeline.store.ResultStore`, so the anchor is coded
once, a repeated or resumed candidate recomputes nothing, and a killed study loses at most
the cells in flight. The Optuna study lives in an RDB (SQLite by default) and is opened with
``load_if_exists``; trials carry heartbeats, so a trial left RUNNING by a killed process is
marked FAIL once its heartbeat is older than the grace period and its parameters are queued
again (their finished cells are reused). The study records a digest of its setup and refuses
to continue under a different one (other QPs, images, codec, anchor), whose values would not
be comparable.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from codec import CURVE_NAMES, QUANTIZERS
from eval.analysis.curves import Curve, bd_between, curve_overlap
from eval.analysis.tables import fmt, text_table
from eval.pipeline import quantizer_runs
from eval.pipeline.features import FeatureSet
from eval.pipeline.quantizer_runs import code_order_curve, match_curve_qps
from eval.pipeline.cluster import start_local_cluster
from eval.pipeline.runner import RunSummary

__all__ = [
    "CURVES", "SHAPE_PARAMS", "anchor_params", "OBJECTIVES", "TrialFailed", "TuningContext", "QuantizerObjective",
    "split_calibration", "suggest_quantizer", "trial_params", "NORMALISATIONS", "STATS", "METRICS", "quantizer_kwargs", "code_curve", "compare_curves", "open_study",
    "setup_digest", "study_cluster", "trials_rows", "best_trial", "feasible", "format_trials", "best_quantizer_dict", "complete_trials",
]

log = logging.getLogger(__name__)

#: the curves tuned: every registered global curve (a new curve quantizer joins the search space);
#: per-channel normalisation (codec.normalize) is not sampled yet
CURVES = CURVE_NAMES
#: curve -> (quantizer keyword, low, high), each quantizer's own ``shape_param``; sampled
#: log-uniformly under the trial-parameter name "<curve>_<keyword>"
SHAPE_PARAMS = {name: QUANTIZERS.get(name).shape_param for name in CURVES if QUANTIZERS.get(name).shape_param}
CLIP_TAIL = (1e-3, 1.0)  # percent of values clipped on each side when clipping is on
BITS = (8, 10)
#: "global": one curve for all channels; "channel": per-channel affine normalisation first
#: (codec.normalize.ChannelQuantizer, fixed per channel from calibration data, no side bits)
NORMALISATIONS = ("global", "channel")
STATS = ("p99", "p99.9", "max", "std")  # the per-channel statistic tried (ChannelQuantizer's ``stat``)
#: what a trial minimises: one BD-rate, or ``worst`` = the larger (worse) of the feature-PSNR and task BD-rates
OBJECTIVES = ("feature_psnr", "task", "worst")
METRICS = ("feature_psnr", "task")


class TrialFailed(RuntimeError):
    """A candidate whose BD-rate cannot be computed (reason in the message and the trial's user attrs)."""


# ----------------------------------------------------------------------------- search space


def suggest_quantizer(trial, normalisations: Sequence[str] = ("global",)) -> tuple[str, dict]:
    """Sample a quantizer from ``trial``; returns ``(name, keyword arguments)`` for make_quantizer.

    ``normalisations`` (a subset of :data:`NORMALISATIONS`): with ``channel`` among several, the
    trial also picks ``norm`` and, for ``channel``, the statistic ``stat`` and ``center``.
    """
    curve = trial.suggest_categorical("curve", list(CURVES))
    if curve in SHAPE_PARAMS:
        key, lo, hi = SHAPE_PARAMS[curve]
        trial.suggest_float(f"{curve}_{key}", lo, hi, log=True)
    trial.suggest_categorical("bits", list(BITS))
    if trial.suggest_categorical("clip", [False, True]):
        trial.suggest_float("clip_tail", *CLIP_TAIL, log=True)
    norms = list(normalisations)
    unknown = [n for n in norms if n not in NORMALISATIONS]
    if unknown or not norms:
        raise ValueError(f"normalisations {unknown or norms}: use some of {', '.join(NORMALISATIONS)}")
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
    if params.get("norm", "global") == "channel":  # per-channel normalisation in front of the same curve
        shape = kwargs.pop(SHAPE_PARAMS[curve][0], None) if curve in SHAPE_PARAMS else None
        kwargs.update(curve=curve, stat=str(params["stat"]), center=bool(params["center"]), shape=shape)
        return "channel", kwargs
    return curve, kwargs


# ----------------------------------------------------------------------------- data split


def split_calibration(samples: Sequence, n_val: int, seed: int = 0) -> tuple[list, list]:
    """Reproducible (fit, validation) split of the calibration samples; the test split is never used."""
    from eval.data.images import split

    samples = list(samples)
    if len(samples) < 2:
        raise ValueError(
            f"quantizer tuning needs at least 2 calibration images (one to fit ranges, one to validate), got {len(samples)}; "
            "add calibration images or raise --limit"
        )
    if not 1 <= n_val < len(samples):
        raise ValueError(f"--n-val {n_val}: must be between 1 and {len(samples) - 1} for {len(samples)} calibration images")
    return split(samples, n_calib=len(samples) - n_val, seed=seed)


# ----------------------------------------------------------------------------- coding and scoring


@dataclass
class TuningContext:
    """Everything that stays fixed across trials: images, order, codec, QPs, store, executor."""

    fit: FeatureSet  # candidate ranges are fitted on these
    val: FeatureSet  # coded and scored
    references: Mapping[str, str]  # uncompressed tail outputs of the validation images
    task: Any  # the model's TaskMetric
    model: dict
    codec: str
    qps: Sequence[int]
    store: Any  # eval.pipeline.store.ResultStore
    order_name: str = "identity"
    order: np.ndarray | None = None  # None = identity
    packing: str = "temporal"
    objective: str = "feature_psnr"
    #: the order is tuned too: name -> order learned on the fit part (the anchor then keeps ``order``)
    order_choices: Mapping[str, np.ndarray] | None = None
    normalisations: Sequence[str] = ("global",)
    match_qps: bool = False  # each candidate's QPs matched to the anchor's quality range (eval.pipeline.qp_match)
    qp_range: tuple = (0, 63)
    method: str = "pchip"
    min_overlap: float = 0.8
    max_task_loss: float | None = None  # constraint: task BD-rate (%) must stay <= this
    workers: int = 1
    scheduler: str | None = None
    max_attempts: int = 2
    progress: bool = False
    bitstream_dir: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.objective not in OBJECTIVES:
            raise ValueError(f"objective {self.objective!r}: use one of {', '.join(OBJECTIVES)}")
        if not 0.0 < self.min_overlap <= 1.0:
            raise ValueError(f"min_overlap={self.min_overlap}: use a fraction in (0, 1]")
        if self.order is None:
            self.order = np.arange(self.val.n_channels, dtype=np.int64)


def code_curve(ctx: TuningContext, quantizer: dict, label: str, order_name: str | None = None, order=None,
               qps: Sequence[int] | None = None) -> tuple[Curve | None, RunSummary]:
    """Code the validation images with ``quantizer`` and an order (default ``ctx.order``) at ``qps``
    (default ``ctx.qps``; cached cells reused); return its RD curve."""
    if order is None:
        order_name, order = ctx.order_name, ctx.order
    return code_order_curve(
        ctx.val, ctx.references, order_name, order, quantizer, ctx.codec, list(qps or ctx.qps), ctx.model, ctx.store,
        ctx.task, packing=ctx.packing, bitstream_dir=ctx.bitstream_dir, extra={**ctx.extra, "candidate": label},
        run_kwargs=dict(workers=ctx.workers, scheduler=ctx.scheduler, max_attempts=ctx.max_attempts,
                        progress=ctx.progress), desc=label,
    )


def compare_curves(anchor: Curve, test: Curve, metric: str = "feature_psnr", method: str = "pchip") -> tuple[float, float]:
    """``(BD-rate %, overlap)`` of ``test`` against ``anchor`` on ``metric``.

    ``overlap`` is the fraction of the anchor's quality range that the test curve also
    covers. Raises :class:`~eval.errors.RDCurveError` when the BD-rate is not computable.
    """
    from eval.errors import RDCurveError

    if not getattr(anchor, metric) or not getattr(test, metric):
        raise RDCurveError(f"no {metric} values to compare (a curve without finished QP points)")
    notes: list[str] = []
    value = bd_between(anchor, test, metric, method, notes=notes, label="candidate")
    if value is None:
        raise RDCurveError("; ".join(notes))
    return value, float(curve_overlap(anchor, test, metric))


class QuantizerObjective:
    """The Optuna objective: sample a quantizer, fit it on ``ctx.fit``, code ``ctx.val``, return its BD-rate."""

    def __init__(self, ctx: TuningContext, anchor: Curve):
        self.ctx = ctx
        self.anchor = anchor

    def __call__(self, trial) -> float:  # noqa: C901 - one trial, step by step
        from codec import make_quantizer
        from eval.errors import RDCurveError

        ctx = self.ctx
        t0 = time.perf_counter()
        name, kwargs = suggest_quantizer(trial, ctx.normalisations)
        order_name, order = ctx.order_name, ctx.order
        if ctx.order_choices:
            order_name = trial.suggest_categorical("order", list(ctx.order_choices))
            order = ctx.order_choices[order_name]
        try:
            quantizer = make_quantizer(name, **kwargs).fit(ctx.fit)
        except ValueError as exc:  # e.g. a curve too steep for float32 to give every code its own value
            trial.set_user_attr("error", str(exc))
            raise TrialFailed(f"trial {trial.number} ({name} {kwargs}): {exc}") from None
        qdict = quantizer.to_dict()
        trial.set_user_attr("quantizer", qdict)
        label = f"trial {trial.number}"
        qps = None
        if ctx.match_qps:  # QPs whose curve spans the anchor's quality range (probes are real, stored cells)
            probe = quantizer_runs.grid_probe(ctx.val, ctx.references, order, qdict, ctx.codec, ctx.model, ctx.store, ctx.task,
                               packing=ctx.packing, bitstream_dir=ctx.bitstream_dir, order_name=order_name,
                               extra={**ctx.extra, "candidate": label},
                               run_kwargs=dict(workers=ctx.workers, scheduler=ctx.scheduler,
                                               max_attempts=ctx.max_attempts, progress=ctx.progress))
            match = match_curve_qps(self.anchor, probe, qp_range=ctx.qp_range)
            qps = match.qps
            trial.set_user_attr("qp_match", match.as_dict())
        curve, summary = code_curve(ctx, qdict, label, order_name, order, qps)
        trial.set_user_attr("qps", sorted(int(q) for q in curve.qp) if curve is not None else None)
        trial.set_user_attr("cells_coded", summary.finished)
        trial.set_user_attr("cells_reused", summary.skipped)
        trial.set_user_attr("cells_failed", summary.failed + summary.gave_up)
        results: dict[str, Any] = {}
        for metric in METRICS:
            try:
                if curve is None:
                    raise RDCurveError("no QP point finished for every validation image")
                bd, overlap = compare_curves(self.anchor, curve, metric, self.ctx.method)
                results[metric] = bd
                results[f"{metric}_overlap"] = overlap
                if overlap < self.ctx.min_overlap:
                    results[f"{metric}_error"] = (
                        f"candidate covers {overlap:.0%} of the anchor's {metric} range (< {self.ctx.min_overlap:.0%}); "
                        "its BD-rate would be extrapolated from a sliver"
                    )
            except RDCurveError as exc:
                results[metric] = None
                results[f"{metric}_error"] = str(exc)
        errors = [results[f"{m}_error"] for m in METRICS if results.get(f"{m}_error")]
        results["worst"] = None if errors or None in (results["feature_psnr"], results["task"]) else \
            max(results["feature_psnr"], results["task"])
        if errors:
            results["worst_error"] = "; ".join(errors)
        trial.set_user_attr("bd_rate", results)
        trial.set_user_attr("curve", curve.as_dict() if curve is not None else None)
        trial.set_user_attr("seconds", round(time.perf_counter() - t0, 2))
        if self.ctx.max_task_loss is not None:
            task_bd = results.get("task") if not results.get("task_error") else None
            # > 0 = infeasible; a task BD-rate that cannot be computed counts as infeasible
            violation = 1e6 if task_bd is None else float(task_bd) - self.ctx.max_task_loss
            trial.set_user_attr("constraint", violation)
            if hasattr(trial, "set_constraint"):  # Optuna >= 5; older ones read it through constraints_func
                trial.set_constraint("task_loss", violation)
        error = results.get(f"{self.ctx.objective}_error")
        if error or results[self.ctx.objective] is None:
            trial.set_user_attr("error", error or "BD-rate not computable")
            raise TrialFailed(f"trial {trial.number} ({name} {kwargs}): {error}")
        return float(results[self.ctx.objective])


# ----------------------------------------------------------------------------- the study


@contextlib.contextmanager
def study_cluster(workers: int, scheduler: str | None = None):
    """The scheduler address every trial's :func:`run_grid` should use; yields ``None`` for inline runs.

    ``run_grid`` starts (and stops) a LocalCluster per call when given no address; a study
    calls it once per trial, so it would pay the cluster start-up and each worker's model
    load every trial. One LocalCluster for the whole study (single-threaded workers, same
    environment as the runner's own) keeps the workers and their loaded models warm.
    """
    if scheduler is not None or workers <= 1:
        yield scheduler
        return
    cluster = start_local_cluster(workers)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()


def setup_digest(**parts) -> str:
    """Digest of what makes trial values comparable (images, order, codec, QPs, anchor, objective)."""
    text = json.dumps(parts, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _storage(url: str, heartbeat_interval: int, grace_period: int):
    import optuna
    from optuna.storages import RDBStorage, RetryHeartbeatStaleTrialCallback

    engine_kwargs = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    try:
        return RDBStorage(
            url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat_interval, grace_period=grace_period,
            heartbeat_stale_trial_callback=RetryHeartbeatStaleTrialCallback(max_retry=1),
        )
    except (ImportError, optuna.exceptions.StorageInternalError, ValueError) as exc:
        raise ValueError(f"--storage {url}: cannot open the Optuna storage ({exc}); give an RDB URL such as sqlite:///PATH") from exc


def open_study(storage_url: str, study_name: str, seed: int, digest: str, n_startup_trials: int = 8,
               heartbeat_interval: int = 10, grace_period: int = 30, first_params: dict | None = None,
               constrained: bool = False):
    """Create or resume the study; returns ``(study, n_trials_before)``.

    The TPE sampler's seed is ``seed + number of stored trials``: a fixed seed makes a run
    reproducible, and offsetting it by the history keeps a resumed run from replaying the
    random start-up samples of the first run. A new study gets ``first_params`` (the
    anchor's, see :func:`anchor_params`) as its first trial: value 0 by construction, free
    since the anchor is cached, and it shows the sampler where the baseline lies.
    """
    import warnings

    import optuna
    from optuna.samplers import TPESampler

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    storage = _storage(storage_url, heartbeat_interval, grace_period)
    probe = optuna.create_study(storage=storage, study_name=study_name, direction="minimize", load_if_exists=True)
    stored = probe.user_attrs.get("setup_digest")
    if stored is not None and stored != digest:
        raise ValueError(
            f"study {study_name!r} in {storage_url} was run with another setup (digest {stored}, now {digest}: "
            "different images, QPs, codec, order, anchor or objective); its values are not comparable - "
            "use another --study-name or --out"
        )
    if stored is None:
        probe.set_user_attr("setup_digest", digest)
    optuna.storages.fail_stale_trials(probe)  # a killed run's RUNNING trial -> FAIL, its params queued again
    n_before = len(probe.trials)
    old_api = constrained and not hasattr(optuna.trial.Trial, "set_constraint")
    sampler = TPESampler(seed=seed + n_before, n_startup_trials=n_startup_trials,
                         constraints_func=_constraints if old_api else None)
    study = optuna.create_study(storage=storage, study_name=study_name, direction="minimize", sampler=sampler, load_if_exists=True)
    if n_before == 0 and first_params is not None:
        study.enqueue_trial(dict(first_params), user_attrs={"note": "untuned anchor"})
    return study, n_before


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


def _constraints(trial) -> list[float]:
    """TPE constraint values (<= 0 feasible) recorded by the objective."""
    return [float(trial.user_attrs.get("constraint", 0.0))]


def trial_params(trial) -> dict:
    """A trial's parameters with ``norm`` filled in (a study over one normalisation does not sample it)."""
    return {**trial.params, "norm": trial.params.get("norm", trial.user_attrs.get("norm", "global"))}


def feasible(trial) -> bool:
    """A completed trial that meets the task constraint (always true without one)."""
    return float(trial.user_attrs.get("constraint", 0.0)) <= 0.0


def best_trial(study):
    """The completed, feasible trial with the lowest value (None if there is none).

    Explicit about feasibility rather than relying on how a given Optuna version's
    ``study.best_trial`` treats constraint values.
    """
    candidates = [t for t in complete_trials(study) if feasible(t)]
    return min(candidates, key=lambda t: (t.value, t.number)) if candidates else None


def complete_trials(study) -> list:
    from optuna.trial import TrialState

    return [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]


def trials_rows(study) -> list[dict]:
    """One flat row per trial: parameters, quantizer, BD-rates, overlap, cells, state, error."""
    rows = []
    for t in study.get_trials(deepcopy=False):
        attrs = t.user_attrs
        bd = attrs.get("bd_rate", {})
        q = attrs.get("quantizer") or {}
        try:
            name, kwargs = quantizer_kwargs(trial_params(t))
        except (KeyError, ValueError):
            name, kwargs = t.params.get("curve", ""), {}
        shape_key = SHAPE_PARAMS.get(t.params.get("curve", name), ("",))[0]
        if name == "channel":
            kwargs = {**kwargs, shape_key: kwargs.get("shape")}
        rows.append({
            "trial": t.number,
            "state": t.state.name,
            "value": t.value,
            "curve": t.params.get("curve", name),
            "norm": trial_params(t).get("norm"),
            "stat": kwargs.get("stat"),
            "center": kwargs.get("center"),
            "order": t.params.get("order"),
            "qps": attrs.get("qps"),
            "shape_param": shape_key,
            "shape": kwargs.get(shape_key) if shape_key else None,
            "bits": kwargs.get("bits"),
            "percentile": kwargs.get("percentile"),
            "range": q.get("range"),
            "bd_feature_psnr": bd.get("feature_psnr"),
            "bd_task": bd.get("task"),
            "overlap_feature_psnr": bd.get("feature_psnr_overlap"),
            "feasible": feasible(t) if t.state.name == "COMPLETE" else None,
            "cells_coded": attrs.get("cells_coded"),
            "cells_reused": attrs.get("cells_reused"),
            "seconds": attrs.get("seconds"),
            "note": attrs.get("note", ""),
            "error": attrs.get("error", ""),
            "params": json.dumps(t.params, sort_keys=True),
        })
    return rows


def format_trials(rows: Sequence[dict], best: int | None = None) -> str:
    """Plain-text trials table; ``*`` marks the best trial, ``(task!)`` a trial that breaks the task constraint."""
    head = ["#", "state", "norm", "curve", "shape", "bits", "pctl", "order", "QPs", "BD feat-PSNR %", "BD task %", "overlap",
            "coded/reused", "s"]
    lines = []
    for r in rows:
        shape = f"{r['shape_param']}={fmt(r['shape'], '.3g', '-')}" if r["shape_param"] else "-"
        lines.append([
            f"{r['trial']}{'*' if r['trial'] == best else ''}", r["state"] + (" (task!)" if r.get("feasible") is False else ""),
            r["norm"] + (f" {r['stat']}{'' if r['center'] else ' /'}" if r["norm"] == "channel" else ""),
            r["curve"], shape, fmt(r["bits"], "d", "-"),
            fmt(r["percentile"], ".6g", "-"), r["order"] or "-",
            "-".join(map(str, r["qps"])) if r["qps"] else "-", fmt(r["bd_feature_psnr"], "+.2f", "-"), fmt(r["bd_task"], "+.2f", "-"),
            fmt(r["overlap_feature_psnr"], ".0%", "-"), f"{fmt(r['cells_coded'], 'd', '-')}/{fmt(r['cells_reused'], 'd', '-')}",
            fmt(r["seconds"], ".0f", "-"),
        ])
    return text_table(head, lines)


def best_quantizer_dict(study, calib: FeatureSet, extra: dict | None = None) -> dict:
    """The best trial's quantizer refitted on the whole calibration split, with a ``tuning`` record."""
    from codec import make_quantizer

    best = best_trial(study)
    if best is None:
        raise ValueError("the study has no completed (and feasible) trial yet; run more trials (see trials.csv for the failures)")
    name, kwargs = quantizer_kwargs(trial_params(best))
    quantizer = make_quantizer(name, **kwargs).fit(calib)
    d = quantizer.to_dict()
    d["tuning"] = {
        "study": study.study_name,
        "trial": best.number,
        "value": best.value,
        "bd_rate_vs_untuned_log": best.user_attrs.get("bd_rate"),
        "order": best.params.get("order"),
        "qps": best.user_attrs.get("qps"),
        "fitted_on": calib.ids,
        "range_on_fit_part": (best.user_attrs.get("quantizer") or {}).get("range"),
        **(extra or {}),
    }
    return d
