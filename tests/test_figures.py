"""Figures: tiling and permutation helpers, PNG output, tolerant study figures, input checks."""

import json
import logging

import numpy as np
import pytest
from PIL import Image

from eval import figures as F


def features(c=7, h=3, w=4, seed=0):
    return np.random.default_rng(seed).normal(size=(c, h, w)).astype(np.float32)


def read_png(path):
    """Decode the PNG (fails on a truncated or non-PNG file) and return its pixels."""
    with Image.open(path) as im:
        assert im.format == "PNG"
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def assert_real_png(path, min_side=100):
    pixels = read_png(path)
    assert pixels.ndim == 3 and min(pixels.shape[:2]) >= min_side
    assert pixels.var() > 0, f"{path} is blank"
    leftovers = [p.name for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == [], "temporary files left behind"


def minmax(a):
    a = a.astype(np.float64)
    span = a.max() - a.min()
    return (a - a.min()) / span if span > 0 else np.zeros_like(a)


# ---------------------------------------------------------------- mosaic layout


def test_mosaic_tile_k_is_normalised_channel_order_k():
    x = features(c=7, h=3, w=4)
    order = np.array([3, 0, 6, 1, 5, 2, 4])
    sep = 2
    tiled = F.mosaic_array(x, order, cols=3, sep=sep)
    assert tiled.shape == (3 * 3 + 2 * sep, 3 * 4 + 2 * sep)
    for k in range(7):
        r, q = divmod(k, 3)
        tile = tiled[r * (3 + sep) : r * (3 + sep) + 3, q * (4 + sep) : q * (4 + sep) + 4]
        np.testing.assert_allclose(tile, minmax(x[order[k]]))
    # the two unused tiles of the last row and the separators are NaN (drawn blank)
    assert np.isnan(tiled[2 * (3 + sep) :, 1 * (4 + sep) :]).all()
    assert np.isnan(tiled[3 : 3 + sep, :]).all() and np.isnan(tiled[:, 4 : 4 + sep]).all()
    assert np.isfinite(tiled).sum() == 7 * 3 * 4


def test_mosaic_global_normalisation_keeps_relative_magnitudes():
    x = features(c=4, h=2, w=2) + np.arange(4)[:, None, None] * 10
    tiled = F.mosaic_array(x, None, cols=4, normalize="global", sep=0)
    lo, hi = x.min(), x.max()
    for k in range(4):
        np.testing.assert_allclose(tiled[:, 2 * k : 2 * k + 2], (x[k] - lo) / (hi - lo))


def test_percentile_clips_outliers_and_constant_channel_is_zero():
    x = np.zeros((2, 10, 10))
    x[0] = np.arange(100).reshape(10, 10)
    x[0, 0, 0] = 1e6  # one bright outlier
    norm = F.normalize_channels(x, percentile=98.0)
    assert norm.min() == 0.0 and norm.max() == 1.0
    assert norm[0, 0, 0] == 1.0  # outlier clipped, not stretching the scale
    assert 0.4 < norm[0, 5, 0] < 0.6  # the ordinary values still spread over [0, 1]
    np.testing.assert_array_equal(norm[1], 0.0)


@pytest.mark.parametrize("c,h,w", [(144, 16, 16), (256, 200, 272), (12, 2, 8), (1, 5, 5)])
def test_default_grid_is_near_square_in_pixels(c, h, w):
    rows, cols = F.mosaic_grid(c, h, w)
    assert rows * cols >= c and (rows - 1) * cols < c
    aspect = rows * h / (cols * w)
    assert 0.5 <= aspect <= 2.0 or c == 1


# ---------------------------------------------------------------- heat map permutation


def test_permuted_moves_rows_and_columns_together():
    rng = np.random.default_rng(1)
    d = rng.random((6, 6))
    d = d + d.T
    order = rng.permutation(6)
    p = F.permuted(d, order)
    for i in range(6):
        for j in range(6):
            assert p[i, j] == d[order[i], order[j]]
    np.testing.assert_array_equal(F.permuted(p, np.argsort(order)), d)


def test_path_cost_sums_neighbour_distances():
    d = np.array([[0, 1, 5], [1, 0, 2], [5, 2, 0]], dtype=float)
    assert F.path_cost(d, [0, 1, 2]) == 3.0
    assert F.path_cost(d, [1, 0, 2]) == 6.0


def test_similarity_figure_shows_each_order_permuted():
    rng = np.random.default_rng(2)
    d = rng.random((8, 8))
    orders = {"rev": np.arange(8)[::-1], "rand": rng.permutation(8)}
    fig = F.similarity_figure(d, orders)
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(shown) == 3
    np.testing.assert_array_equal(shown[0], d)
    np.testing.assert_array_equal(shown[1], d[::-1, ::-1])
    np.testing.assert_array_equal(shown[2], F.permuted(d, orders["rand"]))


# ---------------------------------------------------------------- PNG output


def test_channel_mosaic_writes_png_and_draws_the_tiled_array(tmp_path):
    x = features(c=10, h=6, w=6)
    order = np.random.default_rng(3).permutation(10)
    out = F.channel_mosaic(x, tmp_path / "m.png", order=order, title="test order")
    assert out == tmp_path / "m.png"
    assert_real_png(out)
    fig = F.mosaic_figure(x, order, percentile=100.0)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array().filled(np.nan), F.mosaic_array(x, order))
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == [str(c) for c in order]  # annotation names the original channel of each tile


