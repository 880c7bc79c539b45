"""reorder.structure_cost: the cost of an order under a prediction structure, its local search, the refcost orderer."""
import json

import numpy as np
import pytest
from sklearn.base import clone

from codec import make_codec
from codec.structure import dyadic, from_vtm_cfg
from reorder import ORDER_NAMES, make_orderer
from reorder.structure_cost import StructureCost, intra_costs, local_search, structure_cost_for
from reorder.tsp import path_cost, solve_path

from test_codec_structure import VTM9_RA


def random_distance(n, seed):
    rng = np.random.default_rng(seed)
    X = np.cumsum(rng.normal(size=(n, 12)), axis=0) + rng.normal(size=(n, 12))
    D = np.clip(1.0 - np.corrcoef(X), 0.0, None)
    np.fill_diagonal(D, 0.0)
    return D


def brute_force(D, structure, intra, order, combine="min", weight="none"):
    total = 0.0
    for p in range(structure.n_frames):
        qpo = structure.qp_offset[p] or 0.0
        w = 2.0 ** (-qpo / 6.0) if weight == "qp" else 1.0
        c = order[p]
        if structure.intra[p]:
            total += w * intra[c]
            continue
        d = [D[c, order[q]] for q in structure.refs[p]]
        total += w * (min(d) if combine == "min" else sum(d) / len(d))
    return total


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("kind", ["vvenc", "vvenc-candidates", "vtm", "dyadic"])
@pytest.mark.parametrize("combine,weight", [("min", "none"), ("mean", "qp")])
def test_cost_equals_brute_force(seed, kind, combine, weight):
    n = [7, 33, 40, 70][seed]
    D = random_distance(n, seed)
    s = {"vvenc": lambda: make_codec("vvenc").prediction_structure(n),
         "vvenc-candidates": lambda: make_codec("vvenc").prediction_structure(n, lists="candidates"),
         "vtm": lambda: from_vtm_cfg(VTM9_RA, n), "dyadic": lambda: dyadic(n, 32)}[kind]()
    intra = np.random.default_rng(seed).uniform(0.5, 1.5, n)
    cost = StructureCost(D, s, intra, combine=combine, weight=weight)
    rng = np.random.default_rng(seed + 10)
    for _ in range(5):
        order = rng.permutation(n)
        assert cost(order) == pytest.approx(brute_force(D, s, intra, order, combine, weight), rel=1e-12)
        i, j = rng.choice(n, 2, replace=False)
        swapped = order.copy()
        swapped[i], swapped[j] = swapped[j], swapped[i]
        assert cost.swap_delta(order, i, j) == pytest.approx(cost(swapped) - cost(order), abs=1e-12)


def test_cost_is_not_the_path_cost_and_intra_positions_matter():
    D = random_distance(40, 1)
    s = make_codec("vvenc").prediction_structure(40)
    cost = StructureCost(D, s, intra_costs(D, "correlation"))
    order = np.arange(40)
    # under VVenC frame 16 is predicted from 0 and 32, not from 15: the costs rank orders differently
    assert cost(order) != pytest.approx(path_cost(D, order))
    big = np.zeros(40)
    big[5] = 100.0
    c2 = StructureCost(1.0 - np.eye(40), s, big)  # every inter frame costs 1: only the intra channels differ
    assert c2(order) == pytest.approx(38.0)
    assert c2(np.roll(order, -5)) == pytest.approx(138.0)  # channel 5 moved onto intra position 0
    assert intra_costs(D, "mse").shape == (40,) and np.all(intra_costs(D, "correlation") == 1.0)


@pytest.mark.parametrize("seed", range(3))
def test_local_search_never_raises_the_cost_and_returns_a_permutation(seed):
    n = 50
    D = random_distance(n, seed)
    cost = structure_cost_for(D, "vvenc")
    start = solve_path(D, seed=seed).path
    res = local_search(cost, start, time_budget=10, seed=seed, max_passes=3)
    assert sorted(res.order.tolist()) == list(range(n))
    assert res.initial_cost == pytest.approx(cost(start))
    assert res.cost == pytest.approx(cost(res.order)) and res.cost <= res.initial_cost + 1e-12
    assert res.moves > 0 and res.cost < res.initial_cost  # a TSP path is not optimal for this cost
    again = local_search(cost, start, time_budget=10, seed=seed, max_passes=3)
    assert np.array_equal(again.order, res.order)  # deterministic given the seed
    with pytest.raises(ValueError, match="permutation"):
        local_search(cost, np.zeros(n, dtype=int))


def calib(n=2, C=40, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.gamma(1.0, 1.0, size=(8, 9))
    return [np.stack([base * rng.uniform(0.5, 2) + rng.gamma(1.0, 0.3, size=(8, 9)) for _ in range(C)]).astype(np.float32)
            for _ in range(n)]


def test_refcost_orderer_through_the_registry_and_clone():
    assert "refcost-correlation" in ORDER_NAMES
    o = make_orderer("refcost-correlation:time_budget=10,seed=1")
    assert o.metric == "correlation" and o.codec == "vvenc" and o.seed == 1
    c = clone(o)
    assert c.get_params() == o.get_params() and c.name == o.name
    data = calib()
    o.fit(data)
    assert sorted(o.permutation_.tolist()) == list(range(40))
    assert o.cost_ <= o.initial_cost_ + 1e-12
    tsp = make_orderer("tsp-correlation").fit(data)
    cost = structure_cost_for(tsp.distance_, "vvenc")
    assert o.initial_cost_ == pytest.approx(cost(tsp.permutation_))  # it starts from the TSP path
    assert o.cost_ == pytest.approx(cost(o.permutation_))
    assert o.tour_cost_ == pytest.approx(path_cost(o.distance_, o.permutation_))
    assert not hasattr(clone(o), "permutation_")
    prov = json.loads(json.dumps(o.to_permutation().provenance, default=str))
    assert prov["cost"] == pytest.approx(o.cost_) and "VVenC" in prov["structure"]


def test_refcost_reads_other_codecs_and_checks_its_options(tmp_path):
    cfg = tmp_path / "ra.cfg"
    cfg.write_text(VTM9_RA)
    o = make_orderer(f"refcost-mse:codec=vtm:cfg={cfg},time_budget=5").fit(calib(C=20))
    assert "VTM cfg" in o.structure_source_ and o.cost_ <= o.initial_cost_ + 1e-12
    for bad in ("refcost-correlation:combine=max", "refcost-correlation:codec=nosuchcodec",
                "refcost-correlation:intra=huge"):
        with pytest.raises(ValueError):
            make_orderer(bad)
