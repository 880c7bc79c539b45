"""One tuning trial: sample a quantizer, fit it, code the validation images, score its BD-rates against the anchor."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from eval.analysis.curves import Curve, bd_between, curve_overlap
from eval.pipeline import quantizer_runs
from eval.pipeline.features import FeatureSet
from eval.pipeline.quantizer_runs import code_order_curve, match_curve_qps
from eval.pipeline.runner import RunSummary
from eval.tuning.search_space import OBJECTIVES, QUALITY_METRICS, suggest_quantizer

__all__ = ["TrialFailed", "TuningContext", "code_curve", "compare_curves", "QuantizerObjective"]


class TrialFailed(RuntimeError):
    """A candidate whose BD-rate cannot be computed (reason in the message and the trial's user attrs)."""


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
    scopes: Sequence[str] = ("global",)
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
        name, kwargs = suggest_quantizer(trial, ctx.scopes)
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
        for metric in QUALITY_METRICS:
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
        errors = [results[f"{m}_error"] for m in QUALITY_METRICS if results.get(f"{m}_error")]
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
