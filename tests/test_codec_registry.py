"""make_codec: spec strings and dicts, canonical spec() round trips, clear errors, the codec registry."""
import pytest

from codec import CODEC_NAMES, CODECS, Codec, make_codec
from codec.backends import VVenCCodec
from codec.backends.base import Option


def test_default_is_vvenc_random_access():
    c = make_codec()
    assert isinstance(c, VVenCCodec) and c.name == "vvenc" and c.grid == 8
    p = c.get_params()
    assert p["preset"] == "faster" and p["intra_period"] == 32 and not p["mctf"] and not p["bim"] and not p["qpa"]
    assert make_codec("vvenc").spec() == c.spec()


@pytest.mark.parametrize("name", CODEC_NAMES)
def test_every_codec_spec_round_trips(name):
    c = make_codec(name)
    assert c.name == name and isinstance(c, Codec)
    assert make_codec(c.spec()).spec() == c.spec()
    assert make_codec(c.spec()) == c


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("vvenc:preset=slow,intra_period=64,gop=16,mctf=true,bim=true,vvenc_params=MaxParallelFrames=0:IFP=1",
         {"preset": "slow", "intra_period": 64, "gop": 16, "mctf": True, "bim": True,
          "vvenc_params": "MaxParallelFrames=0:IFP=1"}),
        ("x265:preset=slow,bframes=4,chroma=400,x265_params=ref=2:rd=3",
         {"preset": "slow", "bframes": 4, "chroma": "400", "x265_params": "ref=2:rd=3"}),
        ("svtav1:preset=10,tf=1", {"preset": 10, "tf": True}),
        ("aom:cpu_used=4,chroma=400", {"cpu_used": 4, "chroma": "400"}),
        ("kvazaar:gop=16,kvazaar_params=ref=2", {"gop": 16, "kvazaar_params": "ref=2"}),
        ("vtm:encoder=/opt/vtm/EncoderApp,cfg=/opt/vtm/ra.cfg,timeout=60",
         {"encoder": "/opt/vtm/EncoderApp", "cfg": "/opt/vtm/ra.cfg", "timeout": 60.0, "decoder": None}),
    ],
)
def test_options_are_typed_and_round_trip(spec, expected):
    c = make_codec(spec)
    params = c.get_params()
    assert {k: params[k] for k in expected} == expected
    assert make_codec(c.spec()).spec() == c.spec()
    assert make_codec(c.spec()).get_params() == params


def test_values_are_typed_and_spec_is_canonical():
    a = make_codec("vvenc:mctf=yes,intra_period=64")
    b = make_codec({"name": "vvenc", "intra_period": 64, "mctf": True})
    assert a.get_params()["intra_period"] == 64 and a.get_params()["mctf"] is True
    assert a.spec() == b.spec()
    assert a.spec().startswith("vvenc:") and "intra_period=64" in a.spec() and "mctf=true" in a.spec()
    keys = [kv.split("=")[0] for kv in a.spec().split(":", 1)[1].split(",")]
    assert keys == sorted(keys)


def test_vvenc_params_string_reaches_the_command():
    c = make_codec("vvenc:vvenc_params=MaxParallelFrames=0")
    assert c.vvenc_params().endswith("MaxParallelFrames=0")
    assert "MCTF=0" in c.vvenc_params() and "BIM=0" in c.vvenc_params()
    args = c.encode_command(40, 16, 32, 27, 8)
    assert args[args.index("-period") + 1] == "32" and args[args.index("-qp") + 1] == "27"
    assert args[args.index("-qpa") + 1] == "0" and args[args.index("-preset") + 1] == "faster"
    assert args[args.index("-pix_fmt") + 1] == "yuv420p10le"


@pytest.mark.parametrize(
    "spec, match",
    [
        ("h264", "unknown codec 'h264'; valid names: vvenc, x265, svtav1, aom, kvazaar, ffv1, vtm"),
        ("vvenc:speed=3", "no option 'speed'; valid options: aud, bim, chroma, gop"),
        ("vvenc:preset=ultra", "not one of faster, fast, medium, slow, slower"),
        ("vvenc:mctf=maybe", "not a valid bool"),
        ("vvenc:intra_period=x", "not a valid int"),
        ("vvenc:bim=true", "bim=true needs mctf=true"),
        ("vvenc:intra_period=40", "multiple of gop=32"),
        ("vvenc:preset", "write name:key=value"),
        ("vvenc:gop=16,gop=32", "given twice"),
        ("x265:chroma=444", "not one of 420, 400"),
        ("svtav1:preset=20", r"must be in \[0, 13\]"),
        ("", "empty"),
    ],
)
def test_bad_specs_explain_themselves(spec, match):
    with pytest.raises(ValueError, match=match):
        make_codec(spec)


