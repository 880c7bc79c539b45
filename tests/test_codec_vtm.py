"""VTM backend: the paper's exact command line, file handling and errors with fake apps, real VTM if configured."""
import json
import os
import sys
import textwrap

import numpy as np
import pytest

from codec import Bitstream, BitstreamError, CodecError, CodecNotFoundError, make_codec
from codec.backends.vtm import vtm_decoder_command, vtm_encoder_command

FAKE_ENCODER = """
import json, os, sys
args = sys.argv[1:]
opt = {}
i = 0
while i < len(args):
    a = args[i]
    if a.startswith("--"):
        k, _, v = a[2:].partition("=")
        opt[k] = v
        i += 1
    else:
        opt[a[1:]] = args[i + 1]
        i += 2
with open(os.environ["FAKE_VTM_ARGV"], "w") as f:
    json.dump(sys.argv, f)
if os.environ.get("FAKE_VTM_FAIL"):
    print("ERROR: In function \\"parseCfg\\": unknown option", file=sys.stderr)
    sys.exit(1)
w, h, n, bd = int(opt["wdt"]), int(opt["hgt"]), int(opt["f"]), int(opt["InputBitDepth"])
planes = {"420": 3 / 2, "400": 1}[opt.get("InputChromaFormat", "420")]
size = int(w * h * planes) * (2 if bd > 8 else 1)
data = open(opt["i"], "rb").read()
assert len(data) == size * n, (len(data), size * n)
open(opt["c"]).read()
with open(opt["b"], "wb") as f:  # a fake "bitstream": header + the raw yuv
    f.write(b"FAKEVVC" + bytes([bd]) + data)
print("POC    0 LId:  0 TId: 0 ( IDR_N_LP, I-SLICE, QP %s )" % opt["q"])
print("Total Time: 0.001 sec.")
"""

FAKE_DECODER = """
import sys
args = dict(zip(sys.argv[1::2], sys.argv[2::2]))
data = open(args["-b"], "rb").read()
if not data.startswith(b"FAKEVVC"):
    print("Error: bitstream is corrupt", file=sys.stderr)
    sys.exit(1)
assert int(args["-d"]) == data[7]
with open(args["-o"], "wb") as f:
    f.write(data[8:])
"""


@pytest.fixture
def fake_vtm(tmp_path, monkeypatch):
    paths = {}
    for name, body in (("EncoderApp", FAKE_ENCODER), ("DecoderApp", FAKE_DECODER)):
        p = tmp_path / name
        p.write_text(f"#!{sys.executable}\n" + textwrap.dedent(body))
        p.chmod(0o755)
        paths[name] = p
    cfg = tmp_path / "encoder_randomaccess_vtm.cfg"
    cfg.write_text("IntraPeriod : 32\nGOPSize : 16\n")
    monkeypatch.setenv("FCM_VTM_ENCODER", str(paths["EncoderApp"]))
    monkeypatch.setenv("FCM_VTM_DECODER", str(paths["DecoderApp"]))
    monkeypatch.setenv("FCM_VTM_CFG", str(cfg))
    monkeypatch.setenv("FAKE_VTM_ARGV", str(tmp_path / "argv.json"))
    return tmp_path


def test_encoder_command_is_the_papers():
    argv = vtm_encoder_command("EncoderApp", "encoder_randomaccess_vtm.cfg", "in.yuv", "out.bin", 32, 272, 200, 256)
    assert argv == [
        "EncoderApp", "-c", "encoder_randomaccess_vtm.cfg", "-i", "in.yuv", "-b", "out.bin", "-q", "32",
        "--InputBitDepth=8", "--OutputBitDepth=8", "-wdt", "272", "-hgt", "200", "--FrameRate=1", "--FrameSkip=0",
        "-f", "256", "-o", os.devnull,
    ]
    ten = vtm_encoder_command("E", "c.cfg", "i.yuv", "o.bin", 22, 64, 48, 9, bit_depth=10)
    assert "--InputBitDepth=10" in ten and "--OutputBitDepth=10" in ten


def test_decoder_command_is_the_papers():
    assert vtm_decoder_command("DecoderApp", "out.bin", "rec.yuv") == ["DecoderApp", "-b", "out.bin", "-o", "rec.yuv", "-d", "8"]


