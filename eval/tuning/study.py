"""The Optuna study of a tuning run: storage, resuming, the best trial, the trials table, the best quantizer."""

from __future__ import annotations

import contextlib
import hashlib
import json
from typing import Sequence

from eval.analysis.tables import fmt, text_table
from eval.pipeline.cluster import start_local_cluster
from eval.pipeline.features import FeatureSet
from eval.tuning.search_space import SHAPE_PARAMS, quantizer_kwargs, trial_params

__all__ = ["study_cluster", "setup_digest", "open_study", "feasible", "best_trial", "complete_trials", "trials_rows",
           "format_trials", "best_quantizer_dict"]


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
        raise ValueError(f"storage {url}: cannot open the Optuna storage ({exc}); give an RDB URL such as sqlite:///PATH") from exc


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
            "use another study_name or output folder"
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


def _constraints(trial) -> list[float]:
    """TPE constraint values (<= 0 feasible) recorded by the objective."""
    return [float(trial.user_attrs.get("constraint", 0.0))]


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
