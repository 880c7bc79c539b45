"""Tune the feature quantizer (and the channel order) with Optuna on the calibration split, against the paper's pipeline.

Each trial samples a quantizer (its scope: one global range or per-channel normalization, and
for per-channel the statistic and centring; curve uniform/log/power/mulaw, its shape parameter,
clipping percentile, 8 or 10 bits) and, with ``orders``, one of the given orders (learned on
the fit part: the order's metric and normalization are tuned with the quantizer). It fits the
quantizer on the *fit* part of the calibration split, picks QPs whose curve spans the anchor's
quality range (``match_qps``), codes the *validation* part (held-out calibration images; the
test split is never touched) through the shared core and scores it by BD-rate against the
anchor: the untuned ``coding.quantizer`` (default ``log``, the paper's global log 8-bit curve)
with the identity order (with ``order``: that order) coding the same images. The objective is
``worst`` by default: the larger of the feature-PSNR and task BD-rates, so a candidate wins
only by saving bits on both. Why, and how failures and resuming work: :mod:`eval.tuning`.

Outputs in ``run.out``: ``optuna.sqlite`` (the study, unless ``storage``), ``results.sqlite``
(every coded cell; a re-run or resumed trial recomputes nothing), ``anchor.json``,
``trials.csv``, ``best_quantizer.json`` (the best quantizer refitted on the whole calibration
split; ``quantizer = FILE`` of the other experiments reads it), ``summary.json`` and
``rd_curves.png`` (anchor vs best on the validation images).
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field

from eval.experiments.config import CodingConfig, ConfigError, DataConfig, RunConfig, convert_fields, option
from eval.tuning.search_space import OBJECTIVES, QUANTIZER_SCOPES

__all__ = ["TuneConfig", "TuneResult", "tune_quantizer"]



@dataclass
class TuneConfig:
    """Parameters of :func:`tune_quantizer` (``coding.quantizer`` is the anchor the candidates are compared with)."""

    n_trials: int = option(20, minimum=1, help="completed trials the study should hold (a re-run tops it up)")
    n_val: int = option(3, minimum=1, help="calibration images held out to score candidates (the rest fit ranges)")
    objective: str = option("worst", choices=OBJECTIVES, help="BD-rate minimised: feature_psnr, task, or worst = the larger of the two")
    min_overlap: float = option(0.8, help="fail a trial whose feature-PSNR range covers less than this fraction of the anchor's")
    max_task_loss: float | None = option(None, metavar="PCT",
                                         help="constraint: keep only quantizers whose task BD-rate vs the anchor is at most PCT % (e.g. 0)")
    order: str = option("identity", help="channel order used for anchor and candidates (a reorder name learned on the fit part)")
    orders: list[str] | None = option(None, metavar="NAME",
                                      help="tune the order too: each trial picks one of these reorder names (learned on the fit "
                                      "part, e.g. tsp-correlation tsp-mse 'tsp-mse:normalization=zscore'); the anchor keeps --order")
    quantizer_scopes: list[str] = option(factory=lambda: list(QUANTIZER_SCOPES), choices=QUANTIZER_SCOPES, renamed_from=("normalisations",),
                                         help="where the quantizer's range applies: global (one curve for all channels) and/or "
                                         "channel (each channel normalized by a calibration statistic first)")
    enqueue: list[str] = option(factory=list, metavar="SPEC[@ORDER]",
                                help="candidates tried before the sampler's own (quantizer specs, e.g. "
                                "'channel:curve=mulaw,bits=10,stat=p99.9,center=false@tsp-correlation'); one already tried is skipped")
    match_qps: bool = option(True, help="each candidate's QPs chosen so that its curve spans the anchor's feature-PSNR and task range")
    storage: str | None = option(None, help="Optuna RDB URL (default: sqlite:///OUT/optuna.sqlite)")
    study_name: str = option("quantizer", help="study name inside the storage")
    seed: int = option(0, help="TPE sampler seed and validation split seed")
    startup_trials: int = option(8, minimum=0, help="random trials before TPE models the results")
    grace_period: int = option(30, minimum=1, help="seconds without heartbeat after which a RUNNING trial counts as killed")
    data: DataConfig = option(factory=DataConfig, help="model and data")
    coding: CodingConfig = option(factory=CodingConfig, help="coding")
    run: RunConfig = option(factory=lambda: RunConfig(out="results/tune_quantizer"), help="running")

    def __post_init__(self):
        convert_fields(self)
        if not 0.0 < self.min_overlap <= 1.0:
            raise ConfigError("min_overlap", f"{self.min_overlap}: use a fraction in (0, 1]")

    def check(self) -> None:
        self.coding.check()
        for item in self.enqueue:
            enqueued_params(item, self, self.orders)


def enqueued_params(item: str, config: TuneConfig, order_choices) -> dict:
    """Trial parameters of one ``enqueue`` item ``SPEC[@ORDER]`` (a one-line error when outside the search space)."""
    from eval import tuning

    spec, _, order = item.partition("@")
    try:
        params = tuning.anchor_params(spec)
    except ValueError as exc:
        raise ConfigError("enqueue", f"{item}: {exc}") from None
    if params is None:
        raise ConfigError("enqueue", f"{item}: {spec!r} is outside the search space (a curve quantizer or channel:..., "
                          "no fixed range or per-image side information)")
    norm = params.setdefault("norm", "global")
    if norm not in config.quantizer_scopes:
        raise ConfigError("enqueue", f"{item}: scope {norm!r} is not among quantizer_scopes {' '.join(config.quantizer_scopes)}")
    if len(config.quantizer_scopes) == 1:
        params.pop("norm")
    if order_choices:
        order = order or next(iter(order_choices))
        if order not in order_choices:
            raise ConfigError("enqueue", f"{item}: order {order!r} is not among orders {' '.join(order_choices)}")
        params["order"] = order
    elif order:
        raise ConfigError("enqueue", f"{item}: an @ORDER needs orders")
    return params


@dataclass
class TuneResult:
    """The finished (or topped-up) tuning study: its trials, the best trial and quantizer, the files written."""

    config: TuneConfig
    trials: list
    best_trial: object | None  # optuna FrozenTrial
    best_quantizer: dict | None
    storage: str
    files: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def exit_code(self) -> int:
        return 0 if self.best_trial is not None else 3

    def text(self) -> str:
        from eval import tuning

        return "\n" + tuning.format_trials(self.trials, best=getattr(self.best_trial, "number", None)) + "\n"

    def notes(self) -> list[str]:
        if self.best_trial is None:
            return ["no trial completed (and met the task constraint); see the error column of trials.csv"]
        t, best = self.best_trial, self.best_quantizer
        task_bd = t.user_attrs.get("bd_rate", {}).get("task")
        return [f"best: trial {t.number}, {best['name']} {best['params']}: BD-rate {t.value:+.2f} % ({self.config.objective}; "
                f"task {'n/a' if task_bd is None else format(task_bd, '+.2f')} %) vs the anchor (coding.quantizer with order) "
                f"on the validation images; {self.seconds:.0f} s"]


def tune_quantizer(config: TuneConfig, *, command: str | None = None, source: str | None = None) -> TuneResult:
    """Run (or resume and top up) the tuning study of ``config``; see the module docstring."""
    from eval import tuning
    from eval.experiments.session import study_session

    config.check()
    t_start = time.perf_counter()
    with study_session(config, "tune_quantizer", command=command, source=source) as folder:
        setup, fit, val, order_name, order, choices, references = _prepare(config, folder)
        storage = config.storage or f"sqlite:///{(folder.root / 'optuna.sqlite').resolve()}"
        with folder.results_store() as store, tuning.study_cluster(config.run.workers, config.run.scheduler) as address:
            ctx = _context(config, setup, fit, val, references, store, order_name, order, choices, address, folder)
            anchor = _code_anchor(ctx, setup, folder)
            study = _open_study(config, setup, ctx, storage, choices)
            remaining = config.n_trials - len(tuning.complete_trials(study))
            if remaining > 0:
                study.optimize(tuning.QuantizerObjective(ctx, anchor), n_trials=remaining, catch=(tuning.TrialFailed,))
        result = _write(config, folder, setup, fit, val, anchor, study, storage)
    result.seconds = time.perf_counter() - t_start
    return result


def _prepare(config: TuneConfig, folder):
    """The fit/validation split of the calibration images, their features, the anchor order and the tuned orders."""
    import numpy as np

    from eval import tuning
    from eval.experiments.session import prepare, provenance
    from eval.pipeline.features import prepare_references
    from eval.pipeline.orders import learn_orders

    progress = config.run.progress
    calib_samples, _ = config.data.splits()  # the test split is not used for tuning
    fit_samples, val_samples = tuning.split_calibration(calib_samples, config.n_val, seed=config.seed)
    setup = prepare(config.data, config.coding, progress, splits=(fit_samples, val_samples))
    fit, val = setup.calib, setup.test
    order_name, order = "identity", None
    if config.order != "identity":
        order_name = config.order
        order = learn_orders([config.order], fit, folder.orders, provenance(setup), progress=progress)[config.order].order
    choices = None
    if config.orders:
        learned = learn_orders([o for o in config.orders if o != "identity"], fit, folder.orders, provenance(setup), progress=progress)
        arrays = learned.arrays()
        choices = {o: (np.arange(fit.n_channels) if o == "identity" else arrays[o]) for o in config.orders}
    references = prepare_references(setup.adapter, val, progress=progress)
    print(f"tuning on {len(fit)} fit + {len(val)} validation calibration images ({', '.join(val.ids)}), "
          f"{setup.codec_spec}, anchor QPs {' '.join(map(str, config.coding.qps))}, anchor order {order_name}"
          + (f", orders tuned among {', '.join(config.orders)}" if config.orders else ""), file=sys.stderr)
    return setup, fit, val, order_name, order, choices, references


def _context(config, setup, fit, val, references, store, order_name, order, choices, address, folder):
    from codec import make_codec
    from eval import tuning

    run = config.run
    return tuning.TuningContext(
        fit=fit, val=val, references=references, task=setup.adapter.task, model=setup.model_spec, codec=setup.codec_spec,
        qps=list(config.coding.qps), store=store, order_name=order_name, order=order, packing=config.coding.packing,
        objective=config.objective, method=config.coding.bd_method, min_overlap=config.min_overlap,
        order_choices=choices, scopes=list(config.quantizer_scopes), match_qps=config.match_qps,
        qp_range=make_codec(setup.codec_spec).qp_range, max_task_loss=config.max_task_loss, workers=run.workers,
        scheduler=address, max_attempts=run.max_attempts, progress=run.progress,
        bitstream_dir=run.bitstream_dir(folder), extra={"study": "tune_quantizer"},
    )


def _code_anchor(ctx, setup, folder):
    from eval import tuning

    anchor, summary = tuning.code_curve(ctx, setup.quantizer_dict, "anchor")
    if anchor is None or len(anchor.qp) < 4:
        raise ValueError(f"the anchor quantizer's curve has {0 if anchor is None else len(anchor.qp)} complete QP points "
                         "(need 4); see the failed cells in results.sqlite and fix the codec setup")
    folder.write_json("anchor.json", {"quantizer": setup.quantizer_dict, "curve": anchor.as_dict(),
                                      "cells_coded": summary.finished, "cells_reused": summary.skipped})
    return anchor


def _open_study(config: TuneConfig, setup, ctx, storage: str, choices):
    """Create or resume the Optuna study under this setup's digest; enqueue the anchor and the ``enqueue`` items."""
    from eval import tuning

    scopes, coding = list(config.quantizer_scopes), config.coding
    digest = tuning.setup_digest(
        model=setup.model_spec, codec=setup.codec_spec, qps=list(coding.qps), packing=coding.packing,
        fit=[r.key for r in ctx.fit.refs], val=[r.key for r in ctx.val.refs], order=[int(i) for i in ctx.order],
        anchor=setup.quantizer_dict, objective=config.objective, method=coding.bd_method, min_overlap=config.min_overlap,
        **({"max_task_loss": config.max_task_loss} if config.max_task_loss is not None else {}),
        # only what differs from the quantizer-only tuning, so studies stored before these options still resume
        # ("normalisations" is the key stored studies were digested with)
        **({"normalisations": scopes} if scopes != ["global"] else {}),
        **({"match_qps": True} if config.match_qps else {}),
        **({"orders": {o: [int(i) for i in a] for o, a in choices.items()}} if choices else {}),
    )
    first = _first_params(config, ctx.order_name, choices)
    study, n_before = tuning.open_study(storage, config.study_name, config.seed, digest, n_startup_trials=config.startup_trials,
                                        grace_period=config.grace_period, heartbeat_interval=max(1, config.grace_period // 3),
                                        first_params=first, constrained=config.max_task_loss is not None)
    for item in config.enqueue:
        study.enqueue_trial(enqueued_params(item, config, choices), skip_if_exists=True)
    if n_before == 0:
        study.set_user_attr("anchor_quantizer", setup.quantizer_dict)
        study.set_user_attr("validation_images", ctx.val.ids)
    remaining = config.n_trials - len(tuning.complete_trials(study))
    print(f"study {config.study_name!r}: {n_before} stored trial(s), running {max(0, remaining)} more", file=sys.stderr)
    return study


def _first_params(config: TuneConfig, order_name: str, choices) -> dict | None:
    """The anchor as the first trial of a new study, when it lies in the search space (value 0 by construction)."""
    from eval import tuning

    spec = config.coding.quantizer
    first = None if spec.endswith(".json") else tuning.anchor_params(spec)
    if first is None or "global" not in config.quantizer_scopes:
        return None
    if len(config.quantizer_scopes) > 1:
        first["norm"] = "global"
    if choices:
        if order_name not in choices:
            return None
        first["order"] = order_name
    return first


def _write(config: TuneConfig, folder, setup, fit, val, anchor, study, storage) -> TuneResult:
    """trials.csv, best_quantizer.json, rd_curves.png and summary.json of the study as it stands."""
    from eval import tuning
    from eval.analysis.curves import Curve
    from eval.pipeline.features import FeatureSet
    from eval.plots import plot_rd_curves

    rows = tuning.trials_rows(study)
    folder.write_csv("trials.csv", rows)
    best_t = tuning.best_trial(study)
    files = {"trials": folder.root / "trials.csv", "study": f"{storage} (study {config.study_name!r})",
             "cells": folder.store_path}
    if best_t is None:
        return TuneResult(config, rows, None, None, storage, files)
    best = tuning.best_quantizer_dict(
        study, FeatureSet(fit.refs + val.refs),
        extra={"objective": config.objective, "max_task_loss": config.max_task_loss, "validation_images": val.ids,
               "orders_tuned": config.orders, "codec": setup.codec_spec, "qps": list(config.coding.qps)})
    folder.write_json("best_quantizer.json", best)
    curves = [Curve(**{**anchor.as_dict(), "setup": {"order": "untuned anchor"}})]
    if best_t.user_attrs.get("curve"):
        curves.append(Curve(**{**best_t.user_attrs["curve"], "setup": {"order": f"best (trial {best_t.number})"}}))
    plot_rd_curves(curves, folder.rd_plot, anchor="untuned anchor", task_label=setup.adapter.task.name,
                   title=f"quantizer tuning on {len(val)} validation images, {setup.codec_spec}")
    folder.write_json("summary.json", {
        "study": config.study_name, "storage": storage, "objective": config.objective, "max_task_loss": config.max_task_loss,
        "n_trials": len(rows), "n_complete": len(tuning.complete_trials(study)), "best_trial": best_t.number,
        "best_value": best_t.value, "best_bd_rate": best_t.user_attrs.get("bd_rate", {}), "best_quantizer": best,
        "anchor_quantizer": setup.quantizer_dict, "fit_images": fit.ids, "validation_images": val.ids,
    })
    files = {"best quantizer": folder.root / "best_quantizer.json", **files, "plot": folder.rd_plot}
    return TuneResult(config, rows, best_t, best, storage, files)
