"""Quantizer tuning: search space, objective pieces, study resume, and the study end to end (tiny config)."""

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import optuna
import pytest

from codec import make_quantizer, quantizer_from_dict
from eval import tuning
from eval.errors import RDCurveError
from eval.analysis.curves import Curve

ROOT = Path(__file__).resolve().parents[1]


# ----------------------------------------------------------------------------- search space


@pytest.mark.parametrize(
    "params, name, kwargs",
    [
        ({"curve": "uniform", "bits": 10, "clip": False}, "uniform", {"bits": 10, "percentile": 100.0}),
        ({"curve": "log", "log_shape": 30.0, "bits": 8, "clip": True, "clip_tail": 0.01}, "log", {"bits": 8, "shape": 30.0, "percentile": 99.99}),
        ({"curve": "power", "power_gamma": 0.4, "bits": 8, "clip": False}, "power", {"bits": 8, "gamma": 0.4, "percentile": 100.0}),
        ({"curve": "mulaw", "mulaw_mu": 255.0, "bits": 10, "clip": False}, "mulaw", {"bits": 10, "mu": 255.0, "percentile": 100.0}),
    ],
)
def test_trial_params_become_quantizers(params, name, kwargs):
    got_name, got = tuning.quantizer_kwargs(params)
    assert got_name == name and got == pytest.approx(kwargs)
    make_quantizer(got_name, **got)  # valid for the quantizer classes


def test_suggest_covers_every_curve_and_both_depths():
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    seen = set()
    for _ in range(60):
        trial = study.ask()
        name, kwargs = tuning.suggest_quantizer(trial)
        q = make_quantizer(name, **kwargs)
        assert 99.0 <= q.percentile <= 100.0
        seen.add((name, kwargs["bits"]))
        study.tell(trial, 0.0)
    assert {n for n, _ in seen} == set(tuning.CURVES) and {b for _, b in seen} == {8, 10}


def test_joint_space_samples_quantizer_scopes_and_orders():
    """With both quantizer scopes, trials build per-channel quantizers with every statistic; fitted, they code exactly."""
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    X = [np.random.default_rng(i).gamma(0.5, 1.0 + np.arange(6)[:, None, None], (6, 8, 8)).astype(np.float32) for i in range(2)]
    seen, fitted = set(), []
    for _ in range(40):
        trial = study.ask()
        name, kwargs = tuning.suggest_quantizer(trial, tuning.QUANTIZER_SCOPES)
        seen.add((name, kwargs.get("stat"), kwargs.get("center")))
        if name == "channel":
            assert kwargs["curve"] == trial.params["curve"] and kwargs["stat"] in tuning.STATS
            try:
                q = make_quantizer(name, **kwargs).fit(X)
            except ValueError as exc:  # a steep power curve at 10 bit: a failed trial, said in one line
                assert "cannot give" in str(exc) or "range" in str(exc)
                study.tell(trial, state=optuna.trial.TrialState.FAIL)
                continue
            fitted.append(kwargs["curve"])
            codes = q.quantize(X[0])
            assert np.array_equal(q.quantize(q.dequantize(codes)), codes)  # exact on the integer grid
        study.tell(trial, 0.0)
    assert {n for n, _, _ in seen} >= {"channel", *tuning.CURVES}
    assert {st for n, st, _ in seen if n == "channel"} == set(tuning.STATS)
    assert {c for n, _, c in seen if n == "channel"} == {False, True}
    assert len(fitted) >= 10 and {"log", "mulaw", "uniform"} <= set(fitted)
    name, kwargs = tuning.quantizer_kwargs({"curve": "mulaw", "mulaw_mu": 2.0, "bits": 10, "clip": False, "norm": "channel",
                                            "stat": "p99.9", "center": False})
    assert name == "channel" and kwargs == {"bits": 10, "percentile": 100.0, "curve": "mulaw", "stat": "p99.9",
                                            "center": False, "shape": 2.0}


