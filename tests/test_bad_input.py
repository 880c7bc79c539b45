"""Every kind of bad input gets an exception of its own type whose one-line message names the
problem and what to do, and none of them costs a finished result.

Cases: permutation files (duplicates, missing or out-of-range indices, wrong length, wrong
types, not JSON, empty), features with NaN/Inf or the wrong channel count, unreadable
images, odd frame sizes, a missing or failing codec binary, truncated bitstreams, corrupt
feature-cache entries, a corrupt results store, a corrupt saved order, an unreachable
Dask scheduler.
"""

import json
import sqlite3
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from codec import BitstreamError, CodecError, CodecNotFoundError, TemporalPacking, TiledPacking, make_codec, make_quantizer
from eval.pipeline.cache import FeatureCache
from eval.pipeline.cell import Job, check_features, code_features, run_job
from eval.data.images import Sample, image_folder, load_image
from eval.errors import FeatureError, ImageReadError
from eval.pipeline.cluster import SchedulerError
from eval.pipeline.runner import run_grid
from eval.pipeline.store import ResultStore, StoreError

from reorder.permutation import Permutation, PermutationError

#: words that start the "what to do" half of a message
ACTIONS = ("must", "use ", "give ", "write ", "check ", "fix ", "remove ", "replace ", "re-run", "set ", "delete ",
           "move ", "choose ", "encode ", "point ", "drop ", "save ", "pass ", "pack ", "add ", "unset ")


def assert_actionable(exc: BaseException, *problem: str) -> str:
    """One line that names the problem (all of ``problem``) and says what to do."""
    msg = str(exc)
    assert "\n" not in msg, msg
    for word in problem:
        assert word in msg, f"{word!r} not in {msg!r}"
    assert any(a in msg for a in ACTIONS), f"no advice in {msg!r}"
    return msg


def stored(path: Path) -> dict:
    """key -> row text, straight from the SQLite file."""
    con = sqlite3.connect(path)
    try:
        return dict(con.execute("SELECT key, row FROM results"))
    finally:
        con.close()


@pytest.fixture
def store_with_result(tmp_path):
    """A results store holding one finished row that no failure may touch."""
    path = tmp_path / "results.sqlite"
    with ResultStore(path) as store:
        store.put({"key": "finished", "status": "ok", "bits": 1234, "feature_psnr": 41.5})
    return path


# --------------------------------------------------------------------------- permutation files

KINDS = ["duplicate", "out_of_range", "negative", "too_short", "too_long", "float", "string", "bool", "nested"]
PROBLEM = {
    "duplicate": ("appears",), "out_of_range": ("out of range",), "negative": ("out of range",),
    "too_short": ("entries", "channels"), "too_long": ("entries", "channels"), "float": ("not an integer",),
    "string": ("not an integer",), "bool": ("not an integer",), "nested": ("nested",),
}


@st.composite
def broken_orders(draw):
    n = draw(st.integers(2, 40))
    order = list(draw(st.permutations(range(n))))
    kind = draw(st.sampled_from(KINDS))
    i, j = draw(st.integers(0, n - 1)), draw(st.integers(0, n - 2))
    j = j if j < i else j + 1  # j != i
    if kind == "duplicate":
        order[i] = order[j]
    elif kind == "out_of_range":
        order[i] = n + draw(st.integers(0, 1000))
    elif kind == "negative":
        order[i] = -draw(st.integers(1, 1000))
    elif kind == "too_short":
        del order[i]
    elif kind == "too_long":
        order.append(n + draw(st.integers(0, 5)))
    elif kind == "float":
        order[i] = order[i] + 0.5
    elif kind == "string":
        order[i] = draw(st.sampled_from(["a", "3x", "", "one"]))
    elif kind == "bool":
        order[i] = True
    elif kind == "nested":
        order = [order[:i + 1], order[i + 1:]]
    # only whole numbers can be written as plain text without becoming another kind of file
    plain = all(isinstance(v, int) and not isinstance(v, bool) for v in order)
    form = draw(st.sampled_from(["object", "list", "text"] if plain else ["object", "list"]))
    return n, kind, order, form


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=broken_orders())
def test_broken_order_files_are_refused_with_advice(tmp_path, case):
    n, kind, order, form = case
    path = tmp_path / f"order.{'txt' if form == 'text' else 'json'}"
    if form == "object":
        path.write_text(json.dumps({"format": "fcm-channel-order", "version": 1, "order": order}))
    elif form == "list":
        path.write_text(json.dumps(order))
    else:
        path.write_text("\n".join(" ".join(str(v) for v in order[k:k + 7]) for k in range(0, len(order), 7)))
    with pytest.raises(PermutationError) as info:
        Permutation.load(path, n_channels=n)
    assert_actionable(info.value, str(path), *PROBLEM[kind])