def test_mosaic_comparison_puts_identity_first(tmp_path):
    x = features(c=9, h=5, w=5)
    orders = {"tsp": np.arange(9)[::-1], "random": np.random.default_rng(4).permutation(9)}
    assert_real_png(F.mosaic_comparison(x, orders, tmp_path / "cmp.png"))
    fig = F.mosaic_comparison_figure(x, orders)
    titles = [ax.get_title() for ax in fig.axes if ax.images]
    assert titles[0].startswith("identity") and titles[1:] == ["tsp", "random"]
    tiles = [ax.images[0].get_array().filled(np.nan) for ax in fig.axes if ax.images]
    np.testing.assert_array_equal(tiles[1], F.mosaic_array(x, orders["tsp"], percentile=99.5))


def test_similarity_heatmap_writes_png(tmp_path):
    d = np.random.default_rng(5).random((12, 12))
    assert_real_png(F.similarity_heatmap(d, tmp_path / "h.png", orders={"rev": np.arange(12)[::-1]}))


def test_bd_rate_bars_draws_values_and_marks_none_as_na(tmp_path):
    bd = {
        "identity": {"feature_psnr": 0.0, "task": 0.0},
        "tsp": {"feature_psnr": -19.4, "task": None},
        "random": {"feature_psnr": 0.9, "task": float("nan")},
    }
    assert_real_png(F.bd_rate_bars(bd, tmp_path / "bd.png"))
    fig = F.bd_rate_figure(bd)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert sorted(texts) == sorted(["-19.40%", "+0.90%", "n/a", "n/a"])
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths == pytest.approx([-19.4, 0.9])  # no bar for None/NaN, none for the anchor
    assert [t.get_text() for t in ax.get_yticklabels()] == ["tsp", "random"]
    assert "negative" in ax.get_xlabel()


def test_bd_rate_bars_with_only_the_anchor_still_writes_a_figure(tmp_path):
    assert_real_png(F.bd_rate_bars({"identity": {"feature_psnr": 0.0}}, tmp_path / "bd.png"))


def test_tour_cost_table_gap_to_best_per_size():
    results = [
        {"solver": "lkh", "n": 16, "cost": 10.0, "seconds": 0.2},
        {"solver": "nn", "n": 16, "cost": 11.0, "seconds": 0.01},
        {"solver": "lkh", "n": 64, "cost": 21.0, "seconds": 1.0},
        {"solver": "nn", "n": 64, "cost": 20.0, "seconds": 0.02},
        {"solver": "nn", "n": 64, "cost": 22.0, "seconds": 0.04},  # a repeat: averaged
    ]
    table = {(r["solver"], r["n"]): r for r in F.tour_cost_table(results)}
    assert table[("lkh", 16)]["gap_percent"] == 0.0
    assert table[("nn", 16)]["gap_percent"] == pytest.approx(10.0)
    assert table[("nn", 64)]["cost"] == pytest.approx(21.0) and table[("nn", 64)]["repeats"] == 2
    assert table[("nn", 64)]["seconds"] == pytest.approx(0.03)
    assert table[("lkh", 64)]["gap_percent"] == 0.0 and table[("nn", 64)]["gap_percent"] == 0.0


def test_tour_cost_bars_accepts_both_input_forms(tmp_path):
    results = [
        {"solver": "lkh", "n": 16, "cost": 10.0, "seconds": 0.2},
        {"solver": "nn", "n": 16, "cost": 11.0, "seconds": None},
        {"solver": "lkh", "n": 64, "cost": 20.0, "seconds": 1.0},
    ]
    assert_real_png(F.tour_cost_bars(results, tmp_path / "t1.png"))
    assert_real_png(F.tour_cost_bars({"lkh": (10.0, 0.3), "nn": (10.5, 0.01)}, tmp_path / "t2.png"))
    table = F.tour_cost_table({"lkh": (10.0, 0.3), "nn": {"cost": 12.0, "seconds": 0.01}})
    assert {r["solver"]: r["gap_percent"] for r in table} == pytest.approx({"lkh": 0.0, "nn": 20.0})