def test_worst_objective_tunes_order_and_matches_qps(monkeypatch):
    """objective=worst scores the worse of the two BD-rates; the trial's order is used; QPs come from the probe."""
    from eval.pipeline import quantizer_runs

    anchor = Curve(setup={}, qp=[22, 27, 32, 37], bpp=[0.8, 0.4, 0.2, 0.1], feature_psnr=[39, 36, 33, 30], task=[39, 36, 33, 30])
    seen = {}

    def fake_probe(*args, order_name="identity", **kwargs):
        def probe(qps):  # a candidate 4 dB better than the anchor at every QP on both metrics
            seen.setdefault("probed", []).extend(qps)
            return {q: {"feature_psnr": 52.2 - 0.6 * q + 4, "task": 52.2 - 0.6 * q + 4} for q in qps}
        return probe

    def fake_code(ctx, q, label, order_name=None, order=None, qps=None):
        seen["order"], seen["qps"] = order_name, list(qps)
        f = [52.2 - 0.6 * x + 4 for x in qps]
        # the order saves 30 % bits on feature PSNR and 10 % on the task at equal quality
        bpp_f = [0.7 * 0.8 * 2 ** (-(x - 22) / 5) * 2 ** (4 / 3) for x in qps]
        return Curve(setup={}, qp=list(qps), bpp=bpp_f, feature_psnr=f, task=f), type("S", (), dict(finished=4, skipped=0, failed=0, gave_up=0))()

    monkeypatch.setattr(quantizer_runs, "grid_probe", fake_probe)
    monkeypatch.setattr(tuning.objective, "code_curve", fake_code)

    class Ctx:
        fit = [np.random.default_rng(0).random((4, 8, 8), dtype=np.float32)]
        objective, method, min_overlap, max_task_loss = "worst", "pchip", 0.5, None
        scopes, match_qps, qp_range, order_name, order = ("global",), True, (0, 63), "identity", np.arange(4)
        order_choices = {"tsp-x": np.array([3, 2, 1, 0])}
        val = references = task = model = codec = store = packing = bitstream_dir = scheduler = None
        extra, workers, max_attempts, progress = {}, 1, 1, False

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(tuning.QuantizerObjective(Ctx(), anchor), n_trials=1)
    t = study.trials[0]
    assert t.state == optuna.trial.TrialState.COMPLETE and seen["order"] == "tsp-x" and t.params["order"] == "tsp-x"
    assert seen["qps"] == t.user_attrs["qps"] and seen["qps"][0] > 22 and seen["qps"][-1] > 37  # 4 dB better: higher QPs
    bd = t.user_attrs["bd_rate"]
    assert t.value == pytest.approx(max(bd["feature_psnr"], bd["task"])) and bd["worst"] == pytest.approx(t.value)
    assert t.user_attrs["qp_match"]["reached"] == {"high": True, "low": True}


def test_anchor_params_round_trip():
    assert tuning.anchor_params("log") == {"curve": "log", "bits": 8, "clip": False, "log_shape": 100.0}
    p = tuning.anchor_params("power:gamma=0.5,bits=10,percentile=99.9")
    assert tuning.quantizer_kwargs(p) == ("power", {"bits": 10, "gamma": 0.5, "percentile": pytest.approx(99.9)})
    assert tuning.anchor_params({"name": "log", "params": {}}) is None  # a saved quantizer is not a search point


def test_split_calibration_is_reproducible_and_disjoint():
    from eval.data.images import Sample

    samples = [Sample(f"img{i}", None) for i in range(7)]
    fit, val = tuning.split_calibration(samples, 3, seed=0)
    assert len(fit) == 4 and len(val) == 3 and not {s.id for s in fit} & {s.id for s in val}
    assert [s.id for s in tuning.split_calibration(samples, 3, seed=0)[1]] == [s.id for s in val]
    with pytest.raises(ValueError, match="n_val=7"):
        tuning.split_calibration(samples, 7)
    with pytest.raises(ValueError, match="at least 2 calibration images"):
        tuning.split_calibration(samples[:1], 1)


# ----------------------------------------------------------------------------- scoring


def _curve(bpp, psnr):
    return Curve(setup={"order": "x"}, qp=[37, 32, 27, 22], bpp=list(bpp), feature_psnr=list(psnr), task=list(psnr))


def test_compare_curves_bd_rate_and_overlap():
    anchor = _curve([0.1, 0.2, 0.4, 0.8], [30, 33, 36, 39])
    half_bits = _curve([0.05, 0.1, 0.2, 0.4], [30, 33, 36, 39])
    bd, overlap = tuning.compare_curves(anchor, half_bits)
    assert bd == pytest.approx(-50.0, abs=1e-6) and overlap == pytest.approx(1.0)
    shifted = _curve([0.1, 0.2, 0.4, 0.8], [36, 39, 42, 45])  # covers the top third of the anchor's range
    assert tuning.compare_curves(anchor, shifted)[1] == pytest.approx(1 / 3)
    with pytest.raises(RDCurveError, match="do not overlap"):
        tuning.compare_curves(anchor, _curve([0.1, 0.2, 0.4, 0.8], [40, 41, 42, 43]))


