"""QP matching: a quantizer's QPs chosen so that its curve spans the anchor's quality range."""

import math

import pytest

from eval.pipeline.qp_match import match_qps, quality_range, spread_qps


def _probe(shift, slope=-0.6, task_shift=0.0, calls=None):
    """Feature PSNR falls linearly with the QP (``shift`` dB above the anchor's line), the task a bit faster."""
    def probe(qps):
        if calls is not None:
            calls.append(list(qps))
        return {q: {"feature_psnr": 50 + shift + slope * q, "task": 30 + task_shift - 0.9 * q} for q in qps}
    return probe


def test_spread_qps_keeps_the_ends_and_the_count():
    assert spread_qps(22, 37, 4) == [22, 27, 32, 37]
    assert spread_qps(30, 30, 4) == [30]
    assert spread_qps(40, 31, 4) == [31, 34, 37, 40]


@pytest.mark.parametrize("shift,task_shift", [(-8.0, -3.0), (6.0, 5.0), (0.0, 0.0), (-3.0, 4.0)])
def test_matched_qps_bracket_the_anchor_range_on_every_metric(shift, task_shift):
    anchor = _probe(0.0)([22, 27, 32, 37])
    targets = quality_range(anchor, ["feature_psnr", "task"])
    calls = []
    probe = _probe(shift, task_shift=task_shift, calls=calls)
    m = match_qps(probe, targets, [22, 27, 32, 37])
    assert m.reached == {"high": True, "low": True}
    got = probe(m.qps)
    lo, hi = m.qps[0], m.qps[-1]
    for metric, (t_lo, t_hi) in targets.items():
        assert got[hi][metric] <= t_lo + 1e-9 and got[lo][metric] >= t_hi - 1e-9
    assert len(m.qps) == 4 and m.qps == sorted(m.qps)
    # a quality shift of s dB moves the QPs by about s / 0.6 (the linear fit finds it in few probes)
    assert sum(len(c) for c in calls) <= 10
    if shift == task_shift == 0.0:
        assert m.qps == [22, 27, 32, 37]


def test_unreachable_range_is_reported_not_hidden():
    targets = {"feature_psnr": (30.0, 80.0)}
    m = match_qps(_probe(0.0), targets, [22, 37], qp_range=(0, 63))
    assert m.reached["high"] is False and m.reached["low"] is True
    assert m.qps[0] == 0  # went as far as the codec allows
    assert 0 in m.probes and m.as_dict()["reached"]["high"] is False


def test_flat_quality_steps_outward():
    def flat(qps):
        return {q: {"feature_psnr": 40.0 if q < 10 else 30.0} for q in qps}
    m = match_qps(flat, {"feature_psnr": (30.0, 40.0)}, [22, 37], step=4)
    assert m.reached == {"high": True, "low": True}
    assert m.qps[0] < 10 and all(not math.isnan(v["feature_psnr"]) for v in m.probes.values())
