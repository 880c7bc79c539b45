"""Orderer and TSP solver registries: scikit-learn clone/check_is_fitted, and new modules found by name."""

import sys
import textwrap

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import reorder.orderers
import reorder.tsp
from reorder import ORDER_NAMES, ORDERERS, SOLVERS, TSP_SOLVERS, FixedOrder, Permutation, TSPOrder, make_orderer, solve_path
from reorder.tsp import canonical_solver


def calib(n=2, C=6, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.gamma(1.0, 1.0, size=(C, 8, 9)).astype(np.float32) for _ in range(n)]


@pytest.mark.parametrize("key", ORDERERS.names())
def test_clone_every_registered_orderer(key):
    cls = ORDERERS.get(key)
    o = cls()
    c = clone(o)
    assert type(c) is cls and c is not o
    assert c.get_params() == o.get_params()
    assert list(c.get_params()) == ORDERERS.params_of(cls)  # __init__ order, as saved in provenance


@pytest.mark.parametrize("name", ORDER_NAMES + ["tsp-mse:solver=two_opt,seed=3", "fixed:path=order.txt"])
def test_clone_keeps_parameters_and_name_but_not_what_was_learned(name):
    o = make_orderer(name)
    if not name.startswith("fixed"):
        o.fit(calib())
    c = clone(o)
    assert c.get_params() == o.get_params() and c.name == name
    assert not hasattr(c, "permutation_")
    if hasattr(o, "permutation_"):
        assert not any(k.endswith("_") for k in vars(c))


def test_clone_of_fixed_orders_with_a_list_or_a_permutation():
    for src in ([2, 0, 1], Permutation([1, 2, 0])):
        c = clone(FixedOrder(src))
        assert np.array_equal(np.asarray(getattr(c.order_or_path, "order", c.order_or_path)),
                              np.asarray(getattr(src, "order", src)))
        assert c.fit(calib(C=3)).permutation_.tolist() == np.asarray(getattr(src, "order", src)).tolist()


def test_get_params_is_not_expanded_for_a_quantizer_object():
    from codec import make_quantizer

    o = TSPOrder(normalization="quantized", quantizer=make_quantizer("uniform"))
    assert list(o.get_params()) == ORDERERS.params_of(TSPOrder)
    assert list(o.get_params(deep=True)) == list(o.get_params(deep=False))


@pytest.mark.parametrize("use", ["transform", "inverse_transform", "to_permutation", "provenance"])
@pytest.mark.parametrize("key", ORDERERS.names())
def test_unfitted_orderers_raise_sklearn_not_fitted(key, use):
    o = ORDERERS.get(key)()
    args = (np.zeros((6, 2, 2)),) if use.endswith("transform") else ()
    with pytest.raises(NotFittedError, match=f"{type(o).__name__} is not fitted yet; call fit"):
        getattr(o, use)(*args)


NEW_ORDERER = '''
import numpy as np

from reorder.orderers.base import ORDERERS, BaseOrderer


@ORDERERS.register("reverse-test", "backwards-test")
class ReverseTestOrder(BaseOrderer):
    """Channels back to front, rolled by ``shift``."""

    def __init__(self, shift: int = 0):
        self.shift = shift

    def fit(self, calib, y=None):
        n, count = self._scan(calib)
        self._set_order(np.roll(np.arange(n)[::-1], self.shift), n, count)
        return self
'''


def test_an_orderer_in_a_new_module_is_found_by_make_orderer(tmp_path, monkeypatch):
    """A new module in the reorder.orderers package is imported on lookup; no list is edited."""
    (tmp_path / "reverse_test_order.py").write_text(textwrap.dedent(NEW_ORDERER))
    monkeypatch.setattr(reorder.orderers, "__path__", [*reorder.orderers.__path__, str(tmp_path)])
    monkeypatch.setattr(ORDERERS, "_classes", dict(ORDERERS._classes))  # forget the class afterwards
    monkeypatch.setattr(ORDERERS, "_aliases", dict(ORDERERS._aliases))
    monkeypatch.setattr(ORDERERS, "_discovered", False)  # as in a fresh interpreter with the new file present
    try:
        o = make_orderer("reverse-test:shift=1")
        assert type(o).__name__ == "ReverseTestOrder" and o.shift == 1
        assert o.fit(calib(C=5)).permutation_.tolist() == [0, 4, 3, 2, 1]
        assert make_orderer("backwards-test").get_params() == {"shift": 0}
        assert clone(o).get_params() == {"shift": 1}
        assert o.to_permutation().provenance["orderer"] == "reverse-test:shift=1"
        with pytest.raises(ValueError, match="no option 'tilt'"):
            make_orderer("reverse-test:tilt=1")
    finally:
        sys.modules.pop("reorder.orderers.reverse_test_order", None)


NEW_SOLVER = '''
import numpy as np

from reorder.tsp.base import TSP_SOLVERS


@TSP_SOLVERS.register("index_order_test", "identity-path-test")
def index_order_test(D, start, seed, time_budget):
    return np.arange(D.shape[0])
'''


def test_a_solver_in_a_new_module_is_found_by_name(tmp_path, monkeypatch):
    (tmp_path / "index_order_test_solver.py").write_text(textwrap.dedent(NEW_SOLVER))
    monkeypatch.setattr(reorder.tsp, "__path__", [*reorder.tsp.__path__, str(tmp_path)])
    monkeypatch.setattr(TSP_SOLVERS, "_classes", dict(TSP_SOLVERS._classes))
    monkeypatch.setattr(TSP_SOLVERS, "_aliases", dict(TSP_SOLVERS._aliases))
    monkeypatch.setattr(TSP_SOLVERS, "_discovered", False)
    try:
        assert canonical_solver("identity-path-test") == "index_order_test"
        D = np.random.default_rng(0).random((6, 6))
        D = D + D.T
        np.fill_diagonal(D, 0)
        res = solve_path(D, "index_order_test")
        assert res.path.tolist() == list(range(6)) and res.solver == "index_order_test"
        assert make_orderer("tsp-mse:solver=index_order_test").fit(calib()).permutation_.tolist() == list(range(6))
    finally:
        sys.modules.pop("reorder.tsp.index_order_test_solver", None)


def test_solver_names_keep_their_underscores():
    assert SOLVERS[0] == "default" and "two_opt" in SOLVERS and "nearest_neighbour" in SOLVERS
    assert canonical_solver("Two-Opt") == canonical_solver("2opt") == "two_opt"
    with pytest.raises(ValueError, match="unknown TSP solver 'magic'; valid solvers: default, exact"):
        canonical_solver("magic")
