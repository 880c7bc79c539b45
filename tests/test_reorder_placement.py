"""Placement of channels in tiled mosaics: the grid, the snake, the 4-neighbour / same-position objective, its
local search, and the snake / grid / mosaic orderers (their grid equals the packing's)."""
import numpy as np
import pytest

from codec import TiledPacking
from reorder import make_orderer
from reorder.placement import (PlacementCost, chains_start, grid_cost_summary, improve_placement, mosaic_grid,
                               placement_graph, snake, snake_positions)
from reorder.tsp import path_cost


def tile_of(order, cols, per_frame=None):
    """channel -> (mosaic, row, col) under row-major tiling of ``order``."""
    n = len(order)
    k = per_frame or n
    out = {}
    for pos, ch in enumerate(order):
        f, t = divmod(pos, k)
        out[int(ch)] = (f, *divmod(t, cols))
    return out


def lattice_distance(rows, cols):
    """Channels that are points of a rows x cols lattice: the best placement puts lattice neighbours side by side."""
    pts = np.array([divmod(i, cols) for i in range(rows * cols)])
    return np.abs(pts[:, None, :] - pts[None, :, :]).sum(-1).astype(float)


def calib_features(c=36, n=3, seed=0):
    rng = np.random.default_rng(seed)
    mix = rng.normal(size=(c, 4))
    out = []
    for _ in range(n):
        basis = rng.normal(size=(4, 10, 12))
        out.append((np.tensordot(mix, basis, 1) + 0.3 * rng.normal(size=(c, 10, 12))).astype(np.float32))
    return out


@pytest.mark.parametrize("n,cols,per_frame", [(12, 4, None), (36, 6, None), (144, 12, None), (24, 4, 8), (30, 3, 9), (10, 4, None),
                                             (14, 4, None), (22, 4, 14)])
def test_snake_keeps_path_neighbours_tile_neighbours(n, cols, per_frame):
    path = np.random.default_rng(n).permutation(n)
    order = snake(path, cols, per_frame)
    assert sorted(order.tolist()) == list(range(n))
    where = tile_of(order, cols, per_frame)
    k = per_frame or n
    for s in range(n - 1):
        if (s + 1) % k == 0:
            continue  # the path moves on to the next mosaic
        (f0, r0, c0), (f1, r1, c1) = where[path[s]], where[path[s + 1]]
        size = min(k, n - f1 * k)
        if size % cols and r1 == (size - 1) // cols and r1 % 2 == 1 and r0 != r1:
            continue  # entering a partial, leftward last row: its right end, next to the row above's, does not exist
        assert f0 == f1 and abs(r0 - r1) + abs(c0 - c1) == 1, (s, where[path[s]], where[path[s + 1]])


def test_snake_is_what_the_packing_shows():
    path = np.array([5, 2, 7, 0, 1, 6, 3, 4])
    order = snake(path, 4)
    np.testing.assert_array_equal(order, [5, 2, 7, 0, 4, 3, 6, 1])  # second row runs right to left
    codes = np.arange(8, dtype=np.uint16)[:, None, None] * np.ones((1, 2, 3), np.uint16)
    frame = TiledPacking(cols=4).pack(codes[order], 1)[0]
    shown = frame[::2, ::3]  # one sample per tile: the channel index
    np.testing.assert_array_equal(shown.ravel()[[0, 1, 2, 3, 7, 6, 5, 4]], path)
    np.testing.assert_array_equal(snake_positions(10, 4), [0, 1, 2, 3, 7, 6, 5, 4, 8, 9])
    np.testing.assert_array_equal(snake_positions(7, 3), [0, 1, 2, 5, 4, 3, 6])


def test_grid_is_the_packings():
    assert mosaic_grid(144) == (12, 12) and mosaic_grid(144, per_frame=16) == (4, 4)
    assert mosaic_grid(24) == (6, 4) and mosaic_grid(10, cols=4) == (3, 4) and mosaic_grid(3, cols=8) == (1, 3)
    for n, cols, per_frame in ((144, None, None), (144, None, 36), (50, 7, None), (50, 4, 9)):
        rows, c = mosaic_grid(n, cols, per_frame)
        p = TiledPacking(cols=cols, per_frame=per_frame) if cols else TiledPacking(grid="mpeg", per_frame=per_frame)
        assert p.layout((n, 8, 12))[1:] == (rows, c)
    with pytest.raises(ValueError, match="cols=0"):
        mosaic_grid(12, cols=0)


def test_placement_graph_edges():
    W = placement_graph(6, 3)
    assert W.sum() / 2 == 7 and W[0, 1] == W[0, 3] == 1 and W[2, 3] == 0  # no wrap-around at row ends
    Wt = placement_graph(8, 2, per_frame=4, spatial=0.5, temporal=2.0)
    assert Wt[0, 4] == Wt[3, 7] == 2.0 and Wt[0, 1] == 0.5 and Wt[1, 4] == 0 and Wt[3, 4] == 0
    assert placement_graph(10, 4, per_frame=6)[4, 8] == 0  # the last mosaic has no tile 4


