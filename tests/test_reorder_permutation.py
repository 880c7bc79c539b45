"""Permutation: validation, application, and order files (JSON, bare list, text) with clear errors."""

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reorder.permutation import Permutation, PermutationError, validate_order


def perms(max_n=40):
    return st.integers(1, max_n).flatmap(lambda n: st.permutations(list(range(n))))


@settings(max_examples=40, deadline=None)
@given(order=perms(), fmt=st.sampled_from(["package", "list", "text"]))
def test_every_file_format_round_trips(tmp_path_factory, order, fmt):
    path = tmp_path_factory.mktemp("p") / "order.txt"
    if fmt == "package":
        Permutation(order, {"metric": "correlation"}).save(path)
    elif fmt == "list":
        path.write_text(json.dumps(order))
    else:
        path.write_text("\n".join(", ".join(str(v) for v in order[i:i + 7]) for i in range(0, len(order), 7)))
    loaded = Permutation.load(path, n_channels=len(order))
    assert loaded.order.tolist() == list(order)
    assert loaded.order.dtype == np.int64


@settings(max_examples=30, deadline=None)
@given(order=perms(24), batch=st.integers(0, 2))
def test_apply_then_invert_is_identity(order, batch):
    p = Permutation(order)
    shape = (2,) * batch + (len(order), 3, 4)
    x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
    y = p.apply(x)
    assert np.array_equal(y[..., 0, :, :], x[..., order[0], :, :])
    assert np.array_equal(p.invert(y), x)
    assert np.array_equal(y[..., p.inverse(), :, :], x)


def test_torch_tensors_are_permuted_on_their_device():
    p = Permutation([2, 0, 1])
    x = torch.arange(3 * 2 * 2, dtype=torch.float32).reshape(1, 3, 2, 2)
    y = p.apply(x)
    assert isinstance(y, torch.Tensor)
    assert torch.equal(y[0, 0], x[0, 2])
    assert torch.equal(p.invert(y), x)


def test_saved_json_has_the_documented_fields_and_provenance(tmp_path):
    p = Permutation(np.array([1, 0, 2]), {"model": "mobilenet_v2", "tour_cost": np.float64(1.5)})
    path = p.save(tmp_path / "sub" / "order.json")
    data = json.loads(path.read_text())
    assert data["format"] == "fcm-channel-order" and data["version"] == 1
    assert data["n_channels"] == 3 and data["order"] == [1, 0, 2]
    assert data["provenance"] == {"model": "mobilenet_v2", "tour_cost": 1.5}
    back = Permutation.load(path)
    assert back.provenance["model"] == "mobilenet_v2"
    assert back.digest() == p.digest()
    assert not list(tmp_path.glob("sub/.*tmp"))  # atomic write leaves no temp file


def test_digest_identifies_the_order():
    assert Permutation([0, 1, 2]).digest() != Permutation([0, 2, 1]).digest()
    assert Permutation([0, 2, 1]).digest() == Permutation(np.array([0, 2, 1])).digest()
    assert Permutation.identity(5).order.tolist() == [0, 1, 2, 3, 4]


def test_text_files_accept_comments_and_mixed_separators(tmp_path):
    path = tmp_path / "hand.txt"
    path.write_text("# hand-made order\n2, 0\n1 ; 3  # tail\n")
    assert Permutation.load(path, n_channels=4).order.tolist() == [2, 0, 1, 3]


def _error(tmp_path, content, n_channels=None, name="order.json", raw=False) -> str:
    path = tmp_path / name
    if raw:
        path.write_bytes(content)
    else:
        path.write_text(content)
    with pytest.raises(PermutationError) as info:
        Permutation.load(path, n_channels=n_channels)
    msg = str(info.value)
    assert "\n" not in msg and str(path) in msg
    return msg


def test_duplicate_index_names_index_and_positions(tmp_path):
    msg = _error(tmp_path, "[0, 3, 2, 3, 4]")
    assert "index 3 appears 2 times" in msg and "positions 1 and 3" in msg and "missing" in msg


def test_missing_index_is_named(tmp_path):
    assert "missing (first: 1)" in _error(tmp_path, "[0, 2, 2, 3]")
    assert "index 1 missing" in _error(tmp_path, "[0, 2, 3]")
    assert "missing: 3" in _error(tmp_path, "[0, 1, 2]", n_channels=4)


def test_out_of_range_index(tmp_path):
    msg = _error(tmp_path, "[0, 1, 9, 2]", n_channels=4)
    assert "index 9 at position 2 is out of range" in msg and "0..3" in msg
    assert "out of range" in _error(tmp_path, "[0, -1, 1]")


def test_wrong_length_against_features(tmp_path):
    msg = _error(tmp_path, "[1, 0, 2]", n_channels=5)
    assert "has 3 entries" in msg and "5 channels" in msg


def test_non_integers_are_rejected(tmp_path):
    assert "not an integer" in _error(tmp_path, "[0, 1.5, 2]")
    assert "not an integer" in _error(tmp_path, '[0, "1", 2]')
    assert "not an integer" in _error(tmp_path, "0 1 x", name="o.txt")
    assert "flat list" in _error(tmp_path, "[[0, 1], [2, 3]]")


def test_unparseable_and_missing_files(tmp_path):
    assert "not valid JSON" in _error(tmp_path, '{"order": [0, 1,')
    assert "empty" in _error(tmp_path, "   \n")
    assert "not a text file" in _error(tmp_path, b"\xff\xfe\x00\x81", raw=True)
    assert "no 'order'" in _error(tmp_path, '{"format": "fcm-channel-order"}')
    assert "declares n_channels=4" in _error(tmp_path, '{"n_channels": 4, "order": [0, 1, 2]}')
    with pytest.raises(PermutationError, match="does not exist"):
        Permutation.load(tmp_path / "nope.json")


def test_validate_order_types():
    assert validate_order(np.array([1.0, 0.0])).tolist() == [1, 0]
    with pytest.raises(PermutationError, match="integers"):
        validate_order(np.array([True, False]))
    with pytest.raises(PermutationError, match="flat list"):
        validate_order(np.zeros((2, 2), dtype=int))
    with pytest.raises(PermutationError, match="empty"):
        validate_order([])
    with pytest.raises(ValueError, match="appears"):  # PermutationError is a ValueError
        Permutation([0, 0])


def test_apply_checks_channel_axis():
    with pytest.raises(PermutationError, match="axis -3"):
        Permutation([0, 1, 2]).apply(np.zeros((4, 5, 6)))
