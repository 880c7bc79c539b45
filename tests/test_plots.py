"""eval.plots: tiling and permutation helpers, PNG output, study_figures, RD and codec-bench plots, input checks."""

import logging
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

import eval.plots as P
from codec import files as files_module
from eval.plots import study_figures as study_module
from reorder import PermutationError, path_cost


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


def panel_titles(fig):
    return [ax.get_title() for ax in fig.axes if ax.images]


# ---------------------------------------------------------------- mosaic layout


def test_mosaic_tile_k_is_normalized_channel_order_k():
    x = features(c=7, h=3, w=4)
    order = np.array([3, 0, 6, 1, 5, 2, 4])
    sep = 2
    tiled = P.mosaic_array(x, order, cols=3, sep=sep)
    assert tiled.shape == (3 * 3 + 2 * sep, 3 * 4 + 2 * sep)
    for k in range(7):
        r, q = divmod(k, 3)
        tile = tiled[r * (3 + sep) : r * (3 + sep) + 3, q * (4 + sep) : q * (4 + sep) + 4]
        np.testing.assert_allclose(tile, minmax(x[order[k]]))
    # the two unused tiles of the last row and the separators are NaN (drawn blank)
    assert np.isnan(tiled[2 * (3 + sep) :, 1 * (4 + sep) :]).all()
    assert np.isnan(tiled[3 : 3 + sep, :]).all() and np.isnan(tiled[:, 4 : 4 + sep]).all()
    assert np.isfinite(tiled).sum() == 7 * 3 * 4


def test_mosaic_global_normalization_keeps_relative_magnitudes():
    x = features(c=4, h=2, w=2) + np.arange(4)[:, None, None] * 10
    tiled = P.mosaic_array(x, None, cols=4, normalize="global", sep=0)
    lo, hi = x.min(), x.max()
    for k in range(4):
        np.testing.assert_allclose(tiled[:, 2 * k : 2 * k + 2], (x[k] - lo) / (hi - lo))


def test_percentile_clips_outliers_and_constant_channel_is_zero():
    x = np.zeros((2, 10, 10))
    x[0] = np.arange(100).reshape(10, 10)
    x[0, 0, 0] = 1e6  # one bright outlier
    norm = P.normalize_channels(x, percentile=98.0)
    assert norm.min() == 0.0 and norm.max() == 1.0
    assert norm[0, 0, 0] == 1.0  # outlier clipped, not stretching the scale
    assert 0.4 < norm[0, 5, 0] < 0.6  # the ordinary values still spread over [0, 1]
    np.testing.assert_array_equal(norm[1], 0.0)


@pytest.mark.parametrize("c,h,w", [(144, 16, 16), (256, 200, 272), (12, 2, 8), (1, 5, 5)])
def test_default_grid_is_near_square_in_pixels(c, h, w):
    rows, cols = P.mosaic_grid(c, h, w)
    assert rows * cols >= c and (rows - 1) * cols < c
    aspect = rows * h / (cols * w)
    assert 0.5 <= aspect <= 2.0 or c == 1


# ---------------------------------------------------------------- heat map permutation


def test_permuted_moves_rows_and_columns_together():
    rng = np.random.default_rng(1)
    d = rng.random((6, 6))
    d = d + d.T
    order = rng.permutation(6)
    p = P.permuted(d, order)
    for i in range(6):
        for j in range(6):
            assert p[i, j] == d[order[i], order[j]]
    np.testing.assert_array_equal(P.permuted(p, np.argsort(order)), d)


def test_reorder_path_cost_is_the_open_path_neighbour_sum():
    """The heat map titles use reorder.path_cost: sum of D[o[i], o[i+1]], no closing edge."""
    d = np.array([[0, 1, 5], [1, 0, 2], [5, 2, 0]], dtype=float)
    assert path_cost(d, [0, 1, 2]) == 3.0
    assert path_cost(d, [1, 0, 2]) == 6.0
    rng = np.random.default_rng(7)
    d = rng.random((9, 9))
    o = rng.permutation(9)
    assert path_cost(d, o) == pytest.approx(sum(d[o[i], o[i + 1]] for i in range(8)))


