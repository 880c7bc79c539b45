"""The hand-made order shipped for the default model, and the mosaics a user makes such an order from."""

import numpy as np
from PIL import Image

from eval.models.mobilenet import BUNDLED_ORDERS, MobileNetV2Adapter
from reorder import Permutation
from reorder.grouping import order_from_groups, read_groups


def bundled():
    path = BUNDLED_ORDERS["subjective"]
    return path, path.with_name("mobilenet_v2-subjective.groups.txt")


def test_subjective_order_is_the_order_of_its_groups_file():
    order_path, groups_path = bundled()
    perm = Permutation.load(order_path, n_channels=MobileNetV2Adapter.n_channels)
    groups = read_groups(groups_path)
    assert len(groups) == 6 and sum(map(len, groups)) == 144  # every channel grouped by hand, none appended
    np.testing.assert_array_equal(perm.order, order_from_groups(groups, 144, rest="error"))
    assert perm.provenance["kind"] == "subjective-grouping" and perm.provenance["n_unassigned"] == 0
    # provenance says what was looked at, in the groups file itself
    text = groups_path.read_text()
    assert "camera" in text and "studies.make_order" in text


def test_subjective_order_is_not_a_learned_similarity_order():
    """Made by eye: it keeps groups in index order, unlike a TSP path, and is far from identity."""
    perm = Permutation.load(bundled()[0], n_channels=144)
    assert not np.array_equal(perm.order, np.arange(144))
    moved = np.mean(perm.order != np.arange(144))
    assert moved > 0.9


def test_channel_mosaics_draws_every_channel_labelled(tmp_path):
    from studies import channel_mosaics

    out = tmp_path / "m"
    rc = channel_mosaics.main(["--image", "camera", "--out", str(out), "--per-sheet", "72",
                               "--model-arg", "short_side=96", "--cache-dir", str(tmp_path / "cache")])
    assert rc == 0
    names = sorted(p.name for p in out.glob("*.png"))
    assert names == ["camera-sheet1.png", "camera-sheet2.png", "camera.png"]
    for name in names:
        with Image.open(out / name) as im:
            assert im.size[0] > 500 and im.size[1] > 500