@pytest.mark.parametrize("bit_depth", [8, 10])
def test_fake_vtm_round_trip(fake_vtm, bit_depth):
    codec = make_codec("vtm")
    frames = np.random.default_rng(2).integers(0, 1 << bit_depth, size=(3, 16, 24)).astype(np.uint16)
    bs = codec.encode(frames, qp=27, bit_depth=bit_depth)
    argv = json.loads((fake_vtm / "argv.json").read_text())
    assert argv[argv.index("-q") + 1] == "27" and argv[argv.index("-f") + 1] == "3"
    assert argv[argv.index("-wdt") + 1] == "24" and argv[argv.index("-hgt") + 1] == "16"
    assert f"--InputBitDepth={bit_depth}" in argv
    assert argv[argv.index("-c") + 1] == str(fake_vtm / "encoder_randomaccess_vtm.cfg")
    sample = 2 if bit_depth > 8 else 1
    assert bs.bits == 8 * (8 + 3 * 16 * 24 * 3 // 2 * sample)
    assert "QP 27" in bs.log and bs.codec == "vtm"
    out = codec.decode(bs)
    np.testing.assert_array_equal(out, frames)
    assert out.dtype == (np.uint8 if bit_depth == 8 else np.uint16)


def test_fake_vtm_chroma_is_mid_grey(fake_vtm):
    bs = make_codec("vtm").encode(np.zeros((1, 8, 8), np.uint8), qp=30)
    planes = np.frombuffer(bs.data[8:], np.uint8)
    assert np.all(planes[:64] == 0) and np.all(planes[64:] == 128) and planes.size == 96


def test_fake_vtm_errors(fake_vtm, monkeypatch):
    codec = make_codec("vtm")
    frames = np.zeros((2, 8, 8), np.uint8)
    bs = codec.encode(frames, qp=30)
    with pytest.raises(BitstreamError, match="DecoderApp exit 1.*corrupt"):
        codec.decode(Bitstream(b"garbage", 2, 8, 8, 8, "vtm"))
    with pytest.raises(BitstreamError, match="1 frames of 8x8 instead of 2"):
        codec.decode(Bitstream(bs.data[: 8 + 96], 2, 8, 8, 8, "vtm"))
    monkeypatch.setenv("FAKE_VTM_FAIL", "1")
    with pytest.raises(CodecError, match="EncoderApp exit 1.*unknown option") as info:
        codec.encode(frames, qp=30)
    assert not isinstance(info.value, BitstreamError)


def test_missing_vtm_names_the_env_var(monkeypatch, tmp_path):
    for var in ("FCM_VTM_ENCODER", "FCM_VTM_DECODER", "FCM_VTM_CFG"):
        monkeypatch.delenv(var, raising=False)
    frames = np.zeros((1, 8, 8), np.uint8)
    with pytest.raises(CodecNotFoundError, match="set FCM_VTM_ENCODER or pass vtm:encoder=PATH"):
        make_codec("vtm").encode(frames, qp=30)
    monkeypatch.setenv("FCM_VTM_ENCODER", str(tmp_path / "missing"))
    with pytest.raises(CodecNotFoundError, match="does not exist; fix FCM_VTM_ENCODER"):
        make_codec("vtm").encode(frames, qp=30)
    plain = tmp_path / "EncoderApp"
    plain.write_text("not executable")
    with pytest.raises(CodecNotFoundError, match="is not executable"):
        make_codec({"name": "vtm", "encoder": str(plain)}).encode(frames, qp=30)


VTM_READY = all(os.environ.get(v) for v in ("FCM_VTM_ENCODER", "FCM_VTM_DECODER", "FCM_VTM_CFG"))


@pytest.mark.vtm
@pytest.mark.skipif(not VTM_READY, reason="real VTM not configured: set FCM_VTM_ENCODER, FCM_VTM_DECODER, FCM_VTM_CFG")
def test_real_vtm_round_trip():
    rng = np.random.default_rng(0)
    base = np.cumsum(np.cumsum(rng.normal(size=(4, 16, 16)), 1), 2)
    frames = np.rint(40 + 150 * (base - base.min()) / np.ptp(base)).astype(np.uint8)
    codec = make_codec("vtm")
    bs = codec.encode(frames, qp=22)
    out = codec.decode(bs)
    mse = np.mean((out.astype(float) - frames) ** 2)
    assert bs.bits > 0 and 10 * np.log10(255 ** 2 / max(mse, 1e-9)) > 35


def test_monochrome_command_and_luma_only_files(fake_vtm):
    argv = vtm_encoder_command("E", "c.cfg", "i.yuv", "o.bin", 22, 64, 48, 9, bit_depth=10, chroma="400")
    assert argv == vtm_encoder_command("E", "c.cfg", "i.yuv", "o.bin", 22, 64, 48, 9, bit_depth=10)[:-2] + [
        "--InputChromaFormat=400", "-o", os.devnull]
    codec = make_codec("vtm:chroma=400")
    frames = np.random.default_rng(3).integers(0, 1024, size=(2, 16, 24)).astype(np.uint16)
    bs = codec.encode(frames, qp=27, bit_depth=10)
    assert "--InputChromaFormat=400" in json.loads((fake_vtm / "argv.json").read_text())
    assert bs.bits == 8 * (8 + 2 * 16 * 24 * 2)  # the fake bitstream holds the yuv file: luma only, 16-bit samples
    np.testing.assert_array_equal(codec.decode(bs), frames)  # the decoder's file is luma only as well
    make_codec("vtm").encode(frames, qp=27, bit_depth=10)
    assert not any("ChromaFormat" in a for a in json.loads((fake_vtm / "argv.json").read_text()))  # the paper's call


def test_chroma_option_is_checked_and_420_is_the_default_spec():
    assert make_codec("vtm:chroma=420").spec() == make_codec("vtm").spec() == "vtm"
    assert make_codec("vtm:chroma=400").spec() == "vtm:chroma=400"
    with pytest.raises(ValueError, match="not one of 420, 400"):
        make_codec("vtm:chroma=444")
    with pytest.raises(ValueError, match="chroma='422'"):
        vtm_encoder_command("E", "c", "i", "o", 22, 8, 8, 1, chroma="422")