def test_objective_fails_a_trial_with_too_little_overlap(monkeypatch, tmp_path):
    """A candidate whose curve barely overlaps the anchor's is FAILED with the reason, not scored."""
    anchor = _curve([0.1, 0.2, 0.4, 0.8], [30, 33, 36, 39])
    fake = {"curve": _curve([0.1, 0.2, 0.4, 0.8], [38, 40, 42, 44])}

    class Summary:
        finished, skipped, failed, gave_up = 4, 0, 0, 0

    monkeypatch.setattr(tuning.objective, "code_curve", lambda ctx, q, label, *order: (fake["curve"], Summary()))

    class Ctx:
        fit = [np.random.default_rng(0).random((4, 8, 8), dtype=np.float32)]
        objective, method, min_overlap, max_task_loss = "feature_psnr", "pchip", 0.5, None
        scopes, order_choices, match_qps, order_name, order = ("global",), None, False, "identity", None

    objective = tuning.QuantizerObjective(Ctx(), anchor)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=1, catch=(tuning.TrialFailed,))
    t = study.trials[0]
    assert t.state == optuna.trial.TrialState.FAIL and "covers 11%" in t.user_attrs["error"]
    fake["curve"] = _curve([0.09, 0.18, 0.36, 0.72], [30, 33, 36, 39])
    study.optimize(objective, n_trials=1, catch=(tuning.TrialFailed,))
    assert study.trials[1].state == optuna.trial.TrialState.COMPLETE and study.trials[1].value == pytest.approx(-10.0)
    assert quantizer_from_dict(study.trials[1].user_attrs["quantizer"]).is_fitted


def test_task_constraint_excludes_trials_that_lose_task_fidelity(monkeypatch, tmp_path):
    """With max_task_loss, a quantizer that saves feature-PSNR bits but loses task fidelity is not the best."""
    anchor = _curve([0.1, 0.2, 0.4, 0.8], [30, 33, 36, 39])
    outcomes = iter([
        Curve(setup={}, qp=[37, 32, 27, 22], bpp=[0.05, 0.1, 0.2, 0.4], feature_psnr=[30, 33, 36, 39], task=[26, 29, 32, 35]),
        Curve(setup={}, qp=[37, 32, 27, 22], bpp=[0.09, 0.18, 0.36, 0.72], feature_psnr=[30, 33, 36, 39], task=[30, 33, 36, 39]),
    ])

    class Summary:
        finished, skipped, failed, gave_up = 4, 0, 0, 0

    monkeypatch.setattr(tuning.objective, "code_curve", lambda ctx, q, label, *order: (next(outcomes), Summary()))

    class Ctx:
        fit = [np.random.default_rng(0).random((4, 8, 8), dtype=np.float32)]
        objective, method, min_overlap, max_task_loss = "feature_psnr", "pchip", 0.5, 0.0
        scopes, order_choices, match_qps, order_name, order = ("global",), None, False, "identity", None

    study, _ = tuning.open_study(f"sqlite:///{tmp_path / 'o.sqlite'}", "s", seed=0, digest="d", constrained=True)
    study.optimize(tuning.QuantizerObjective(Ctx(), anchor), n_trials=2, catch=(tuning.TrialFailed,))
    first, second = study.trials
    assert first.value == pytest.approx(-50.0, abs=1e-6)
    assert first.user_attrs["bd_rate"]["task"] > 20  # the task got worse: infeasible under max_task_loss=0
    assert first.user_attrs["constraint"] == pytest.approx(first.user_attrs["bd_rate"]["task"])
    assert second.value == pytest.approx(-10.0, abs=1e-6) and second.user_attrs["constraint"] <= 0
    assert tuning.best_trial(study).number == 1
    rows = tuning.trials_rows(study)
    assert [r["feasible"] for r in rows] == [False, True]
    assert "(task!)" in tuning.format_trials(rows, best=1).splitlines()[2]


# ----------------------------------------------------------------------------- study storage


def test_open_study_refuses_another_setup(tmp_path):
    url = f"sqlite:///{tmp_path / 'o.sqlite'}"
    study, n = tuning.open_study(url, "s", seed=0, digest="aaa", first_params={"curve": "uniform", "bits": 8, "clip": False})
    assert n == 0 and study.trials[0].state == optuna.trial.TrialState.WAITING
    _, n2 = tuning.open_study(url, "s", seed=0, digest="aaa")
    assert n2 == 1  # the queued anchor is a stored trial; nothing queued twice
    with pytest.raises(ValueError, match="another setup"):
        tuning.open_study(url, "s", seed=0, digest="bbb")