def test_similarity_figure_shows_each_order_permuted():
    rng = np.random.default_rng(2)
    d = rng.random((8, 8))
    orders = {"rev": np.arange(8)[::-1], "rand": rng.permutation(8)}
    fig = P.similarity_figure(d, orders)
    shown = [ax.images[0].get_array() for ax in fig.axes if ax.images]
    assert len(shown) == 3
    np.testing.assert_array_equal(shown[0], d)
    np.testing.assert_array_equal(shown[1], d[::-1, ::-1])
    np.testing.assert_array_equal(shown[2], P.permuted(d, orders["rand"]))
    titles = panel_titles(fig)
    assert f"{path_cost(d, orders['rand']):.4g}" in titles[2]


# ---------------------------------------------------------------- PNG output


def test_channel_mosaic_writes_png_and_draws_the_tiled_array(tmp_path):
    x = features(c=10, h=6, w=6)
    order = np.random.default_rng(3).permutation(10)
    out = P.channel_mosaic(x, tmp_path / "m.png", order=order, title="test order")
    assert out == tmp_path / "m.png"
    assert_real_png(out)
    fig = P.mosaic_figure(x, order, percentile=100.0)
    np.testing.assert_array_equal(fig.axes[0].images[0].get_array().filled(np.nan), P.mosaic_array(x, order))
    labels = [t.get_text() for t in fig.axes[0].texts]
    assert labels == [str(c) for c in order]  # annotation names the original channel of each tile


def test_mosaic_comparison_puts_identity_first(tmp_path):
    x = features(c=9, h=5, w=5)
    orders = {"tsp": np.arange(9)[::-1], "random": np.random.default_rng(4).permutation(9)}
    assert_real_png(P.mosaic_comparison(x, orders, tmp_path / "cmp.png"))
    fig = P.mosaic_comparison_figure(x, orders)
    titles = panel_titles(fig)
    assert titles[0].startswith("identity") and titles[1:] == ["tsp", "random"]
    tiles = [ax.images[0].get_array().filled(np.nan) for ax in fig.axes if ax.images]
    np.testing.assert_array_equal(tiles[1], P.mosaic_array(x, orders["tsp"], percentile=99.5))


def test_similarity_heatmap_writes_png(tmp_path):
    d = np.random.default_rng(5).random((12, 12))
    assert_real_png(P.similarity_heatmap(d, tmp_path / "h.png", orders={"rev": np.arange(12)[::-1]}))


def test_bd_rate_bars_draws_values_and_marks_none_as_na(tmp_path):
    bd = {
        "identity": {"feature_psnr": 0.0, "task": 0.0},
        "tsp": {"feature_psnr": -19.4, "task": None},
        "random": {"feature_psnr": 0.9, "task": float("nan")},
    }
    assert_real_png(P.bd_rate_bars(bd, tmp_path / "bd.png"))
    fig = P.bd_rate_figure(bd)
    ax = fig.axes[0]
    texts = [t.get_text() for t in ax.texts]
    assert sorted(texts) == sorted(["-19.40%", "+0.90%", "n/a", "n/a"])
    widths = sorted(p.get_width() for p in ax.patches)
    assert widths == pytest.approx([-19.4, 0.9])  # no bar for None/NaN, none for the anchor
    assert [t.get_text() for t in ax.get_yticklabels()] == ["tsp", "random"]
    assert "negative" in ax.get_xlabel()


