"""ffmpeg backends on tiny frames: lossless exactness, lossy quality and rate, intra period, error paths."""
import sys

import numpy as np
import pytest

from codec import (
    Bitstream,
    BitstreamError,
    CodecError,
    CodecNotFoundError,
    TemporalPacking,
    ffmpeg_exe,
    make_codec,
    make_quantizer,
)
from codec.backends.ffmpeg_base import frame_types, frames_to_planar, planar_to_luma
from codec.nal import VVC_AUD, VVC_IRAP, nal_types

LOSSY = ["vvenc", "x265", "svtav1", "aom", "kvazaar"]


def smooth_frames(n=12, h=32, w=48, bit_depth=8, seed=0):
    """Smooth random fields, correlated from frame to frame (like neighbouring channels)."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(h, w))
    frames = []
    for _ in range(n):
        base = 0.9 * base + 0.45 * rng.normal(size=(h, w))
        f = base.copy()
        for axis in (0, 1):
            f = np.cumsum(f, axis=axis)
        frames.append(f - f.mean())
    a = np.stack(frames)
    a = (a - a.min()) / (a.max() - a.min())
    top = (1 << bit_depth) - 1
    return np.rint(16 + a * (top - 32)).astype(np.uint8 if bit_depth == 8 else np.uint16)


def psnr(a, b, bit_depth):
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return 10 * np.log10(((1 << bit_depth) - 1) ** 2 / max(mse, 1e-12))


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_ffv1_is_lossless(bit_depth):
    codec = make_codec("ffv1")
    frames = np.random.default_rng(3).integers(0, 1 << bit_depth, size=(5, 13, 21)).astype(np.uint16)
    bs = codec.encode(frames, qp=30, bit_depth=bit_depth)
    assert isinstance(bs, Bitstream) and bs.bits == 8 * len(bs.data) > 0
    assert (bs.n_frames, bs.height, bs.width, bs.bit_depth) == (5, 13, 21, bit_depth)
    out = codec.decode(bs)
    assert out.dtype == (np.uint8 if bit_depth == 8 else np.uint16)
    np.testing.assert_array_equal(out, frames)


def test_full_pipeline_with_odd_channel_size_is_exact_when_lossless():
    rng = np.random.default_rng(5)
    x = np.maximum(rng.normal(size=(6, 13, 21)), 0).astype(np.float32)
    q = make_quantizer("log", bits=10).fit([x])
    codec, packing = make_codec("ffv1"), TemporalPacking()
    codes = q.quantize(x)
    frames = packing.pack(codes, codec.grid)
    back = packing.unpack(codec.decode(codec.encode(frames, qp=0, bit_depth=10)), x.shape)
    np.testing.assert_array_equal(back, codes)
    np.testing.assert_array_equal(q.dequantize(back), q.dequantize(codes))


@pytest.mark.parametrize("name", LOSSY)
def test_lossy_quality_and_rate(name):
    codec = make_codec(name)
    frames = smooth_frames()
    bs22 = codec.encode(frames, qp=22)
    bs37 = codec.encode(frames, qp=37)
    out22, out37 = codec.decode(bs22), codec.decode(bs37)
    assert out22.shape == frames.shape and out22.dtype == np.uint8
    assert psnr(out22, frames, 8) > 35.0
    assert psnr(out22, frames, 8) > psnr(out37, frames, 8)
    assert bs37.bits < bs22.bits
    assert bs22.codec == codec.spec()


@pytest.mark.parametrize("spec", ["vvenc", "x265:chroma=400", "svtav1", "aom:chroma=400", "vvenc:chroma=400"])
def test_ten_bit_lossy(spec):
    codec = make_codec(spec)
    frames = smooth_frames(n=8, bit_depth=10)
    bs = codec.encode(frames, qp=22, bit_depth=10)
    out = codec.decode(bs)
    assert out.dtype == np.uint16 and out.max() > 255
    assert psnr(out, frames, 10) > 35.0


def test_vvenc_intra_period_is_32_with_poc0_idr_and_no_auds():
    codec = make_codec("vvenc")
    frames = smooth_frames(n=40, h=32, w=32)
    bs = codec.encode(frames, qp=37)
    types = frame_types(codec, bs)
    assert len(types) == 40
    assert [i for i, t in enumerate(types) if t == "I"] == [0, 32]
    nals = nal_types(bs.data, "vvc")
    assert sum(t in VVC_IRAP for t in nals) == 2
    assert VVC_AUD not in nals
    with_aud = make_codec("vvenc:aud=true").encode(frames, qp=37)
    assert nal_types(with_aud.data, "vvc").count(VVC_AUD) == 40
    assert with_aud.bits > bs.bits
    np.testing.assert_array_equal(make_codec("vvenc:aud=true").decode(with_aud), codec.decode(bs))


def test_vvenc_options_reach_the_encoder():
    frames = smooth_frames(n=40, h=32, w=32)
    legacy = make_codec("vvenc:poc0idr=false")
    types = frame_types(legacy, legacy.encode(frames, qp=37))
    assert [i for i, t in enumerate(types) if t == "I"] == [31]  # VVenC's own default: IDR ends the first GOP
    short = make_codec("vvenc:intra_period=16,gop=16")
    types = frame_types(short, short.encode(frames[:20], qp=37))
    assert [i for i, t in enumerate(types) if t == "I"] == [0, 16]


@pytest.mark.parametrize("name", ["x265", "svtav1", "aom"])
def test_other_codecs_intra_period(name):
    codec = make_codec(name)
    bs = codec.encode(smooth_frames(n=40, h=32, w=32), qp=40)
    types = frame_types(codec, bs)
    assert len(types) == 40 and [i for i, t in enumerate(types) if t == "I"] == [0, 32]


@pytest.mark.parametrize("name", ["vvenc", "x265", "aom"])
def test_truncated_and_garbage_streams_raise(name):
    codec = make_codec(name)
    bs = codec.encode(smooth_frames(n=10, h=32, w=32), qp=30)
    cut = Bitstream(bs.data[: len(bs.data) * 2 // 3], bs.n_frames, bs.height, bs.width, bs.bit_depth, bs.codec)
    with pytest.raises(BitstreamError):
        codec.decode(cut)
    junk = np.random.default_rng(0).integers(0, 256, 600, dtype=np.uint8).tobytes()
    with pytest.raises(BitstreamError):
        codec.decode(Bitstream(junk, bs.n_frames, bs.height, bs.width, bs.bit_depth, bs.codec))
    with pytest.raises(BitstreamError, match="empty"):
        codec.decode(Bitstream(b"", bs.n_frames, bs.height, bs.width, bs.bit_depth, bs.codec))


def test_frame_count_mismatch_is_reported():
    codec = make_codec("ffv1")
    bs = codec.encode(np.zeros((4, 8, 8), np.uint8), qp=0)
    more = Bitstream(bs.data, 5, bs.height, bs.width, bs.bit_depth, bs.codec)
    with pytest.raises(BitstreamError, match="4 frames of 8x8 instead of 5"):
        codec.decode(more)


def test_bit_depth_conversion_is_exact_and_rounds():
    frames = np.array([0, 1, 128, 254, 255, 7, 3, 9], dtype=np.uint8).reshape(1, 2, 4)
    raw = frames_to_planar(frames, "420", coded_depth=10, input_depth=8)
    samples = np.frombuffer(raw, "<u2")
    assert samples.size == 8 + 2 * 2
    np.testing.assert_array_equal(samples[:8].reshape(2, 4), frames[0].astype(np.uint16) << 2)
    assert np.all(samples[8:] == 512)  # mid-grey chroma at 10 bit
    np.testing.assert_array_equal(planar_to_luma(raw, 1, 2, 4, "420", 10, 8, "t"), frames)
    # decoded 10-bit values between the grid points round to nearest, top values clip to 255
    y = np.array([4, 5, 6, 7, 1021, 1022, 1023, 0], dtype="<u2")
    chroma = np.full(4, 512, "<u2")
    out = planar_to_luma(np.concatenate([y, chroma]).tobytes(), 1, 2, 4, "420", 10, 8, "t")
    np.testing.assert_array_equal(out.ravel(), [1, 1, 2, 2, 255, 255, 255, 0])
    gray = frames_to_planar(frames, "400", coded_depth=8, input_depth=8)
    assert gray == frames.tobytes()


def test_input_validation_messages():
    codec = make_codec("vvenc")
    with pytest.raises(ValueError, match="multiples of 8"):
        codec.encode(np.zeros((2, 13, 16), np.uint8), qp=30)
    with pytest.raises(ValueError, match="value 300 which does not fit in bit_depth=8"):
        codec.encode(np.full((2, 16, 16), 300, np.uint16), qp=30)
    with pytest.raises(ValueError, match="outside its range"):
        codec.encode(np.zeros((2, 16, 16), np.uint8), qp=70)
    with pytest.raises(ValueError, match="dtype float32"):
        codec.encode(np.zeros((2, 16, 16), np.float32), qp=30)
    with pytest.raises(ValueError, match="bit_depth=10 is not supported"):
        make_codec("kvazaar").encode(np.zeros((2, 16, 16), np.uint16), qp=30, bit_depth=10)
    bs = make_codec("ffv1").encode(np.zeros((1, 8, 8), np.uint8), qp=0)
    with pytest.raises(ValueError, match="made by 'ffv1'"):
        codec.decode(bs)


def test_missing_ffmpeg_raises_codec_not_found(monkeypatch, tmp_path):
    monkeypatch.setenv("FCM_FFMPEG", str(tmp_path / "no-such-ffmpeg"))
    with pytest.raises(CodecNotFoundError, match="FCM_FFMPEG"):
        ffmpeg_exe()
    with pytest.raises(CodecNotFoundError, match="FCM_FFMPEG"):
        make_codec("vvenc").encode(smooth_frames(n=2, h=32, w=32), qp=30)


def test_ffmpeg_without_the_encoder_raises_codec_not_found(monkeypatch, tmp_path):
    fake = tmp_path / "ffmpeg"
    fake.write_text(
        f"#!{sys.executable}\n"
        "print('Encoders:')\nprint(' V..... = Video')\nprint(' ------')\n"
        "print(' V....D libx265              libx265 H.265 / HEVC (codec hevc)')\n"
    )
    fake.chmod(0o755)
    monkeypatch.setenv("FCM_FFMPEG", str(fake))
    with pytest.raises(CodecNotFoundError, match="no encoder 'libvvenc'"):
        make_codec("vvenc").encode(smooth_frames(n=2, h=32, w=32), qp=30)


def test_vvenc_oversized_picture_error_explains_the_limit():
    noise = np.random.default_rng(0).integers(0, 256, size=(4, 16, 16)).astype(np.uint8)
    with pytest.raises(CodecError, match="at most 256 bytes"):
        make_codec("vvenc").encode(noise, qp=10)


def test_encoder_failure_carries_the_log():
    # 8x8 frames are below x265's minimum size: ffmpeg fails and the message carries the log's tail
    with pytest.raises(CodecError) as info:
        make_codec("x265").encode(np.zeros((2, 8, 8), np.uint8), qp=30)
    assert "x265 encode" in str(info.value) and "too small" in str(info.value).lower()
    assert "libx265" in info.value.log and not isinstance(info.value, BitstreamError)


@pytest.mark.parametrize("spec", ["vvenc:chroma=400", "x265:chroma=400", "aom:chroma=400"])
def test_monochrome_streams_hold_no_chroma(spec):
    """chroma=400 makes a 4:0:0 stream (VVenC: fed 4:2:0, told ChromaFormatIDC=400), cheaper than flat 4:2:0."""
    from codec.ffmpeg import run_ffmpeg

    mono = make_codec(spec)
    frames = smooth_frames(n=4, h=32, w=48, bit_depth=10)
    bs = mono.encode(frames, qp=27, bit_depth=10)
    _, log = run_ffmpeg(["-hide_banner", "-nostdin", "-f", mono.demuxer, "-i", "pipe:0", "-f", "null", "-"],
                        input=bs.data, what="probe")
    assert "gray" in log and "yuv420" not in log.split("Stream #0:0")[1].splitlines()[0]
    flat = make_codec(spec.replace("chroma=400", "chroma=420"))
    assert bs.bits < flat.encode(frames, qp=27, bit_depth=10).bits
    assert psnr(mono.decode(bs), frames, 10) > 30.0


def test_vvenc_monochrome_is_fed_420_and_decoded_gray():
    mono = make_codec("vvenc:chroma=400")
    enc = mono.encode_command(2, 32, 32, 27, 10)
    assert enc[enc.index("-pix_fmt") + 1] == "yuv420p10le" and "ChromaFormatIDC=400" in mono.vvenc_params()
    dec = mono.decode_command(10)
    assert dec[dec.index("-pix_fmt") + 1] == "gray10le"
    assert make_codec("vvenc:chroma=420").spec() == make_codec("vvenc").spec()  # the default, spelled out
    assert "ChromaFormatIDC" not in make_codec("vvenc").vvenc_params()