@pytest.mark.parametrize(
    "content, problem",
    [
        ("", "is empty"),
        ("   \n\n", "is empty"),
        ("[0, 1, 2,", "not valid JSON"),
        ('{"format": "fcm-channel-order"}', "no 'order'"),
        ('{"format": "something-else", "order": [0, 1, 2]}', "format 'something-else'"),
        ('{"order": "0 1 2"}', "must be a JSON list"),
        ('{"n_channels": 4, "order": [0, 1, 2]}', "declares n_channels=4"),
        ("0 1 two", "'two', not an integer"),
        (b"\xff\xfe\x00\x81", "not UTF-8"),
    ],
)
def test_unreadable_order_files_are_refused_with_advice(tmp_path, content, problem):
    path = tmp_path / "order.json"
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(PermutationError) as info:
        Permutation.load(path, n_channels=3)
    assert_actionable(info.value, str(path), problem)


def test_missing_order_file_is_refused(tmp_path):
    with pytest.raises(PermutationError) as info:
        Permutation.load(tmp_path / "nope.json")
    assert_actionable(info.value, "nope.json", "does not exist")


# --------------------------------------------------------------------------- features


def fake_job(feature_path: Path, order=(0, 1, 2), key: str = "img") -> Job:
    return Job(
        image_id=key, image_key=key, feature_path=str(feature_path), reference_path=str(feature_path) + ".npz",
        meta={"pixels": 64}, order_name="identity", order=tuple(order), quantizer={"name": "log"},
        packing="temporal", codec="ffv1", qp=22, model={"name": "mobilenet_v2"},
    )


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_features_are_refused(bad):
    x = np.ones((3, 4, 4), np.float32)
    x[1, 2, 3] = bad
    with pytest.raises(FeatureError) as info:
        check_features(x, 3, where="img.npy")
    assert_actionable(info.value, "img.npy", "1 NaN/Inf", "recompute")


def test_features_of_the_wrong_channel_count_are_refused():
    with pytest.raises(FeatureError) as info:
        check_features(np.ones((4, 2, 2), np.float32), 3, where="img.npy")
    assert_actionable(info.value, "4 channels", "3 entries", "learned for this model")
    with pytest.raises(FeatureError) as info:
        check_features(np.ones((4, 2), np.float32), 3)
    assert_actionable(info.value, "[C,H,W]", "shape (4, 2)")


def test_bad_features_become_error_rows_and_keep_finished_results(tmp_path, store_with_result):
    nan = np.ones((3, 4, 4), np.float32)
    nan[0, 0, 0] = np.nan
    np.save(tmp_path / "nan.npy", nan)
    np.save(tmp_path / "four.npy", np.ones((4, 4, 4), np.float32))
    jobs = [fake_job(tmp_path / "nan.npy", key="nan"), fake_job(tmp_path / "four.npy", key="four")]
    before = stored(store_with_result)
    with ResultStore(store_with_result) as store:
        summary = run_grid(jobs, store, max_attempts=1, progress=False, fn=run_job)
        errors = {r["image_id"]: r["error"] for r in store.rows(status="error")}
    assert summary.failed == 2 and summary.finished == 0
    assert errors["nan"].startswith("FeatureError:") and "NaN/Inf" in errors["nan"]
    assert errors["four"].startswith("FeatureError:") and "4 channels but the channel order has 3" in errors["four"]
    after = stored(store_with_result)
    assert after["finished"] == before["finished"]