def test_bd_rate_bars_draw_intervals_as_error_bars(tmp_path):
    """A summary's bd_rate with "METRIC_ci" intervals: one error bar per interval, the interval in the label."""
    bd = {
        "identity": {"feature_psnr": 0.0, "feature_psnr_ci": [0.0, 0.0], "task": 0.0, "task_ci": [0.0, 0.0]},
        "tsp": {"feature_psnr": -11.33, "feature_psnr_ci": [-12.1, -10.5], "task": -29.2, "task_ci": [-34.8, -18.7]},
        "random": {"feature_psnr": -0.28, "feature_psnr_ci": [-1.1, 0.6], "task": None, "task_ci": None},
    }
    assert_real_png(P.bd_rate_bars(bd, tmp_path / "bd.png"))
    ax = P.bd_rate_figure(bd).axes[0]
    texts = sorted(t.get_text() for t in ax.texts)
    assert texts == sorted(["-11.33% [-12.1, -10.5]", "-29.20% [-34.8, -18.7]", "-0.28% [-1.1, +0.6]", "n/a"])
    assert sorted(p.get_width() for p in ax.patches) == pytest.approx([-29.2, -11.33, -0.28])  # "_ci" keys are no bars
    segments = [seg for coll in ax.collections for seg in coll.get_segments()]
    spans = sorted(tuple(sorted((round(a[0], 6), round(b[0], 6)))) for a, b in segments if a[1] == b[1])
    assert spans == sorted([(-12.1, -10.5), (-34.8, -18.7), (-1.1, 0.6)])
    lo, hi = ax.get_xlim()
    assert lo < -34.8 and hi > 0.6  # the whole interval is on the chart


def test_bd_rate_bars_refuse_a_malformed_interval(tmp_path):
    with pytest.raises(ValueError, match=r"bd\['tsp'\]\['task_ci'\]"):
        P.bd_rate_bars({"tsp": {"task": -3.0, "task_ci": [-1.0]}}, tmp_path / "x.png")
    with pytest.raises(ValueError, match="low end is above"):
        P.bd_rate_bars({"tsp": {"task": -3.0, "task_ci": [2.0, -1.0]}}, tmp_path / "x.png")


def test_bd_rate_bars_with_only_the_anchor_still_writes_a_figure(tmp_path):
    assert_real_png(P.bd_rate_bars({"identity": {"feature_psnr": 0.0}}, tmp_path / "bd.png"))


def test_tour_cost_table_gap_to_best_per_size():
    results = [
        {"solver": "lkh", "n": 16, "cost": 10.0, "seconds": 0.2},
        {"solver": "nn", "n": 16, "cost": 11.0, "seconds": 0.01},
        {"solver": "lkh", "n": 64, "cost": 21.0, "seconds": 1.0},
        {"solver": "nn", "n": 64, "cost": 20.0, "seconds": 0.02},
        {"solver": "nn", "n": 64, "cost": 22.0, "seconds": 0.04},  # a repeat: averaged
    ]
    table = {(r["solver"], r["n"]): r for r in P.tour_cost_table(results)}
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
    assert_real_png(P.tour_cost_bars(results, tmp_path / "t1.png"))
    assert_real_png(P.tour_cost_bars({"lkh": (10.0, 0.3), "nn": (10.5, 0.01)}, tmp_path / "t2.png"))
    table = P.tour_cost_table({"lkh": (10.0, 0.3), "nn": {"cost": 12.0, "seconds": 0.01}})
    assert {r["solver"]: r["gap_percent"] for r in table} == pytest.approx({"lkh": 0.0, "nn": 20.0})


def test_png_is_replaced_not_appended(tmp_path):
    path = tmp_path / "bd.png"
    path.write_bytes(b"old content that is not a png")
    P.bd_rate_bars({"tsp": {"feature_psnr": -5.0}}, path)
    assert_real_png(path)


def test_drawing_leaves_the_pyplot_backend_alone(tmp_path):
    import matplotlib

    before = matplotlib.get_backend()
    P.bd_rate_bars({"tsp": {"feature_psnr": -5.0}}, tmp_path / "bd.png")
    P.plot_rd_curves([rd_curve("identity", [30, 32])], tmp_path / "rd.png")
    assert matplotlib.get_backend() == before


