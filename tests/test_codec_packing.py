"""Packing codes into frames: padding to the codec grid, exact round trips, layouts."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from codec import PACKINGS, TemporalPacking, TiledPacking, make_packing


def codes(c, h, w, seed=0, dtype=np.uint16):
    return np.random.default_rng(seed).integers(0, 1024, size=(c, h, w)).astype(dtype)


@settings(max_examples=60, deadline=None)
@given(c=st.integers(1, 20), h=st.integers(1, 23), w=st.integers(1, 23), grid=st.sampled_from([1, 2, 8, 16]),
       cols=st.one_of(st.none(), st.integers(1, 7)), per_frame=st.one_of(st.none(), st.integers(1, 9)))
def test_round_trip_any_size(c, h, w, grid, cols, per_frame):
    x = codes(c, h, w, seed=c * 1000 + h * 10 + w)
    for packing in (TemporalPacking(), TiledPacking(cols=cols, per_frame=per_frame)):
        frames = packing.pack(x, grid)
        assert frames.dtype == x.dtype
        assert frames.shape[1] % grid == 0 and frames.shape[2] % grid == 0
        assert frames.shape == packing.frame_shape(x.shape, grid)
        np.testing.assert_array_equal(packing.unpack(frames, x.shape), x)


def test_temporal_pads_by_edge_replication():
    x = codes(3, 13, 21)
    f = TemporalPacking().pack(x, 8)
    assert f.shape == (3, 16, 24)
    np.testing.assert_array_equal(f[:, 13:, :21], np.repeat(x[:, -1:, :], 3, axis=1))
    np.testing.assert_array_equal(f[:, :13, 21:], np.repeat(x[:, :, -1:], 3, axis=2))
    assert np.all(f[:, 13:, 21:] == x[:, -1:, -1:])


def test_tiled_layout_is_near_square_and_row_major():
    x = codes(144, 13, 21)
    p = TiledPacking()
    n, rows, cols = p.layout(x.shape)
    assert n == 1 and rows * cols >= 144 and (rows - 1) * cols < 144
    frame = p.pack(x, 8)[0]
    ratio = (rows * 13) / (cols * 21)
    assert 0.7 < ratio < 1.4
    np.testing.assert_array_equal(frame[0:13, 21:42], x[1])          # second tile, first row
    np.testing.assert_array_equal(frame[13:26, 0:21], x[cols])       # first tile, second row


def test_tiled_fill_and_per_frame():
    x = codes(10, 4, 4)
    p = TiledPacking(cols=4, per_frame=6)
    frames = p.pack(x, 1)
    assert frames.shape == (2, 8, 16)
    fill = np.rint(x[6:].mean())
    assert np.all(frames[1, 4:8, 0:16] == fill)  # tiles 4..7 of the second mosaic are unused
    np.testing.assert_array_equal(frames[1, 0:4, 4:8], x[7])


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"\[C, H, W\]"):
        TemporalPacking().pack(np.zeros((4, 4), np.uint8), 8)
    with pytest.raises(ValueError, match="grid"):
        TemporalPacking().pack(codes(2, 4, 4), 0)
    with pytest.raises(ValueError, match="needs"):
        TemporalPacking().unpack(np.zeros((3, 8, 8), np.uint16), (4, 8, 8))
    with pytest.raises(ValueError, match="cols"):
        TiledPacking(cols=0)


def test_make_packing_specs_round_trip():
    p = make_packing("tiled:cols=12,per_frame=16")
    assert isinstance(p, TiledPacking) and (p.cols, p.per_frame) == (12, 16)
    assert make_packing(p.spec()).get_params() == p.get_params()
    assert isinstance(make_packing("temporal"), TemporalPacking)
    with pytest.raises(ValueError, match="valid names: temporal, tiled"):
        make_packing("zigzag")
    with pytest.raises(ValueError, match="valid options: none"):
        make_packing("temporal:cols=3")


@pytest.mark.parametrize("spec, canonical", [("temporal", "temporal"), ("tiled", "tiled"), ("TILED:cols=3", "tiled:cols=3"),
                                             ("tiled:per_frame=16,cols=12", "tiled:cols=12,per_frame=16"),
                                             ("tiled:cols=none", "tiled")])
def test_packing_spec_strings_are_canonical(spec, canonical):
    p = make_packing(spec)
    assert p.spec() == canonical and make_packing(canonical).spec() == canonical
    assert make_packing("tiled", cols=4).spec() == "tiled:cols=4"  # keyword options override the string's


def test_a_registered_packing_is_made_by_name(monkeypatch):
    monkeypatch.setattr(PACKINGS, "_classes", dict(PACKINGS._classes))

    @PACKINGS.register("flipped")
    class FlippedPacking(TemporalPacking):
        name = "flipped"

        def __init__(self, axis: int = 1):
            self.axis = axis

        def get_params(self, deep=True):
            return {"axis": self.axis}

    p = make_packing("flipped:axis=2")
    assert isinstance(p, FlippedPacking) and p.axis == 2 and p.spec() == "flipped:axis=2"
    assert "flipped" in PACKINGS.names()
    with pytest.raises(ValueError, match="no option 'cols'; valid options: axis"):
        make_packing("flipped:cols=2")


# ------------------------------------------------------------------ the MPEG grid and ETRI's mirrored tiles
@settings(max_examples=40, deadline=None)
@given(c=st.integers(1, 30), h=st.integers(1, 9), w=st.integers(1, 9), grid=st.sampled_from([1, 8]),
       per_frame=st.one_of(st.none(), st.integers(1, 12)), flip=st.sampled_from(["none", "h", "v", "hv"]),
       rule=st.sampled_from([None, "mpeg"]))
def test_mpeg_grid_and_flips_round_trip(c, h, w, grid, per_frame, flip, rule):
    x = codes(c, h, w, seed=c + 7 * h + 31 * w)
    p = TiledPacking(per_frame=per_frame, grid=rule, flip=flip)
    frames = p.pack(x, grid)
    assert frames.shape == p.frame_shape(x.shape, grid)
    np.testing.assert_array_equal(p.unpack(frames, x.shape), x)


def test_flips_mirror_alternate_tiles_by_column_and_row_parity():
    x = codes(6, 3, 4)
    plain = TiledPacking(cols=3).pack(x, 1)[0]
    hv = TiledPacking(cols=3, flip="hv").pack(x, 1)[0]
    tile = lambda f, r, c: f[3 * r:3 * r + 3, 4 * c:4 * c + 4]  # noqa: E731
    np.testing.assert_array_equal(tile(hv, 0, 0), x[0])                   # even row, even column: as is
    np.testing.assert_array_equal(tile(hv, 0, 1), x[1][:, ::-1])          # odd column: left-right
    np.testing.assert_array_equal(tile(hv, 1, 0), x[3][::-1, :])          # odd row: upside down
    np.testing.assert_array_equal(tile(hv, 1, 1), x[4][::-1, ::-1])       # both
    # a channel next to its own copy meets it as a mirror image along the shared border
    same = np.repeat(codes(1, 3, 4, seed=5), 6, axis=0)
    f = TiledPacking(cols=3, flip="hv").pack(same, 1)[0]
    np.testing.assert_array_equal(f[:, 3], f[:, 4])   # vertical border between columns 0 and 1
    np.testing.assert_array_equal(f[2], f[3])         # horizontal border between rows 0 and 1
    assert not np.array_equal(plain[:, 3], plain[:, 4])
    h_only = TiledPacking(cols=3, flip="h").pack(x, 1)[0]
    np.testing.assert_array_equal(tile(h_only, 1, 1), x[4][:, ::-1])


def test_mpeg_grid_has_no_unused_tile_and_follows_orientation():
    x = codes(24, 3, 5)
    assert TiledPacking(grid="mpeg").layout(x.shape) == (1, 6, 4)
    assert TiledPacking(grid="mpeg").layout((24, 5, 3)) == (1, 4, 6)
    assert TiledPacking(grid="mpeg", per_frame=6).layout(x.shape) == (4, 3, 2)
    assert TiledPacking().layout(x.shape) == (1, 6, 4)  # the default rule happens to agree here ...
    assert TiledPacking().layout((144, 8, 32)) != TiledPacking(grid="mpeg").layout((144, 8, 32))  # ... not here


def test_grid_and_flip_options_are_checked_and_canonical():
    with pytest.raises(ValueError, match="grid='hex'; use one of square, mpeg"):
        TiledPacking(grid="hex")
    with pytest.raises(ValueError, match="give cols or grid, not both"):
        TiledPacking(cols=3, grid="mpeg")
    with pytest.raises(ValueError, match="flip='x'; use one of none, h, v, hv"):
        make_packing("tiled:flip=x")
    assert make_packing("tiled:grid=square,flip=none").spec() == "tiled"  # defaults spelled out: the same spec
    assert make_packing("tiled:flip=hv,grid=mpeg").spec() == "tiled:flip=hv,grid=mpeg"
