"""Importance-aware orders: the position loss model, channel importance data, the joint cost and the orderers."""
import json

import numpy as np
import pytest

from codec import make_codec
from codec.structure import from_vtm_cfg
from reorder import make_orderer
from reorder.importance import ChannelImportance, as_importance, qp_offsets_of
from reorder.importance_cost import ImportanceCost, best_rotation, rotations
from reorder.position_loss import PositionLoss, step_squared
from reorder.structure_cost import structure_cost_for
from reorder.tsp import solve_path

from test_codec_structure import VTM9_RA


def calib(C=40, n=3, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((4, 12, 12))
    mix = rng.standard_normal((C, 4))
    return [(np.tensordot(mix, base + 0.3 * rng.standard_normal((4, 12, 12)), 1)
             + 0.2 * rng.standard_normal((C, 12, 12))).astype(np.float32) for _ in range(n)]


# ---------------------------------------------------------------------- position loss
def test_position_loss_follows_the_step_then_saturates_at_the_variance():
    m = PositionLoss(np.array([1e6, 10.0]), a=0.07, qp=32)
    low, high = m.mse([-20, 40])[0], m.mse([-20, 40])[1]
    assert low[0] == pytest.approx(0.07 * step_squared(12), rel=1e-3)  # far from saturation: a * step^2
    assert high[1] == pytest.approx(10.0, rel=1e-6)  # coded far coarser than its spread: loses its variance
    assert np.all(np.diff(m.mse(np.arange(-3, 10)), axis=1) > 0)  # more QP, more loss
    r = m.ratio([-3, 9], reference=9)
    assert r[:, 1] == pytest.approx([1.0, 1.0]) and r[0, 0] == pytest.approx(2 ** (-12 / 3), rel=1e-2)


def test_position_loss_fit_recovers_the_model_it_was_sampled_from():
    rng = np.random.default_rng(0)
    C = 30
    var = rng.uniform(50, 4000, C)
    k = np.exp(rng.normal(0, 0.3, C))
    k /= np.exp(np.log(k).mean())
    truth = PositionLoss(var, a=0.06, qp=32, scale=k)
    ch = np.repeat(np.arange(C), 6)
    off = np.tile([-3, 2, 3, 6, 8, 9], C)
    mse = truth.mse([-3, 2, 3, 6, 8, 9]).ravel() * np.exp(rng.normal(0, 0.02, ch.size))
    fit = PositionLoss.fit(ch, 32 + off, mse, var, qp=32)
    assert fit.a == pytest.approx(0.06, rel=0.1)
    assert np.corrcoef(np.log(fit.scale), np.log(k))[0, 1] > 0.9
    assert fit.fit_rmse < 0.05 and fit.n_samples == ch.size
    again = PositionLoss.from_dict(json.loads(json.dumps(fit.to_dict())))
    assert np.allclose(again.mse([0, 9]), fit.mse([0, 9]))


def test_position_loss_rejects_bad_input():
    with pytest.raises(ValueError, match="variance"):
        PositionLoss(np.array([-1.0]), a=0.1, qp=32)
    with pytest.raises(ValueError, match="a="):
        PositionLoss(np.array([1.0]), a=0.0, qp=32)
    with pytest.raises(ValueError, match="channel indices"):
        PositionLoss.fit([0, 5], [30, 31], [1.0, 2.0], np.ones(3), qp=30)
    with pytest.raises(ValueError, match="kind"):
        PositionLoss.from_dict({"kind": "other"})


# ---------------------------------------------------------------------- importance data
def test_expected_loss_and_weighted_qp_prefer_important_channels_at_low_qp():
    s = make_codec("vvenc").prediction_structure(40)
    off = qp_offsets_of(s)
    imp = ChannelImportance(np.linspace(10, 1, 40))  # channel 0 matters most
    best = np.argsort(np.argsort(off, kind="stable"), kind="stable")  # rank of each position's offset
    good = np.empty(40, dtype=np.int64)
    good[np.argsort(off, kind="stable")] = np.arange(40)  # channel k at the k-th lowest offset
    bad = np.empty(40, dtype=np.int64)
    bad[np.argsort(-off, kind="stable")] = np.arange(40)
    assert imp.expected_loss(good, s) < imp.expected_loss(np.arange(40), s) < imp.expected_loss(bad, s)
    assert imp.weighted_qp(good, s) < imp.weighted_qp(bad, s)
    assert imp.weighted_qp(good, s) == pytest.approx((imp.importance[good] * off).sum() / imp.importance.sum())
    W = imp.position_table(s)
    assert W.shape == (40, 40) and W[0, off.argmax()] == pytest.approx(10.0)  # reference offset +9: the importance
    assert best.shape == (40,)


def test_importance_files_round_trip_and_fail_clearly(tmp_path):
    loss = PositionLoss(np.full(4, 100.0), a=0.05, qp=32)
    imp = ChannelImportance(np.array([1.0, 2.0, 0.5, 0.0]), 9.0, loss, {"model": "m"})
    path = imp.save(tmp_path / "imp.json")
    back = as_importance(str(path))
    assert np.array_equal(back.importance, imp.importance) and back.provenance == {"model": "m"}
    assert back.digest() == imp.digest() and np.allclose(back.ratio([2, 9]), imp.ratio([2, 9]))
    assert as_importance([1, 2]).n_channels == 2
    with pytest.raises(ValueError, match="does not exist"):
        as_importance(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text('{"format": "other", "importance": [1]}')
    with pytest.raises(ValueError, match="format"):
        as_importance(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="needs channel importance"):
        as_importance(None)
    with pytest.raises(ValueError, match="same layer"):
        ChannelImportance(np.ones(3), loss=loss)
    with pytest.raises(ValueError, match="permutation"):
        imp.weighted_qp([0, 0, 1, 2], make_codec("vvenc").prediction_structure(4))


# ---------------------------------------------------------------------- joint cost and rotations
def test_swap_delta_matches_the_full_cost():
    rng = np.random.default_rng(1)
    n = 36
    D = rng.uniform(0.1, 1, (n, n))
    D = (D + D.T) / 2
    np.fill_diagonal(D, 0)
    s = make_codec("vvenc").prediction_structure(n)
    imp = ChannelImportance(rng.exponential(size=n))
    cost = ImportanceCost(structure_cost_for(D, structure=s), imp.position_table(s), 2.0, reference=np.arange(n))
    assert cost(np.arange(n)) == pytest.approx(3.0)  # both terms relative to the reference: 1 + tradeoff
    order = rng.permutation(n)
    for _ in range(20):
        i, j = sorted(rng.choice(n, 2, replace=False))
        swapped = order.copy()
        swapped[[i, j]] = swapped[[j, i]]
        assert cost.swap_delta(order, i, j) == pytest.approx(cost(swapped) - cost(order))
    with pytest.raises(ValueError, match="tradeoff"):
        ImportanceCost(cost.rate_cost, cost.W, -1.0, reference=np.arange(n))


def test_best_rotation_is_the_best_of_every_shift_and_direction():
    p = np.array([3, 1, 4, 0, 2])
    cands = rotations(p)
    assert cands.shape == (10, 5) and len({tuple(c) for c in cands}) == 10
    assert all(sorted(c) == list(range(5)) for c in cands)
    weights = np.array([5.0, 1.0, 4.0, 2.0, 3.0])
    cost = lambda o: float((weights[o] * np.arange(5)).sum())  # noqa: E731
    rot = best_rotation(p, cost)
    assert rot.cost == min(cost(c) for c in cands)
    expected = (np.roll(p[::-1], -rot.shift) if rot.reversed else np.roll(p, -rot.shift))
    assert np.array_equal(rot.order, expected)


# ---------------------------------------------------------------------- orderers
def test_importance_orderers_move_important_channels_to_low_qp_and_pay_little_rate():
    data = calib()
    C = data[0].shape[0]
    imp = np.full(C, 0.01)
    imp[[5, 17, 23]] = [3.0, 2.0, 1.0]
    s = make_codec("vvenc").prediction_structure(C)
    off = qp_offsets_of(s)
    tsp = make_orderer("tsp-correlation").fit(data)
    a = make_orderer("imptsp-correlation", importance=imp, tradeoff=1.0).fit(data)
    b = make_orderer("impcost-correlation", importance=imp, tradeoff=1.0, time_budget=5).fit(data)
    for o in (a, b):
        assert sorted(o.permutation_.tolist()) == list(range(C))
        assert o.loss_ratio_ < 1.0 and o.weighted_qp_ < o.start_weighted_qp_
    assert a.start_weighted_qp_ == pytest.approx(ChannelImportance(imp).weighted_qp(tsp.permutation_, s))
    # imptsp is a rotation of the TSP path: every neighbour pair but one is kept
    pairs = lambda o: {frozenset(p) for p in zip(o[:-1], o[1:])}  # noqa: E731
    assert len(pairs(a.permutation_) & pairs(tsp.permutation_)) >= C - 2
    assert b.cost_ <= a.cost_ + 1e-12  # the search starts from the rotation and never climbs
    assert off[np.argsort(b.permutation_)[5]] <= 2  # the most important channel sits on an intra or layer-1 frame
    prov = b.to_permutation().provenance
    assert prov["importance_digest"] == ChannelImportance(imp).digest() and prov["orderer"] == "impcost-correlation"


def test_importance_orderers_fail_clearly():
    data = calib(C=12)
    with pytest.raises(ValueError, match="needs channel importance"):
        make_orderer("imptsp-correlation").fit(data)
    with pytest.raises(ValueError, match="importance has 5 channels"):
        make_orderer("imptsp-correlation", importance=np.ones(5)).fit(data)
    with pytest.raises(ValueError, match="tradeoff"):
        make_orderer("impcost-correlation", importance=np.ones(12), tradeoff=-1)


def test_orders_adapt_to_the_structure_they_are_learned_for(tmp_path):
    cfg = tmp_path / "ra.cfg"
    cfg.write_text(VTM9_RA)
    data = calib(C=64)
    imp = np.random.default_rng(3).exponential(size=64) ** 2
    structures = {"vvenc": make_codec("vvenc").prediction_structure(64),
                  f"vtm:cfg={cfg}": from_vtm_cfg(VTM9_RA, 64)}
    orders = {c: make_orderer("imptsp-correlation", importance=imp, codec=c).fit(data) for c in structures}
    D = orders["vvenc"].distance_
    start = solve_path(D).path
    ci = ChannelImportance(imp)
    for own, other in (("vvenc", f"vtm:cfg={cfg}"), (f"vtm:cfg={cfg}", "vvenc")):
        s = structures[own]
        cost = ImportanceCost(structure_cost_for(D, structure=s), ci.position_table(s), 1.0, reference=start)
        assert cost(orders[own].permutation_) <= cost(orders[other].permutation_) + 1e-12
    assert not np.array_equal(orders["vvenc"].permutation_, orders[f"vtm:cfg={cfg}"].permutation_)
