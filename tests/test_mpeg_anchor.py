"""The MPEG anchors' conversion reproduced: codes and packed frame of CompressAI-Vision (global min/max) and
FCTM v1 (per-image min/max), computed here from their formulas written out independently, element for element
against the package's quantizer + packing; and the named pipelines."""
import math

import numpy as np
import pytest

from codec import TiledPacking, make_packing, make_quantizer
from codec.packing import mpeg_grid
from codec.pipelines import PIPELINE_NAMES, CodingPipeline, make_pipeline


def features(c=24, h=6, w=10, seed=0):
    """Signed, heavy-tailed float32 features (detectron2-like: both signs, a few large values)."""
    rng = np.random.default_rng(seed)
    return (rng.standard_t(4, size=(c, h, w)) * rng.uniform(0.2, 3.0, size=(c, 1, 1))).astype(np.float32)


# ---- the anchors' formulas, written out from their description (compressai_vision/codecs/utils.py) ----------------
def anchor_codes(x: np.ndarray, xmin: float, xmax: float, bits: int = 10) -> np.ndarray:
    """``floor(clamp((x - min) / (max - min), 0, 1) * (2**bits - 1))`` with float32 operands (torch float32 tensors)."""
    u = (x.astype(np.float32) - np.float32(xmin)) / np.float32(xmax - xmin)
    u = np.minimum(np.maximum(u, np.float32(0.0)), np.float32(1.0))
    return np.floor(u * np.float32(2 ** bits - 1)).astype(np.int64)


def anchor_inverse(q: np.ndarray, xmin: float, xmax: float, bits: int = 10) -> np.ndarray:
    return (q.astype(np.float32) / np.float32(2 ** bits - 1)) * np.float32(xmax - xmin) + np.float32(xmin)


def anchor_grid(c: int, h: int, w: int) -> tuple[int, int]:
    """(rows, cols): short edge = largest divisor of C not above int(sqrt(C)); tall tiles: short rows."""
    short = int(math.sqrt(c))
    while c % short:
        short -= 1
    long = c // short
    return (short, long) if h > w else (long, short)


def anchor_frame(codes: np.ndarray) -> np.ndarray:
    """The channels tiled row by row, in their natural order, with no unused tile."""
    c, h, w = codes.shape
    rows, cols = anchor_grid(c, h, w)
    frame = np.zeros((rows * h, cols * w), dtype=np.int64)
    for k in range(c):
        r, col = divmod(k, cols)
        frame[r * h:(r + 1) * h, col * w:(col + 1) * w] = codes[k]
    return frame


# ---- the checks ---------------------------------------------------------------------------------------------------
def test_global_min_max_codes_and_frame_equal_the_anchor():
    calib = [features(seed=s) for s in (1, 2, 3)]
    x = features(seed=9) * np.float32(3.0)  # a test image partly outside the calibration range: clipped
    xmin = min(float(a.min()) for a in calib)
    xmax = max(float(a.max()) for a in calib)
    pipe = make_pipeline("mpeg-anchor")
    q = make_quantizer(pipe.quantizer).fit(calib)
    assert (q.xmin_, q.xmax_) == (xmin, xmax)  # one pair for the data set: the calibration split's min and max

    codes = q.quantize(x)
    want = anchor_codes(x, xmin, xmax)
    np.testing.assert_array_equal(codes, want)
    assert want.min() == 0 and want.max() == 1023  # the clipping is exercised at both ends

    frame = make_packing(pipe.packing).pack(codes, grid=1)
    assert frame.shape == (1, *anchor_frame(want).shape)  # ONE frame per image
    np.testing.assert_array_equal(frame[0], anchor_frame(want))
    # dequantize is the anchor's inverse up to the float32 nudge that keeps it exact on every code
    np.testing.assert_allclose(q.dequantize(codes), anchor_inverse(want, xmin, xmax), rtol=0, atol=4e-6 * (xmax - xmin))
    np.testing.assert_array_equal(q.quantize(q.dequantize(codes)), codes)
    assert q.side_bits(x.shape[0]) == 0  # the pair is fixed in the decoder


def test_fixed_min_max_given_as_parameters_equal_the_anchor():
    x = features(c=16, h=5, w=7, seed=4)
    lo, hi = -26.426828384399414, 28.397470474243164  # CompressAI-Vision's pair for mpeg-oiv6-detection
    q = make_quantizer("uniform:bits=10,rounding=floor", xmin=lo, xmax=hi).fit([])
    np.testing.assert_array_equal(q.quantize(x * np.float32(8)), anchor_codes(x * np.float32(8), lo, hi))