# ---------------------------------------------------------------- RD curves and codec benchmark


def rd_curve(order, psnr, task=()):
    """An object shaped like eval.analysis.curves.Curve."""
    return SimpleNamespace(setup={"order": order}, qp=[37, 32][: len(psnr)], bpp=[0.1, 0.2][: len(psnr)],
                           feature_psnr=list(psnr), task=list(task), label=order)


def test_rd_curves_one_line_per_order_anchor_black_task_panel_when_present(tmp_path):
    curves = [rd_curve("identity", [30.0, 33.0], [0.5, 0.6]), rd_curve("tsp-correlation:normalization=zscore", [31.0, 34.0])]
    fig = P.rd_curves_figure(curves, anchor="identity", task_label="mAP")
    psnr_ax, task_ax = fig.axes
    labels = [line.get_label() for line in psnr_ax.lines]
    assert labels == ["identity (anchor)", "tsp-correlation:normalization=zscore"]
    assert psnr_ax.lines[0].get_color() == "black"
    assert [t.get_text() for t in psnr_ax.texts] == ["QP37", "QP32"]
    assert [line.get_label() for line in task_ax.lines] == ["identity (anchor)"] and task_ax.get_ylabel() == "mAP"
    out = P.plot_rd_curves(curves, tmp_path / "rd.png", "identity", "mAP", "title")
    assert out == tmp_path / "rd.png"
    assert_real_png(out)
    assert len(P.rd_curves_figure([rd_curve("identity", [30.0, 33.0])]).axes) == 1  # no task scores: one panel


def bench_row(config, cpu, bd, gain, packing="temporal", status="ok"):
    return {"config": config, "packing": packing, "status": status, "enc_cpu_s": cpu,
            "bd_ref_feature_psnr": bd, "gain": {"tsp-correlation": {"feature_psnr": gain}} if gain is not None else {}}


def test_bd_cpu_scatter_plots_finished_configs_and_lists_failures(tmp_path):
    table = [
        bench_row("vtm", 40.0, 0.0, -12.0),
        bench_row("vvenc:fast", 4.0, 3.5, -10.0),
        bench_row("x265", 0.5, 20.0, None, packing="tiled"),
        bench_row("broken", None, None, None, status="failed: encoder crashed"),
    ]
    fig = P.bd_cpu_figure(table, reference="vtm")
    bd_ax, gain_ax = fig.axes[:2]
    assert len(bd_ax.collections) == 3 and len(gain_ax.collections) == 2
    assert [t.get_text() for t in bd_ax.texts] == ["vtm (ref)", "vvenc:fast", "x265 @tiled"]
    assert "broken" in fig.get_supxlabel() and "encoder crashed" in fig.get_supxlabel()
    out = P.bd_cpu_scatter(table, tmp_path / "bench.png", "vtm")
    assert out == tmp_path / "bench.png"
    assert_real_png(out)


# ---------------------------------------------------------------- study_figures

ODD_NAMES = ["identity", "tsp-correlation:normalization=zscore", "file:hand"]


def study_inputs(c=8):
    rng = np.random.default_rng(6)
    orders = {"identity": np.arange(c), "tsp-correlation:normalization=zscore": rng.permutation(c),
              "file:hand": np.arange(c)[::-1].copy()}
    bd = {"identity": {"feature_psnr": 0.0, "task": 0.0},
          "tsp-correlation:normalization=zscore": {"feature_psnr": -12.0, "task": None},
          "file:hand": {"feature_psnr": 3.0, "task": 1.0}}
    d = rng.random((c, c))
    return orders, bd, {"tsp-correlation:normalization=zscore": d + d.T}