def test_permutation_on_features_of_another_model_is_refused():
    perm = Permutation(np.array([2, 0, 1]))
    with pytest.raises(PermutationError) as info:
        perm.apply(np.ones((5, 2, 2), np.float32))
    assert_actionable(info.value, "(5, 2, 2)", "3-channel order")


# --------------------------------------------------------------------------- images


@pytest.mark.parametrize(
    "name, content, problem",
    [
        ("text.png", b"hello, not pixels", "not an image file"),
        ("cut.png", None, "cannot decode"),  # a real PNG cut in half
        ("empty.jpg", b"", "not an image file"),
    ],
)
def test_unreadable_images_name_the_file(tmp_path, name, content, problem):
    path = tmp_path / name
    if content is None:
        from PIL import Image

        buf = tmp_path / "full.png"
        Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf)
        content = buf.read_bytes()[:400]
    path.write_bytes(content)
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    assert_actionable(info.value, str(path), problem)
    # in a folder, the bad file is listed and only fails when loaded, naming itself
    sample = next(s for s in image_folder(tmp_path) if s.id == name)
    with pytest.raises(ImageReadError, match=name):
        sample.load()


def test_missing_image_and_directory_are_refused(tmp_path):
    with pytest.raises(ImageReadError) as info:
        load_image(tmp_path / "gone.png")
    assert_actionable(info.value, "gone.png", "no such file")
    with pytest.raises(ImageReadError) as info:
        load_image(tmp_path)
    assert_actionable(info.value, "is a directory")


# --------------------------------------------------------------------------- frame sizes and codecs


@settings(max_examples=12, deadline=None)
@given(c=st.integers(1, 4), h=st.integers(1, 21), w=st.integers(1, 21), tiled=st.booleans())
def test_odd_feature_sizes_survive_packing_and_a_real_codec(c, h, w, tiled):
    """Any H x W is padded to the codec grid and cut back exactly (lossless FFV1 on the padded frames)."""
    codes = np.random.default_rng(h * 100 + w).integers(0, 256, size=(c, h, w)).astype(np.uint16)
    packing = TiledPacking() if tiled else TemporalPacking()
    codec = make_codec("ffv1")
    frames = packing.pack(codes, 8)
    assert frames.shape[1] % 8 == 0 and frames.shape[2] % 8 == 0
    decoded = codec.decode(codec.encode(frames.astype(np.uint8), qp=22, bit_depth=8))
    np.testing.assert_array_equal(packing.unpack(decoded, codes.shape), codes)


def test_odd_frame_size_through_vvenc():
    yy, xx = np.mgrid[0:13, 0:17]
    x = np.stack([np.sin(yy / 3 + k) + np.cos(xx / 4) + 2 for k in range(6)]).astype(np.float32)
    q = make_quantizer("uniform").fit([x])
    result = code_features(x, Permutation(np.arange(6)[::-1].copy()), q, TemporalPacking(), make_codec("vvenc"), qp=22)
    assert result.reconstruction.shape == (6, 13, 17) and result.bits > 0
    err = np.abs(result.reconstruction - x)
    assert err.mean() < 0.05 and err.max() < 0.3  # coded at qp 22, not scrambled by the padding
    with pytest.raises(ValueError) as info:  # unpadded odd frames straight into the codec
        make_codec("vvenc").encode(np.zeros((2, 13, 17), np.uint8), qp=22)
    assert_actionable(info.value, "multiples of 8", "13x17", "pack")


def smooth_frames(n=4, h=32, w=48):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([(yy * 3 + xx * 2 + 5 * i) % 256 for i in range(n)]).astype(np.uint8)


def test_missing_codec_binary(monkeypatch, tmp_path):
    monkeypatch.setenv("FCM_FFMPEG", "/nonexistent/ffmpeg")
    with pytest.raises(CodecNotFoundError) as info:
        make_codec("vvenc").encode(smooth_frames(), qp=32)
    assert_actionable(info.value, "FCM_FFMPEG", "/nonexistent/ffmpeg", "not an executable file")