def test_dict_needs_a_name_and_instances_pass_through():
    with pytest.raises(ValueError, match="needs a 'name'"):
        make_codec({"preset": "fast"})
    c = make_codec("x265")
    assert make_codec(c) is c
    with pytest.raises(TypeError):
        make_codec(3)


# Canonical specs are part of stored cell keys: they must never change.
DEFAULT_SPECS = {
    "vvenc": "vvenc:aud=false,bim=false,gop=32,intra_period=32,mctf=false,poc0idr=true,preset=faster,qpa=false,threads=1",
    "x265": "x265:chroma=420,intra_period=32,preset=medium,threads=1",
    "svtav1": "svtav1:intra_period=32,preset=8,tf=false,threads=1",
    "aom": "aom:chroma=420,cpu_used=6,intra_period=32,tf=false,threads=1",
    "kvazaar": "kvazaar:gop=8,intra_period=32,preset=medium,threads=1",
    "ffv1": "ffv1:threads=1",
    "vtm": "vtm",
}


def test_default_specs_are_unchanged_and_every_module_registered():
    assert {name: make_codec(name).spec() for name in CODEC_NAMES} == DEFAULT_SPECS
    assert CODECS.names() == CODEC_NAMES == tuple(DEFAULT_SPECS)
    for name in CODEC_NAMES:
        cls = CODECS.get(name)
        assert cls.name == name == cls.registry_name  # the decorator's name is the class's name


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("aom:chroma=400", "aom:chroma=400,cpu_used=6,intra_period=32,tf=false,threads=1"),
        ("vtm:cfg=true,timeout=30", "vtm:cfg=true,timeout=30.0"),  # typed values written back as the spec had them
        ("vtm:encoder=/opt/vtm/EncoderApp,timeout=1.5", "vtm:encoder=/opt/vtm/EncoderApp,timeout=1.5"),
        ("x265:x265_params=ref=2:rd=3,bframes=none", "x265:chroma=420,intra_period=32,preset=medium,threads=1,"
                                                      "x265_params=ref=2:rd=3"),
        ("vvenc:threads=none,mctf=on", DEFAULT_SPECS["vvenc"].replace("mctf=false", "mctf=true")),
    ],
)
def test_typed_spec_values_give_canonical_specs(spec, expected):
    c = make_codec(spec)
    assert c.spec() == expected
    assert make_codec(c.spec()).spec() == expected


def test_none_means_the_default_option():
    assert make_codec({"name": "vvenc", "threads": None, "preset": None}).spec() == DEFAULT_SPECS["vvenc"]


def test_a_registered_backend_is_made_by_name(monkeypatch):
    monkeypatch.setattr(CODECS, "_classes", dict(CODECS._classes))
    monkeypatch.setattr(CODECS, "_aliases", dict(CODECS._aliases))

    @CODECS.register("toy", "toy-codec")
    class ToyCodec(VVenCCodec):
        name = "toy"
        OPTIONS = {**VVenCCodec.OPTIONS, "level": Option(3, int, "toy level")}

    assert ToyCodec.registry_name == "toy" and VVenCCodec.registry_name == "vvenc"
    c = make_codec("toy-codec:level=5,preset=slow")
    assert isinstance(c, ToyCodec) and c.get_params()["level"] == 5
    assert c.spec().startswith("toy:") and make_codec(c.spec()) == c
    assert make_codec({"name": "toy", "level": 5, "preset": "slow"}) == c
    with pytest.raises(ValueError, match="no option 'speed'; valid options: aud, bim, chroma, gop, intra_period, level"):
        make_codec("toy:speed=1")
    with pytest.raises(ValueError, match="valid names: vvenc, .*, vtm, toy$"):
        make_codec("h266")