@pytest.mark.filterwarnings("ignore:Heartbeat of storage:UserWarning")  # study.ask() stands in for optimize here
def test_stale_running_trial_is_failed_and_requeued(tmp_path):
    """A trial left RUNNING by a killed process is marked FAIL and its parameters queued again."""
    import time

    url = f"sqlite:///{tmp_path / 'o.sqlite'}"
    study, _ = tuning.open_study(url, "s", seed=0, digest="d", heartbeat_interval=1, grace_period=1)
    trial = study.ask()  # a trial whose process then 'dies'
    tuning.suggest_quantizer(trial)
    study._storage.record_heartbeat(trial._trial_id)
    time.sleep(2.5)
    study2, n = tuning.open_study(url, "s", seed=0, digest="d", heartbeat_interval=1, grace_period=1)
    states = [t.state for t in study2.trials]
    assert states[0] == optuna.trial.TrialState.FAIL and states[-1] == optuna.trial.TrialState.WAITING
    assert study2.trials[-1].params == trial.params  # the retry re-evaluates the same quantizer


# ----------------------------------------------------------------------------- end to end


def tiny(tmp_path, n_trials, *extra):
    return [
        sys.executable, "-m", "studies.tune_quantizer", "--out", str(tmp_path / "out"), "--cache-dir", str(tmp_path / "cache"),
        "--model-arg", "short_side=96", "--model-arg", "window=64", "--model-arg", "window_stride=32",
        "--limit", "2", "--n-val", "1", "--workers", "1", "--quiet", "--qps", "32", "37", "42", "47",
        "--n-trials", str(n_trials), "--startup-trials", "2",
        # the quantizer-only tuning: one 96 px validation image has too few windows for a monotone task curve
        "--objective", "feature_psnr", "--quantizer-scopes", "global", "--no-match-qps", *extra,
    ]


def _trials(db):
    """(number, state, value) of every trial, read straight from the Optuna storage."""
    con = sqlite3.connect(db)
    query = ("SELECT t.number, t.state, v.value FROM trials t "
             "LEFT JOIN trial_values v ON v.trial_id = t.trial_id ORDER BY t.number")
    return list(con.execute(query))


@pytest.mark.slow
def test_study_runs_resumes_and_its_best_quantizer_is_accepted(tmp_path):
    out = tmp_path / "out"
    proc = subprocess.run(tiny(tmp_path, 2), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    first = _trials(out / "optuna.sqlite")
    assert [s for _, s, _ in first] == ["COMPLETE", "COMPLETE"]
    assert first[0][2] == pytest.approx(0.0, abs=1e-9)  # trial 0 is the untuned anchor itself
    cells = dict(sqlite3.connect(out / "results.sqlite").execute("SELECT key, row FROM results"))
    assert len(cells) == 8  # anchor + one candidate, 1 validation image x 4 QPs
    rows = [json.loads(r) for r in cells.values()]
    assert all(r["status"] == "ok" for r in rows)
    val_ids = json.loads((out / "summary.json").read_text())["validation_images"]
    assert {r["image_id"] for r in rows} == set(val_ids)  # only the held-out calibration image is coded
    assert "BD feat-PSNR" in proc.stdout and "best_quantizer.json" in proc.stdout
    assert (out / "trials.csv").read_text().count("\n") == 3

    # resume: the study grows from its stored trials, nothing already coded is coded again
    again = subprocess.run(tiny(tmp_path, 3), cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "2 stored trial(s), running 1 more" in again.stderr
    second = _trials(out / "optuna.sqlite")
    assert len(second) == 3 and second[:2] == first and second[2][1] == "COMPLETE"
    after = dict(sqlite3.connect(out / "results.sqlite").execute("SELECT key, row FROM results"))
    assert all(after[k] == v for k, v in cells.items())
    assert json.loads((out / "anchor.json").read_text())["cells_coded"] == 0  # the anchor came from the store

    # the saved best quantizer is what search_order --quantizer FILE uses (range kept, not refitted)
    from eval.pipeline.setup import prepare_setup

    saved = json.loads((out / "best_quantizer.json").read_text())
    best_value = min(v for _, s, v in second if s == "COMPLETE")
    assert saved["tuning"]["value"] == pytest.approx(best_value)
    spec = str(out / "best_quantizer.json")
    from eval.data.images import default_split

    calib, test = default_split()
    setup = prepare_setup({"name": "mobilenet_v2", "kwargs": {"short_side": 96, "window": 64, "window_stride": 32}},
                          calib[:2], test[:1], quantizer=spec, cache_dir=tmp_path / "cache", progress=False, check_codec=False)
    assert setup.quantizer_dict["range"] == saved["range"] and setup.quantizer_dict["name"] == saved["name"]
    assert setup.quantizer_dict["params"] == saved["params"]