def fake_ffmpeg(tmp_path: Path, list_ok: bool) -> Path:
    """A stand-in ffmpeg that fails (exit 1, an error on stderr); optionally it can list its encoders."""
    script = tmp_path / "ffmpeg"
    script.write_text(
        f"#!{sys.executable}\n"
        "import sys\n"
        f"if {list_ok!r} and sys.argv[-1] in ('-encoders', '-decoders'):\n"
        "    print(' ------')\n    print(' V..... libvvenc x')\n    print(' V..... vvc x')\n    sys.exit(0)\n"
        "sys.stderr.write('fake ffmpeg: segmentation fault in the encoder\\n')\n"
        "sys.exit(1)\n"
    )
    script.chmod(0o755)
    return script


def test_failing_codec_binary_reports_its_log(monkeypatch, tmp_path):
    monkeypatch.setenv("FCM_FFMPEG", str(fake_ffmpeg(tmp_path, list_ok=False)))
    with pytest.raises(CodecError) as info:
        make_codec("vvenc").encode(smooth_frames(), qp=32)
    assert_actionable(info.value, "failed", "exit 1", "segmentation fault", "FCM_FFMPEG")
    assert "segmentation fault" in info.value.log


def test_codec_binary_that_fails_to_encode_reports_its_log(monkeypatch, tmp_path):
    (tmp_path / "b").mkdir()
    monkeypatch.setenv("FCM_FFMPEG", str(fake_ffmpeg(tmp_path / "b", list_ok=True)))
    with pytest.raises(CodecError) as info:
        make_codec("vvenc").encode(smooth_frames(), qp=32)
    msg = str(info.value)
    assert not isinstance(info.value, BitstreamError)
    assert "vvenc encode" in msg and "exit 1" in msg and "segmentation fault" in msg and "\n" not in msg