def test_mosaic_panels_for_order_names_with_any_characters():
    orders, _, _ = study_inputs()
    fig = P.mosaic_comparison_figure(features(c=8, h=4, w=4), orders)
    assert panel_titles(fig) == ["identity (original order)", "tsp-correlation:normalization=zscore", "file:hand"]


def test_study_figures_draws_a_mosaic_panel_for_every_order(tmp_path, monkeypatch):
    """Regression: orders named like 'tsp-correlation:normalization=zscore' or 'file:hand' each get a panel."""
    drawn = []
    real = P.mosaic_comparison_figure

    def spy(*args, **kwargs):
        fig = real(*args, **kwargs)
        drawn.append(fig)
        return fig

    monkeypatch.setattr("eval.plots.mosaics.mosaic_comparison_figure", spy)
    orders, bd, distances = study_inputs()
    made = study_module.study_figures(tmp_path, bd_table=bd, features=features(c=8, h=4, w=4), image_id="img-1",
                           orders=orders, distances=distances)
    assert set(made) == {"bd_rate", "mosaics", "similarity-tsp-correlation:normalization=zscore"}
    assert made["bd_rate"] == tmp_path / "figures" / "bd_rate.png"
    assert made["mosaics"] == tmp_path / "figures" / "mosaics.png"
    assert made["similarity-tsp-correlation:normalization=zscore"] == (
        tmp_path / "figures" / "similarity-tsp-correlation_normalization_zscore.png")
    for path in made.values():
        assert_real_png(path)
    assert len(drawn) == 1
    assert panel_titles(drawn[0]) == ["identity (original order)", "tsp-correlation:normalization=zscore", "file:hand"]
    tiles = [ax.images[0].get_array().filled(np.nan) for ax in drawn[0].axes if ax.images]
    np.testing.assert_array_equal(tiles[2], P.mosaic_array(features(c=8, h=4, w=4), orders["file:hand"], percentile=99.5))
    assert "img-1" in drawn[0].get_suptitle()


def test_study_figures_skips_what_cannot_be_drawn_with_a_note(tmp_path, caplog):
    orders, bd, distances = study_inputs()
    with caplog.at_level(logging.INFO, logger=study_module.__name__):
        assert study_module.study_figures(tmp_path / "empty", bd_table=None, features=None, image_id=None, orders={}) == {}
    assert "bd_rate.png skipped" in caplog.text and "mosaics.png skipped" in caplog.text

    caplog.clear()
    bad = {**orders, "bad": [0, 0, 1]}
    dists = {**distances, "file:hand": np.zeros((3, 4)), "other": np.zeros((5, 5))}
    with caplog.at_level(logging.INFO, logger=study_module.__name__):
        made = study_module.study_figures(tmp_path / "s", bd_table={"tsp": {"feature_psnr": "oops"}}, features=features(c=8, h=4, w=4),
                               image_id="a", orders=bad, distances=dists)
    assert set(made) == {"mosaics", "similarity-tsp-correlation:normalization=zscore"}
    assert "bd_rate.png skipped" in caplog.text
    assert "order 'bad' left out" in caplog.text and "has 3 entries" in caplog.text
    assert "similarity heat map for 'file:hand' skipped" in caplog.text and "square" in caplog.text
    assert "similarity heat map for 'other' skipped" in caplog.text  # identity of 8 channels vs a 5x5 matrix

    caplog.clear()
    with caplog.at_level(logging.INFO, logger=study_module.__name__):
        made = study_module.study_figures(tmp_path / "t", bd_table=bd, features=np.zeros((8, 4)), image_id=None, orders=orders)
    assert set(made) == {"bd_rate"} and "mosaics.png skipped" in caplog.text