def test_swap_deltas_and_table_updates_are_exact():
    rng = np.random.default_rng(3)
    X = rng.random((20, 20))
    D = X + X.T
    np.fill_diagonal(D, 0)
    cost = PlacementCost(D, placement_graph(20, 5, per_frame=10, spatial=1.0, temporal=0.7))
    order = rng.permutation(20)
    A = cost.table(order)
    for p in (0, 7, 13):
        d = cost.swap_deltas(order, A, p)
        for j in range(20):
            trial = order.copy()
            trial[p], trial[j] = trial[j], trial[p]
            assert d[j] == pytest.approx(cost(trial) - cost(order), abs=1e-9)
        cost.swap(order, A, p, (p + 6) % 20)
        np.testing.assert_allclose(A, cost.table(order))


def test_local_search_finds_the_lattice_and_never_gets_worse():
    D = lattice_distance(4, 5)
    cost = PlacementCost(D, placement_graph(20, 5))
    start = np.random.default_rng(1).permutation(20)
    res = improve_placement(cost, start, kicks=60, seed=0)
    assert res.cost == pytest.approx(31.0)  # every one of the 31 tile borders between lattice neighbours
    assert res.initial_cost == pytest.approx(cost(start)) and res.cost <= res.initial_cost
    again = improve_placement(cost, start, kicks=60, seed=0)
    np.testing.assert_array_equal(again.order, res.order)  # deterministic for a seed
    none = improve_placement(cost, start, kicks=0, seed=0)
    assert res.cost <= none.cost <= none.initial_cost
    with pytest.raises(ValueError, match="placement start: .*20"):
        improve_placement(cost, [0, 0, 1], kicks=0)


def test_chains_run_through_the_mosaics():
    path = np.arange(12)
    order = chains_start(path, cols=2, per_frame=4)
    np.testing.assert_array_equal(order, [0, 3, 9, 6, 1, 4, 10, 7, 2, 5, 11, 8])
    # the tile at each position shows consecutive path channels from mosaic to mosaic
    for g in range(4):
        chain = order[g::4]
        assert np.all(np.diff(chain) == 1)
    uneven = chains_start(np.arange(10), cols=2, per_frame=4)  # last mosaic: 2 tiles
    assert sorted(uneven.tolist()) == list(range(10))


def test_orderers_place_similar_channels_side_by_side():
    calib = calib_features()
    tsp = make_orderer("tsp-correlation").fit(calib)
    sn = make_orderer("snake-correlation").fit(calib)
    gr = make_orderer("grid-correlation:kicks=40").fit(calib)
    assert sn.grid_ == gr.grid_ == (6, 6)
    D = sn.distance_
    np.testing.assert_array_equal(sn.permutation_, snake(sn.path_, 6))
    assert path_cost(D, sn.path_) == pytest.approx(tsp.tour_cost_)  # the same path, laid out as a snake
    row_major = grid_cost_summary(D, tsp.permutation_)["neighbour_cost"]
    ident = grid_cost_summary(D, np.arange(36))["neighbour_cost"]
    assert gr.neighbour_cost_ <= gr.start_neighbour_cost_ == pytest.approx(sn.neighbour_cost_)
    assert gr.neighbour_cost_ < sn.neighbour_cost_ <= row_major < ident
    prov = gr.to_permutation().provenance
    assert prov["grid"] == [6, 6] and prov["neighbour_cost"] == pytest.approx(gr.neighbour_cost_)
    assert make_orderer("grid-correlation:cols=4").fit(calib).grid_ == (9, 4)


def test_mosaic_orderer_aligns_tiles_across_mosaics():
    calib = calib_features()
    mo = make_orderer("mosaic-correlation:per_frame=9,kicks=30").fit(calib)
    assert mo.grid_ == (3, 3)
    D = mo.distance_
    summary = grid_cost_summary(D, mo.permutation_, None, 9)
    assert summary["temporal_cost"] == pytest.approx(mo.temporal_cost_)
    assert mo.cost_ == pytest.approx(mo.temporal * summary["temporal_cost"] + mo.spatial * summary["neighbour_cost"])
    tsp_rows = make_orderer("tsp-correlation").fit(calib).permutation_  # the path row-major through the mosaics
    assert mo.temporal_cost_ < grid_cost_summary(D, tsp_rows, None, 9)["temporal_cost"]
    with pytest.raises(ValueError, match="give per_frame"):
        make_orderer("mosaic-correlation")
    with pytest.raises(ValueError, match="spatial=-1"):
        make_orderer("mosaic-correlation:per_frame=9,spatial=-1")
    with pytest.raises(ValueError, match="kicks=-2"):
        make_orderer("grid-correlation:kicks=-2")
    with pytest.raises(ValueError, match="cols=0"):
        make_orderer("snake-correlation:cols=0")