def test_per_image_min_max_equal_fctm_and_cost_64_side_bits():
    pipe = make_pipeline("fctm")
    q = make_quantizer(pipe.quantizer).fit([features(seed=1)])
    for seed in (5, 6):
        x = features(seed=seed) * np.float32(seed)
        codes = q.quantize(x)
        xmin, xmax = float(x.min()), float(x.max())  # FCTM: min and max of the packed frame, float32
        want = anchor_codes(x, xmin, xmax)
        np.testing.assert_array_equal(codes, want)
        assert codes.min() == 0 and codes.max() == 1023
        assert tuple(float(v) for v in q.side_) == (xmin, xmax)
        np.testing.assert_allclose(q.dequantize(codes), anchor_inverse(want, xmin, xmax), rtol=0,
                                   atol=4e-6 * (xmax - xmin))
        np.testing.assert_array_equal(make_packing(pipe.packing).pack(codes, 1)[0], anchor_frame(want))
    assert q.side_bits(24) == 64  # two float32 numbers per image, whatever the channel count


def test_the_anchor_formula_is_what_torch_computes():
    """The anchor runs torch on float32 tensors: the float32 formula above is that arithmetic (float64 is not)."""
    torch = pytest.importorskip("torch")
    x = features(c=36, h=16, w=24, seed=3)
    xmin, xmax = float(x.min()) - 0.25, float(x.max()) + 0.5
    t = ((torch.from_numpy(x) - xmin) / (xmax - xmin)).clamp_(0, 1)
    np.testing.assert_array_equal((t * 1023).floor().numpy().astype(np.int64), anchor_codes(x, xmin, xmax))
    np.testing.assert_array_equal(make_quantizer("uniform:bits=10,rounding=floor", xmin=xmin, xmax=xmax).fit([])
                                  .quantize(x), anchor_codes(x, xmin, xmax))


@pytest.mark.parametrize("c,h,w", [(144, 8, 12), (144, 12, 8), (256, 5, 5), (24, 3, 9), (24, 9, 3), (7, 4, 6),
                                   (12, 6, 6), (1, 3, 3)])
def test_grid_is_the_anchors(c, h, w):
    rows, cols = anchor_grid(c, h, w)
    assert mpeg_grid(c, h, w) == (rows, cols) and rows * cols == c
    n, r, k = TiledPacking(grid="mpeg").layout((c, h, w))
    assert (n, r, k) == (1, rows, cols)
    codes = np.arange(c * h * w, dtype=np.uint16).reshape(c, h, w)
    np.testing.assert_array_equal(TiledPacking(grid="mpeg").pack(codes, 1)[0], anchor_frame(codes))


def test_grid_depends_on_the_channel_count_and_orientation_only():
    assert mpeg_grid(144) == (12, 12) and mpeg_grid(256) == (16, 16)
    assert mpeg_grid(24) == (6, 4) and mpeg_grid(24, 9, 3) == (4, 6)  # tall tiles: fewer rows
    assert mpeg_grid(24, 3, 90) == mpeg_grid(24, 3, 4)  # the aspect ratio's size does not matter
    with pytest.raises(ValueError, match="at least one channel"):
        mpeg_grid(0)


def test_pipelines_are_named_data():
    assert {"paper", "mpeg-anchor", "fctm"} <= set(PIPELINE_NAMES)
    paper = make_pipeline("paper")
    assert (paper.quantizer, paper.packing, paper.chroma) == ("log", "temporal", "420")
    for name in PIPELINE_NAMES:
        p = make_pipeline(name)
        make_quantizer(p.quantizer)  # valid specs
        make_packing(p.packing)
    anchor = make_pipeline("compressai-vision")
    assert anchor.name == "mpeg-anchor" and anchor.chroma == "400"
    assert "chroma=400" in anchor.codec_spec("vvenc") and "chroma=400" in anchor.codec_spec("x265")
    assert anchor.codec_spec("svtav1") == "svtav1:intra_period=32,preset=8,tf=false,threads=1"  # 4:2:0 only
    assert anchor.monochrome("vtm") and anchor.monochrome("aom") and not anchor.monochrome("svtav1")
    assert paper.codec_spec("vvenc") == "vvenc:aud=false,bim=false,gop=32,intra_period=32,mctf=false,poc0idr=true," \
                                        "preset=faster,qpa=false,threads=1"  # unchanged: the paper's spec
    assert make_pipeline(anchor) is anchor
    with pytest.raises(ValueError, match="unknown pipeline 'hevc'; valid names: paper, mpeg-anchor, fctm"):
        make_pipeline("hevc")
    with pytest.raises(ValueError, match="chroma='444'"):
        CodingPipeline("x", "log", "temporal", "444")