def test_study_figures_distinct_files_for_names_that_look_alike(tmp_path):
    d = np.random.default_rng(8).random((4, 4))
    made = study_module.study_figures(tmp_path, bd_table=None, features=None, image_id=None, orders={},
                           distances={"a:b": d, "a_b": d, "x/../y": d})
    assert sorted(p.name for p in made.values()) == ["similarity-a_b-2.png", "similarity-a_b.png", "similarity-x_.._y.png"]
    assert all(p.parent == tmp_path / "figures" for p in made.values())


def test_safe_name_matches_the_order_file_rule():
    assert files_module.safe_name("tsp-correlation:normalization=zscore") == "tsp-correlation_normalization_zscore"
    assert files_module.safe_name("file:hand") == "file_hand"


def test_dollar_in_an_order_name_is_drawn_verbatim(tmp_path):
    orders = {"cost$5$": np.arange(4)[::-1]}
    assert_real_png(P.mosaic_comparison(features(c=4, h=4, w=4), orders, tmp_path / "m.png"))
    fig = P.mosaic_comparison_figure(features(c=4, h=4, w=4), orders)
    assert panel_titles(fig)[1] == r"cost\$5\$"


# ---------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "order,message",
    [
        ([0, 1, 1, 3], "index 1 appears 2 times (positions 1 and 2)"),
        ([0, 1, 2], "has 3 entries but the features have 4 channels"),
        ([0, 1, 2, 4], "index 4 at position 3 is out of range"),
        ([0.5, 1, 2, 3], "not an integer channel index"),
        ([[0, 1], [2, 3]], "flat list"),
    ],
)
def test_bad_order_is_refused_with_reason(order, message, tmp_path):
    with pytest.raises(PermutationError) as exc:
        P.mosaic_array(features(c=4), order)
    assert message in str(exc.value)
    with pytest.raises(ValueError, match="order 'x'"):
        P.similarity_heatmap(np.zeros((4, 4)), tmp_path / "h.png", orders={"x": order})
    assert not (tmp_path / "h.png").exists()


@pytest.mark.parametrize(
    "call,message",
    [
        (lambda p: P.channel_mosaic(np.zeros((2, 4, 4, 4)), p), r"\[C, H, W\]"),
        (lambda p: P.channel_mosaic(np.full((2, 3, 3), np.nan), p), "NaN/Inf"),
        (lambda p: P.channel_mosaic(features(), p, normalize="zscore"), "normalize must be one of"),
        (lambda p: P.channel_mosaic(features(), p, cols=0), "cols must be a positive integer"),
        (lambda p: P.similarity_heatmap(np.zeros((3, 4)), p), "square"),
        (lambda p: P.bd_rate_bars({"tsp": {"feature_psnr": "-3%"}}, p), r"bd\['tsp'\]\['feature_psnr'\]"),
        (lambda p: P.bd_rate_bars({"tsp": -3.0}, p), "must be a dict"),
        (lambda p: P.tour_cost_bars([{"solver": "lkh", "n": 8, "cost": 0.0}], p), "must be positive"),
        (lambda p: P.tour_cost_bars([{"n": 8, "cost": 1.0}], p), "'solver' and 'cost'"),
        (lambda p: P.tour_cost_bars([], p), "empty"),
    ],
)
def test_bad_input_raises_value_error(call, message, tmp_path):
    with pytest.raises(ValueError, match=message):
        call(tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_nothing_in_eval_plots_reads_files():
    """Plots take in-memory data only: no module reads JSON, .npy or order files."""
    import inspect

    import eval.plots.bars, eval.plots.codec_bench, eval.plots.heatmaps, eval.plots.mosaics, eval.plots.rd  # noqa: E401
    for mod in (eval.plots.bars, eval.plots.codec_bench, eval.plots.heatmaps, eval.plots.mosaics, eval.plots.rd,
                eval.plots._png, eval.plots._checks):
        src = inspect.getsource(mod)
        for reader in ("json.load", "np.load", "read_text", "read_bytes", "Permutation.load", "open("):
            assert reader not in src, f"{mod.__name__} uses {reader}"
