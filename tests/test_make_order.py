"""Subjective orders: a hand-written grouping of channels becomes a validated order file."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reorder.grouping import GroupingError, grouping_provenance, order_from_groups, parse_groups, read_groups

ROOT = Path(__file__).resolve().parents[1]


def test_text_groups_keep_order_and_append_the_rest():
    groups = parse_groups("# similar edges\n3 17 42\n\n5, 9  # blobs\n")
    assert groups == [[3, 17, 42], [5, 9]]
    order = order_from_groups(groups, 10 + 40)
    assert order.dtype == np.int64
    assert list(order[:5]) == [3, 17, 42, 5, 9]
    rest = [c for c in range(50) if c not in (3, 17, 42, 5, 9)]
    assert list(order[5:]) == rest  # unmentioned channels in index order
    assert sorted(order) == list(range(50))


def test_json_groups_equal_text_groups():
    assert parse_groups("[[3, 17, 42], [5, 9]]") == parse_groups("3 17 42\n5 9")


def test_rest_error_requires_every_channel():
    with pytest.raises(GroupingError, match=r"2 of 5 channels are in no group \(3, 4\)"):
        order_from_groups([[0, 2], [1]], 5, rest="error")
    assert list(order_from_groups([[4, 2], [0, 1, 3]], 5, rest="error")) == [4, 2, 0, 1, 3]


@pytest.mark.parametrize(
    "groups, n, message",
    [
        ([[1, 2], [3, 2]], 8, "channel 2 in group 2 is also in group 1"),
        ([[1, 1]], 8, "channel 1 in group 1 is twice in that group"),
        ([[1, 8]], 8, "channel 8, outside 0..7"),
        ([[-1]], 8, "channel -1, outside 0..7"),
        ([[1], []], 8, "group 2 is empty"),
        ([[1.5]], 8, "1.5 is not a channel index"),
        ([[1]], 0, "n_channels=0"),
    ],
)
def test_bad_groupings_name_the_problem(groups, n, message):
    with pytest.raises(GroupingError, match=message.replace("(", r"\(").replace(")", r"\)")):
        order_from_groups(groups, n)


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "is empty"),
        ("# only a comment\n", "only comments"),
        ("1 2 x3", "line 1: 'x3' is not a channel index"),
        ("1 2\n3 4.0", "line 2: '4.0'"),
        ("[[1, 2], [3", "does not parse"),
        ("[1, 2, 3]", "list of groups"),
        ("[[1, true]]", "True is not a channel index"),
    ],
)
def test_bad_text_names_line_or_format(text, message):
    with pytest.raises(GroupingError, match=message.replace("[", r"\[").replace("(", r"\(")):
        parse_groups(text)


def test_unknown_rest_policy():
    with pytest.raises(GroupingError, match="rest='drop'"):
        order_from_groups([[0]], 3, rest="drop")


def test_read_groups_missing_file(tmp_path):
    with pytest.raises(GroupingError, match="does not exist"):
        read_groups(tmp_path / "nope.txt")


def test_provenance_records_the_grouping():
    prov = grouping_provenance([[3, 1], [2]], 6, "append", source="g.txt")
    assert prov["n_groups"] == 2 and prov["group_sizes"] == [2, 1] and prov["n_unassigned"] == 3
    assert prov["groups"] == [[3, 1], [2]]
    assert prov["grouping_sha256"] != grouping_provenance([[1, 3], [2]], 6, "append")["grouping_sha256"]


def _make_order(*args):
    return subprocess.run([sys.executable, "-m", "studies.make_order", *args], cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_cli_writes_an_order_file_search_order_accepts(tmp_path):
    from eval.pipeline.orders import load_order_files

    groups = tmp_path / "mine.txt"
    groups.write_text("10 11 12\n0 143\n")
    out = tmp_path / "hand.json"
    proc = _make_order(str(groups), "--channels", "144", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    saved = json.loads(out.read_text())
    assert saved["order"][:5] == [10, 11, 12, 0, 143] and sorted(saved["order"]) == list(range(144))
    assert saved["provenance"]["kind"] == "subjective-grouping" and saved["provenance"]["n_unassigned"] == 139
    loaded = load_order_files([f"hand={out}"], n_channels=144)  # what --order-file does
    assert list(loaded["hand"].order) == saved["order"]
    assert "--order-file mine=" in proc.stdout


def test_cli_bad_grouping_is_one_line_error(tmp_path):
    groups = tmp_path / "mine.txt"
    groups.write_text("1 2 3\n3 4\n")
    proc = _make_order(str(groups), "--channels", "144", "--out", str(tmp_path / "o.json"))
    assert proc.returncode == 2
    last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("error: ") and "channel 3 in group 2 is also in group 1" in last
    assert "Traceback" not in proc.stderr and not (tmp_path / "o.json").exists()
