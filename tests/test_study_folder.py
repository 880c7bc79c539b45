"""eval.study_folder: one module knows the output folder; summary paths, saved orders and figures agree."""

import numpy as np
import pytest

from eval.analysis.report import Report
from codec.files import safe_name
from eval.study_folder import OrderFolder, StudyFolder
from reorder import Permutation

ODD = ["identity", "tsp-correlation:normalization=zscore", "file:hand"]


class MeanTask:
    name = "score"

    def aggregate(self, stats):
        return float(np.mean([s["v"] for s in stats]))


def rows(order, factor):
    out = []
    for qp, (bits, psnr) in zip([22, 27, 32, 37], [(4000, 40.0), (2500, 36.0), (1500, 32.0), (800, 28.0)]):
        out.append({"image_id": "a", "order": order, "quantizer": "q", "packing": "temporal", "codec": "c", "qp": qp,
                    "bits": bits * factor, "pixels": 100, "feature_psnr": psnr, "task_stats": {"v": psnr / 2},
                    "status": "ok", "key": f"{order}-{qp}"})
    return out


def test_orders_with_any_name_are_saved_where_the_summary_says_and_read_back(tmp_path):
    folder = StudyFolder(tmp_path / "study")
    rng = np.random.default_rng(0)
    perms = {name: Permutation(rng.permutation(6), {"name": name}) for name in ODD}
    for name, perm in perms.items():
        folder.orders.save(name, perm, distance=np.eye(6) if name != "file:hand" else None)
    recorded = {name: folder.orders.order_path(name) for name in ODD}  # what search_order writes into summary.json
    assert all(p.is_file() for p in recorded.values())
    assert recorded["file:hand"].name.startswith("file_hand-") and recorded["identity"].name == "identity.json"
    back = folder.saved_orders(ODD, n_channels=6)
    assert set(back) == set(ODD)
    for name in ODD:
        np.testing.assert_array_equal(back[name].order, perms[name].order)
    assert set(folder.saved_distances(ODD)) == {"identity", "tsp-correlation:normalization=zscore"}


def test_orders_whose_names_share_a_safe_name_keep_files_of_their_own(tmp_path):
    orders = OrderFolder(tmp_path)
    names = ["tsp-correlation:normalization=zscore", "tsp-correlation:normalization_zscore",
             "tsp-correlation_normalization_zscore"]
    assert len({safe_name(n) for n in names}) == 1
    perms = {n: Permutation(np.roll(np.arange(6), k), {"name": n}) for k, n in enumerate(names)}
    for name, perm in perms.items():
        orders.save(name, perm, distance=np.full((6, 6), len(name), np.float32))
    assert len({orders.order_path(n) for n in names}) == 3 and orders.order_path(names[2]).name == f"{names[2]}.json"
    for name, perm in perms.items():
        np.testing.assert_array_equal(orders.load(name, n_channels=6).order, perm.order)
        assert orders.load_distance(name)[0, 0] == len(name)
    assert orders.sub(names[0]).root != orders.sub(names[1]).root


def test_unusable_saved_order_is_reported_and_skipped(tmp_path):
    orders = OrderFolder(tmp_path)
    orders.save("x:y", Permutation(np.arange(4), {}))
    orders.order_path("x:y").write_text("{ broken")
    with pytest.warns(RuntimeWarning, match="unusable"):
        assert orders.load("x:y", n_channels=4) is None


def test_report_and_figures_from_memory_draw_every_order(tmp_path, monkeypatch):
    """Regression: mosaics.png used to leave out orders whose names hold ':' or '='."""
    import eval.plots.mosaics as mosaics

    drawn = []
    real = mosaics.mosaic_comparison_figure
    monkeypatch.setattr(mosaics, "mosaic_comparison_figure", lambda *a, **k: drawn.append(real(*a, **k)) or drawn[-1])
    all_rows = rows("identity", 1.0) + rows(ODD[1], 0.8) + rows(ODD[2], 1.1)
    report = Report.from_rows(all_rows, MeanTask(), ["a"])
    assert report.bd_rates()[ODD[1]]["feature_psnr"] == pytest.approx(-20.0, abs=1e-6)  # 0.8x the bits everywhere
    assert report.bd_rates()[ODD[2]]["feature_psnr"] == pytest.approx(10.0, abs=1e-6)
    folder = StudyFolder(tmp_path)
    summary = folder.write_report(report, title="t")
    assert folder.read_summary() == summary and set(summary["bd_rate"]) == set(ODD)
    rng = np.random.default_rng(1)
    orders = {name: rng.permutation(8) for name in ODD}
    made = folder.write_figures(report, rng.random((8, 4, 4)).astype(np.float32), "a", orders,
                                {ODD[1]: rng.random((8, 8))})
    assert {"bd_rate", "mosaics", f"similarity-{ODD[1]}"} <= set(made)
    assert made[f"similarity-{ODD[1]}"].name == f"similarity-{safe_name(ODD[1])}.png"
    titles = [ax.get_title() for ax in drawn[0].axes if ax.images]
    assert titles == ["identity (original order)", ODD[1], ODD[2]]


def test_inline_cells_reuse_the_setup_model(monkeypatch):
    """The adapter a study loaded is the one its inline cells use: no second model load."""
    from eval.pipeline import cell_process

    sentinel = object()
    spec = {"name": "mobilenet_v2", "kwargs": {"short_side": 97}}
    cell_process.use_adapter(spec, sentinel)
    monkeypatch.setattr("eval.models.make_model", lambda *a, **k: pytest.fail("model loaded a second time"))
    assert cell_process.loaded_adapter({"kwargs": {"short_side": 97}, "name": "mobilenet_v2"}) is sentinel