@pytest.mark.parametrize("cut", ["half", "ten_bytes", "garbage", "empty"])
def test_truncated_or_corrupt_bitstreams(cut):
    import dataclasses

    codec = make_codec("vvenc")
    bs = codec.encode(smooth_frames(), qp=32)
    data = {"half": bs.data[: len(bs.data) // 2], "ten_bytes": bs.data[:10], "empty": b"",
            "garbage": np.random.default_rng(1).integers(0, 256, 400).astype(np.uint8).tobytes()}[cut]
    with pytest.raises(BitstreamError) as info:
        codec.decode(dataclasses.replace(bs, data=data))
    assert_actionable(info.value, "vvenc decode", "encode the features again")
    if cut != "empty":
        assert "truncated, corrupt" in str(info.value) or "truncated or corrupt" in str(info.value)


# --------------------------------------------------------------------------- caches and stores


class FakeAdapter:
    """Just enough of a model adapter for the feature cache; counts head calls."""

    name, layer, n_channels = "fake", "layer", 3

    def __init__(self):
        self.calls = 0

    def identity(self) -> str:
        return "fake-model-v1"

    def head(self, image):
        self.calls += 1
        return np.full((3, 2, 2), float(image.mean()), np.float32), {"pixels": int(image.shape[0] * image.shape[1])}


@pytest.mark.parametrize("damage", ["truncate_npy", "garbage_json", "nan_npy", "wrong_shape", "delete_npy"])
def test_corrupt_feature_cache_entry_is_recomputed_and_results_untouched(tmp_path, store_with_result, damage):
    cache, adapter = FeatureCache(tmp_path / "cache"), FakeAdapter()
    sample = Sample("img", None, image=np.full((4, 4, 3), 7, np.uint8))
    entry = cache.entry(adapter, sample)
    good = entry.load().copy()
    before = stored(store_with_result)
    if damage == "truncate_npy":
        entry.features_path.write_bytes(entry.features_path.read_bytes()[:40])
    elif damage == "garbage_json":
        entry.meta_path.write_text("{not json")
    elif damage == "nan_npy":
        np.save(entry.features_path, np.full((3, 2, 2), np.nan, np.float32))
    elif damage == "wrong_shape":
        np.save(entry.features_path, np.ones((5, 2, 2), np.float32))
    else:
        entry.features_path.unlink()
    with pytest.warns(RuntimeWarning, match="corrupt .*recomputing"):
        again = cache.entry(adapter, sample)
    assert adapter.calls == 2
    np.testing.assert_array_equal(again.load(), good)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # repaired: read back without a warning
        cache.entry(adapter, sample)
    assert adapter.calls == 2
    assert stored(store_with_result) == before


@pytest.mark.parametrize("damage", ["garbage", "malformed_pages", "directory", "foreign_table", "bad_row_json"])
def test_corrupt_results_store(tmp_path, damage):
    path = tmp_path / "results.sqlite"
    if damage == "garbage":
        path.write_bytes(b"not a database at all " * 200)
    elif damage == "directory":
        path.mkdir()
    elif damage == "foreign_table":
        con = sqlite3.connect(path)
        con.execute("CREATE TABLE results (id INTEGER, value TEXT)")
        con.commit()
        con.close()
    else:
        with ResultStore(path) as store:
            for i in range(600):
                store.put({"key": f"k{i}", "status": "ok", "pad": "x" * 300})
        if damage == "bad_row_json":
            con = sqlite3.connect(path)
            con.execute("UPDATE results SET row='{broken' WHERE key='k3'")
            con.commit()
            con.close()
        else:
            data = bytearray(path.read_bytes())
            for off in range(8192, len(data) - 4096, 3 * 4096):
                data[off:off + 64] = b"\xff" * 64
            path.write_bytes(bytes(data))
    with pytest.raises(StoreError) as info:
        with ResultStore(path) as store:
            store.finished_keys()
            store.rows()
    problem = {"garbage": "not a readable SQLite file", "malformed_pages": "not a readable SQLite file",
               "directory": "is a directory", "foreign_table": "another program",
               "bad_row_json": "not valid JSON"}[damage]
    assert_actionable(info.value, str(path), problem)


def test_saved_order_that_is_corrupt_is_learned_again(tmp_path):
    from eval.pipeline.features import FeatureRef, FeatureSet
    from eval.pipeline.orders import learn_orders
    from eval.study_folder import OrderFolder

    rng = np.random.default_rng(0)
    refs = []
    for i in range(3):
        p = tmp_path / f"f{i}.npy"
        np.save(p, rng.random((8, 6, 6), dtype=np.float32))
        refs.append(FeatureRef(f"img{i}", f"key{i}", str(p), {"pixels": 576, "shape": [8, 6, 6]}))
    calib = FeatureSet(refs)
    out = tmp_path / "orders"
    first = learn_orders(["tsp-correlation"], calib, OrderFolder(out), {"model": "fake"}, progress=False)
    saved = out / "tsp-correlation.json"
    for damage in ["{ not json", json.dumps({"format": "fcm-channel-order", "order": [0, 0, 1]}), ""]:
        saved.write_text(damage)
        with pytest.warns(RuntimeWarning, match=r"saved order .*tsp-correlation\.json is unusable .*learning it again"):
            again = learn_orders(["tsp-correlation"], calib, OrderFolder(out), {"model": "fake"}, progress=False)
        np.testing.assert_array_equal(again["tsp-correlation"].order, first["tsp-correlation"].order)
        assert Permutation.load(saved, n_channels=8).digest() == first["tsp-correlation"].digest()  # repaired on disk


# --------------------------------------------------------------------------- cluster


def test_unreachable_scheduler_fails_fast_and_keeps_results(tmp_path, store_with_result):
    before = stored(store_with_result)
    job = fake_job(tmp_path / "x.npy")
    with ResultStore(store_with_result) as store, pytest.raises(SchedulerError) as info:
        run_grid([job], store, scheduler="tcp://127.0.0.1:1", scheduler_timeout=1.5, progress=False, fn=run_job)
    assert_actionable(info.value, "tcp://127.0.0.1:1", "cannot reach Dask scheduler", "refused", "scheduler address")
    assert stored(store_with_result) == before


def test_malformed_scheduler_address_is_a_scheduler_error(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as store, pytest.raises(SchedulerError) as info:
        run_grid([fake_job(tmp_path / "x.npy")], store, scheduler="not a scheduler::", scheduler_timeout=1, progress=False)
    assert_actionable(info.value, "not a scheduler::", "not a Dask scheduler address", "tcp://HOST:8786")