def test_png_is_replaced_not_appended(tmp_path):
    path = tmp_path / "bd.png"
    path.write_bytes(b"old content that is not a png")
    F.bd_rate_bars({"tsp": {"feature_psnr": -5.0}}, path)
    assert_real_png(path)


# ---------------------------------------------------------------- study folder


def make_study(tmp_path, c=8, order_paths=None):
    (tmp_path / "orders").mkdir(parents=True)
    rng = np.random.default_rng(6)
    for name, order in {"identity": np.arange(c), "tsp-correlation": rng.permutation(c)}.items():
        (tmp_path / "orders" / f"{name}.json").write_text(json.dumps({
            "format": "fcm-channel-order", "version": 1, "n_channels": c, "order": order.tolist(), "provenance": {},
        }))
    summary = {
        "anchor": "identity",
        "bd_rate": {"identity": {"feature_psnr": 0.0, "task": 0.0}, "tsp-correlation": {"feature_psnr": -12.0, "task": None}},
        "curves": [], "test": ["a", "b"], "calibration": ["c"],
        # as written from another working directory: the recorded paths no longer resolve
        "orders": order_paths or {n: f"/elsewhere/orders/{n}.json" for n in ("identity", "tsp-correlation")},
    }
    (tmp_path / "summary.json").write_text(json.dumps(summary))
    return tmp_path


def test_figures_from_study_writes_bd_rate_and_mosaics(tmp_path):
    out = make_study(tmp_path)
    made = F.figures_from_study(out, features=features(c=8, h=4, w=4), image_id="a")
    assert set(made) == {"bd_rate", "mosaics"}
    for name, path in made.items():
        assert path == out / "figures" / f"{name}.png"
        assert_real_png(path)


def test_figures_from_study_skips_missing_pieces_with_a_note(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="eval.figures"):
        assert F.figures_from_study(tmp_path) == {}
    assert "summary.json not found" in caplog.text

    out = make_study(tmp_path / "s")
    (out / "orders" / "bad.json").write_text(json.dumps({"order": [0, 0, 1]}))
    summary = json.loads((out / "summary.json").read_text())
    summary["orders"]["bad"] = str(out / "orders" / "bad.json")
    (out / "summary.json").write_text(json.dumps(summary))
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="eval.figures"):
        made = F.figures_from_study(out, features=features(c=8, h=4, w=4))
    assert set(made) == {"bd_rate", "mosaics"}
    assert "order 'bad' left out" in caplog.text and "has 3 entries" in caplog.text
    with caplog.at_level(logging.INFO, logger="eval.figures"):
        assert set(F.figures_from_study(out)) == {"bd_rate"}
    assert "mosaics.png skipped" in caplog.text


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "order,message",
    [
        ([0, 1, 1, 3], "index 1 appears twice (positions 1 and 2)"),
        ([0, 1, 2], "has 3 entries but the data have 4 channels"),
        ([0, 1, 2, 4], "index 4 at position 3 is outside 0..3"),
        ([0.0, 1.0, 2.0, 3.0], "must be integers"),
        ([[0, 1], [2, 3]], "1-D sequence"),
    ],
)
def test_bad_order_is_refused_with_reason(order, message, tmp_path):
    with pytest.raises(ValueError) as exc:
        F.mosaic_array(features(c=4), order)
    assert message in str(exc.value)
    with pytest.raises(ValueError, match="order 'x'"):
        F.similarity_heatmap(np.zeros((4, 4)), tmp_path / "h.png", orders={"x": order})
    assert not (tmp_path / "h.png").exists()


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda p: F.channel_mosaic(np.zeros((2, 4, 4, 4)), p), r"\[C, H, W\]"),
        (lambda p: F.channel_mosaic(np.full((2, 3, 3), np.nan), p), "NaN/Inf"),
        (lambda p: F.channel_mosaic(features(), p, normalize="zscore"), "normalize must be one of"),
        (lambda p: F.channel_mosaic(features(), p, cols=0), "cols must be a positive integer"),
        (lambda p: F.similarity_heatmap(np.zeros((3, 4)), p), "square"),
        (lambda p: F.bd_rate_bars({"tsp": {"feature_psnr": "-3%"}}, p), r"bd\['tsp'\]\['feature_psnr'\]"),
        (lambda p: F.bd_rate_bars({"tsp": -3.0}, p), "must be a dict"),
        (lambda p: F.tour_cost_bars([{"solver": "lkh", "n": 8, "cost": 0.0}], p), "must be positive"),
        (lambda p: F.tour_cost_bars([{"n": 8, "cost": 1.0}], p), "'solver' and 'cost'"),
        (lambda p: F.tour_cost_bars([], p), "empty"),
    ],
)
def test_bad_input_raises_value_error(call, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        call(tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()
