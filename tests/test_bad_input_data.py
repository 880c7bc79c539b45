"""Bad input data that used to pass without a word or end in a traceback: an image too large to
decode, a feature cache that cannot be written (read-only, disk full), rows that depended on the
worker count, an image too small for the model, a JPEG damaged in the middle.

Each ends in one line naming the input and what to do (an exception of the package's own type),
or a warning kept for summary.json, or the same result whatever ran it. Disk full and read-only
folders are real file systems (a small or read-only tmpfs) where the machine lets the test mount
one (root with mount rights), else a permission-denied folder (not root) or a write patched to fail
with the same errno.
"""

import contextlib
import csv
import errno
import json
import os
import shutil
import struct
import subprocess
import sys
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from eval.data.images import ENV_MAX_IMAGE_PIXELS, Sample, default_split, image_folder, image_warnings, load_image
from eval.errors import ImageReadError, StorageError
from eval.models.base import ModelAdapter
from eval.pipeline import cache as cache_module
from eval.pipeline.cache import FeatureCache
from eval.pipeline.features import FeatureRef, FeatureSet, prepare_features, prepare_references

ROOT = Path(__file__).resolve().parents[1]


def one_line(exc: BaseException, *words: str) -> str:
    """The message is one line and holds every one of ``words`` (the input, the problem, the advice)."""
    msg = str(exc)
    assert "\n" not in msg, msg
    for word in words:
        assert word in msg, f"{word!r} not in {msg!r}"
    return msg


def write_blank_png(path: Path, width: int, height: int) -> Path:
    """A valid black grey PNG written row by row: 14000 x 13000 is 177 KB on disk, 182 M pixels decoded."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    z = zlib.compressobj(9)
    row = bytes(width + 1)  # filter type 0, then the row's grey values
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
    return path


# --------------------------------------------------------------------------- an image too large to decode


def test_huge_png_is_refused_from_its_header_naming_file_size_and_way_out(tmp_path, monkeypatch):
    path = write_blank_png(tmp_path / "huge.png", 14000, 13000)
    assert path.stat().st_size < 1_000_000  # a decompression bomb: tiny file, 546 MB of pixels

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(ImageFile.ImageFile, "load", no_decoding)  # refused before any pixel is decoded
    pillow_limit = Image.MAX_IMAGE_PIXELS
    with pytest.raises(ImageReadError) as info:
        load_image(path)
    one_line(info.value, str(path), "14000x13000", "182,000,000 pixels", "178,956,970", "resize it",
             f"{ENV_MAX_IMAGE_PIXELS}=182000000")
    assert Image.MAX_IMAGE_PIXELS == pillow_limit  # Pillow's own setting is as it was


def test_pixel_limit_is_one_threshold_without_warnings_and_the_environment_moves_it(tmp_path, monkeypatch):
    # Pillow's limit scaled down so that small files stand for huge ones: Pillow itself would warn
    # above 100 pixels and refuse above 200; load_image has one limit (200), without a warning below it
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 100)
    monkeypatch.delenv(ENV_MAX_IMAGE_PIXELS, raising=False)
    below, above = write_blank_png(tmp_path / "a.png", 12, 12), write_blank_png(tmp_path / "b.png", 15, 15)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert load_image(below).shape == (12, 12, 3)
    with pytest.raises(ImageReadError) as info:
        load_image(above)
    one_line(info.value, str(above), "15x15", "225 pixels", "the 200 pixels")
    monkeypatch.setenv(ENV_MAX_IMAGE_PIXELS, "225")
    assert load_image(above).shape == (15, 15, 3)
    monkeypatch.setenv(ENV_MAX_IMAGE_PIXELS, "224")
    with pytest.raises(ImageReadError, match="224 pixels"):
        load_image(above)
    for bad in ("lots", "0", "-5"):
        monkeypatch.setenv(ENV_MAX_IMAGE_PIXELS, bad)
        with pytest.raises(ImageReadError) as info:
            load_image(below)
        one_line(info.value, ENV_MAX_IMAGE_PIXELS, repr(bad), "unset it")
    assert Image.MAX_IMAGE_PIXELS == 100


# --------------------------------------------------------------------------- a feature cache that cannot be written


class FakeAdapter(ModelAdapter):
    """A head of a chosen output shape, counting its calls; the base class's image-size check."""

    name, layer, n_channels, task = "fake", "x", None, None

    def __init__(self, shape=(3, 2, 2), min_image_side: int = 1):
        self.shape, self.min_image_side, self.calls = tuple(shape), int(min_image_side), 0

    def identity(self) -> str:
        return f"fake-model-v1-{self.shape}"

    def head(self, image):
        self.calls += 1
        return np.full(self.shape, float(image.mean()), np.float32), {"pixels": int(image.shape[0] * image.shape[1])}

    def tail(self, features, meta):
        return np.asarray(features).mean(axis=(1, 2))


def photo(i: int = 7) -> Sample:
    return Sample(f"img{i}", None, image=np.full((4, 4, 3), i, np.uint8))


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def _can_mount() -> bool:
    return sys.platform.startswith("linux") and hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount") is not None


@contextlib.contextmanager
def tmpfs(folder: Path, options: str):
    """A tmpfs mounted on ``folder`` for the block; None where this machine does not allow it."""
    folder.mkdir(parents=True, exist_ok=True)
    if not _can_mount() or subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)],
                                          capture_output=True).returncode != 0:
        yield None
        return
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@contextlib.contextmanager
def unwritable_folder(tmp_path: Path, monkeypatch):
    """An empty folder nothing can be written in: a read-only tmpfs (root), a mode 555 folder (not root),
    else writes patched to fail with EROFS; yields (folder, how)."""
    folder = tmp_path / "cache"
    with tmpfs(folder, "ro,size=64k") as mounted:
        if mounted is not None:
            yield folder, "read-only tmpfs"
            return
        if os.geteuid() != 0:
            folder.chmod(0o555)
            try:
                yield folder, "mode 555"
            finally:
                folder.chmod(0o755)
            return

        def read_only(*args, **kwargs):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(folder))

        monkeypatch.setattr(cache_module, "atomic_save_npy", read_only)
        yield folder, "patched"


def test_unwritable_cache_folder_is_one_line_and_holds_nothing(tmp_path, monkeypatch):
    with unwritable_folder(tmp_path, monkeypatch) as (folder, how):
        cache = FeatureCache(folder)
        with pytest.raises(StorageError) as info:
            cache.entry(FakeAdapter(), photo())
        one_line(info.value, f"cannot write the feature cache in {folder}", "make it writable", "(cache_dir)")
        assert info.value.errno in (errno.EROFS, errno.EACCES, errno.EPERM), how
        assert files_under(folder) == []


# "features": the array does not fit; "record": it fits exactly (16 pages of a 64 KiB tmpfs) and the
# JSON record that marks the entry complete does not, so the written array must be taken away again
FULL_CASES = {"features": (144, 40, 40), "record": (4, 8, 511)}


@contextlib.contextmanager
def full_disk(tmp_path: Path, monkeypatch, real: bool, case: str):
    """A 64 KiB file system for the cache (``real``, where this machine lets the tests mount one: root with mount
    rights), else the write of ``case``'s file patched to fail with ENOSPC (the fallback keeps the case running
    where no tmpfs can be mounted, instead of skipping it)."""
    folder = tmp_path / "small"
    if real:
        with tmpfs(folder, "size=64k") as mounted:
            if mounted is not None:
                yield folder
                return
    folder.mkdir(exist_ok=True)
    name = "atomic_save_npy" if case == "features" else "atomic_write_text"
    real_write = getattr(cache_module, name)

    def no_space(path, *args, **kwargs):
        if Path(path).is_relative_to(folder):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_write(path, *args, **kwargs)

    monkeypatch.setattr(cache_module, name, no_space)
    yield folder


@pytest.mark.parametrize("real", [True, False], ids=["tmpfs", "patched"])
@pytest.mark.parametrize("case", sorted(FULL_CASES))
def test_full_disk_while_caching_is_one_line_and_leaves_no_partial_entry(tmp_path, monkeypatch, real, case):
    adapter = FakeAdapter(FULL_CASES[case])
    with full_disk(tmp_path, monkeypatch, real, case) as folder:
        with pytest.raises(StorageError) as info:
            FeatureCache(folder).entry(adapter, photo())
        one_line(info.value, f"cannot write the feature cache in {folder}", "no space left", "free space", "(cache_dir)")
        assert info.value.errno == errno.ENOSPC
        assert files_under(folder) == []  # no array without its record, no temporary file, no empty folder
    # with room again, the same call makes the whole entry
    entry = FeatureCache(tmp_path / "roomy").entry(adapter, photo())
    assert entry.load().shape == FULL_CASES[case]


def test_full_disk_while_writing_a_reference_keeps_the_cached_features(tmp_path, monkeypatch):
    adapter, cache = FakeAdapter(), FeatureCache(tmp_path / "cache")
    features = prepare_features(adapter, [photo()], cache, progress=False)
    before = files_under(tmp_path / "cache")

    def no_space(path, value):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr("eval.pipeline.features.save_arrays", no_space)
    with pytest.raises(StorageError) as info:
        prepare_references(adapter, features, progress=False)
    one_line(info.value, str(tmp_path / "cache"), "no space left", "cache_dir")
    assert files_under(tmp_path / "cache") == before  # the features stay, no reference file
    assert cache.contains(adapter, photo())


# --------------------------------------------------------------------------- rows independent of the worker count


@pytest.fixture(scope="module")
def one_cell(tmp_path_factory):
    """One real MobileNetV2 cell (lossless FFV1 after the lossy 8-bit quantizer, so the tail sees other
    features than the reference) and its reference, computed at 3 torch threads."""
    import torch

    from codec import make_quantizer
    from eval.models import make_model
    from eval.pipeline.cell import make_jobs
    from eval.pipeline.cell_process import torch_threads, use_adapter

    tmp = tmp_path_factory.mktemp("cell")
    spec = {"name": "mobilenet_v2", "kwargs": {"short_side": 160}}
    adapter = make_model(spec["name"], **spec["kwargs"])
    use_adapter(spec, adapter)
    sample = [s for s in default_split()[1] if s.id == "astronaut"]
    with torch_threads(3):
        features = prepare_features(adapter, sample, FeatureCache(tmp / "cache"), progress=False)
        references = prepare_references(adapter, features, progress=False)
    quantizer = make_quantizer("log").fit(features)
    job = make_jobs(features, references, {"identity": np.arange(144)}, quantizer.to_dict(), "ffv1", [0], spec)[0]
    before = torch.get_num_threads()
    yield adapter, features, references, job
    torch.set_num_threads(before)


def test_cell_rows_do_not_depend_on_the_threads_of_the_process_that_runs_them(one_cell):
    """Inline cells run in the study's own process (all cores), a worker's on one thread: the same row."""
    import torch

    from eval.pipeline.cell import run_job
    from eval.pipeline.cell_process import torch_threads

    _, _, _, job = one_cell
    rows = {}
    for n in (3, 1, 2):
        with torch_threads(n):
            rows[n] = run_job(job, single_thread=False)  # inline: the process keeps its own thread count
            assert torch.get_num_threads() == n
    assert all(r["status"] == "ok" for r in rows.values()), rows
    assert rows[3]["task_stats"]["kl_sum"] > 0  # the tail saw other features than the reference's
    assert rows[1]["task_stats"] == rows[2]["task_stats"] == rows[3]["task_stats"]


def test_reference_tail_does_not_depend_on_the_threads_of_the_process(one_cell, tmp_path):
    from eval.pipeline.cache import load_arrays
    from eval.pipeline.cell_process import torch_threads

    adapter, features, references, _ = one_cell
    ref = features.refs[0]
    copy = tmp_path / Path(ref.path).name
    shutil.copy(ref.path, copy)
    again = FeatureSet([FeatureRef(ref.sample_id, ref.key, str(copy), ref.meta)])
    with torch_threads(1):
        one = prepare_references(adapter, again, progress=False)
    np.testing.assert_array_equal(load_arrays(one[ref.sample_id]), load_arrays(references[ref.sample_id]))


# --------------------------------------------------------------------------- an image too small for the model


@pytest.mark.parametrize("size", [(1, 1), (31, 200), (200, 31)])
def test_image_smaller_than_the_model_needs_is_refused_naming_it(tmp_path, size):
    adapter = FakeAdapter(min_image_side=32)
    path = tmp_path / "tiny.png"
    Image.new("RGB", (size[1], size[0]), (120, 30, 200)).save(path)
    with pytest.raises(ImageReadError) as info:
        FeatureCache(tmp_path / "cache").entry(adapter, Sample("tiny.png", str(path)))
    one_line(info.value, "'tiny.png'", str(path), f"{size[1]}x{size[0]} px", "at least 32 px", "use a larger image")
    assert adapter.calls == 0 and files_under(tmp_path / "cache") == []


def test_smallest_accepted_image_and_cached_entries_of_smaller_ones(tmp_path):
    cache = FeatureCache(tmp_path / "cache")
    ok = Sample("ok", None, image=np.zeros((32, 40, 3), np.uint8))
    assert cache.entry(FakeAdapter(min_image_side=32), ok).meta["pixels"] == 32 * 40
    tiny = Sample("tiny", None, image=np.zeros((2, 2, 3), np.uint8))
    cache.entry(FakeAdapter(min_image_side=1), tiny)  # an entry made when nothing was checked
    with pytest.raises(ImageReadError, match="'tiny'.*2x2 px"):
        cache.entry(FakeAdapter(min_image_side=32), tiny)  # same model identity: refused from the cache too


def test_embedded_model_refuses_a_one_pixel_image(tmp_path):
    from eval.models import make_model

    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.new("RGB", (1, 1), (120, 30, 200)).save(folder / "dot.png")
    adapter = make_model("mobilenet_v2", short_side=160)
    with pytest.raises(ImageReadError) as info:
        prepare_features(adapter, image_folder(folder), FeatureCache(tmp_path / "cache"), progress=False)
    one_line(info.value, str(folder / "dot.png"), "1x1 px", "mobilenet_v2", "at least 32 px")


# --------------------------------------------------------------------------- a JPEG damaged in the middle


def bundled_jpeg() -> bytes:
    return Path([s.path for s in default_split()[1] if s.id == "rocket"][0]).read_bytes()


def damaged(data: bytes, how: str) -> bytes:
    """``data`` with its entropy-coded data damaged halfway through the scan."""
    d = bytearray(data)
    mid = (data.index(b"\xff\xda") + len(data)) // 2
    if how == "random":
        d[mid:mid + 64] = np.random.default_rng(0).integers(0, 256, 64, dtype=np.uint8).tobytes()
    elif how == "zeros":
        d[mid:mid + 2000] = bytes(2000)
    elif how == "bitflip":
        d[mid] ^= 0x10
    elif how == "cut":
        del d[mid:mid + 5000]
    return bytes(d)


@pytest.mark.parametrize("how", ["random", "zeros", "bitflip", "cut"])
def test_damaged_jpeg_decodes_but_is_reported(tmp_path, how):
    path = tmp_path / "rocket.jpg"
    path.write_bytes(damaged(bundled_jpeg(), how))
    assert load_image(path).shape == (427, 640, 3)  # Pillow decodes it without a word
    found = image_warnings(path)
    assert len(found) == 1
    one_line(found[0], str(path), "JPEG data is damaged", "replace the file")


def test_intact_images_get_no_warning(tmp_path):
    from eval.data.images import other_photos, sample_photos

    photo_ = Image.open(Path([s.path for s in default_split()[1] if s.id == "rocket"][0])).convert("RGB")
    variants = {"progressive": dict(progressive=True), "restart": dict(restart_marker_blocks=4),
                "q95_444": dict(quality=95, subsampling=0)}
    paths = [Path(s.path) for s in sample_photos(include_grey=True) + other_photos()]  # JPEG and PNG photos
    for name, options in variants.items():
        photo_.save(tmp_path / f"{name}.jpg", **options)
        paths.append(tmp_path / f"{name}.jpg")
    photo_.convert("CMYK").save(tmp_path / "cmyk.jpg")
    Image.new("RGB", (1, 1)).save(tmp_path / "one.jpg")
    paths += [tmp_path / "cmyk.jpg", tmp_path / "one.jpg"]
    assert {p.name: image_warnings(p) for p in paths} == {p.name: [] for p in paths}


def test_jpeg_warning_is_kept_in_the_feature_cache_for_the_study(tmp_path, monkeypatch):
    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "bad.jpg").write_bytes(damaged(bundled_jpeg(), "random"))
    Image.new("RGB", (40, 40), (10, 200, 30)).save(folder / "good.png")
    adapter, cache = FakeAdapter(), FeatureCache(tmp_path / "cache")
    first = prepare_features(adapter, image_folder(folder), cache, progress=False)
    assert len(first.warnings()) == 1 and str(folder / "bad.jpg") in first.warnings()[0]
    assert [r.warnings != () for r in first.refs] == [True, False]
    monkeypatch.setattr(cache_module, "_file_warnings", lambda sample: pytest.fail("looked at the file again"))
    again = prepare_features(adapter, image_folder(folder), cache, progress=False)  # from the cache: no second look
    assert adapter.calls == 2 and again.warnings() == first.warnings() and again[0:1].warnings() == first.warnings()
    monkeypatch.undo()
    # an entry made before files were checked has no "warnings": the file is checked when it is read
    for record in (tmp_path / "cache").rglob("*.json"):
        data = json.loads(record.read_text())
        del data["warnings"]
        record.write_text(json.dumps(data))
    assert prepare_features(adapter, image_folder(folder), cache, progress=False).warnings() == first.warnings()


def test_without_ffmpeg_jpegs_are_not_checked_and_load_as_before(tmp_path, monkeypatch):
    path = tmp_path / "bad.jpg"
    path.write_bytes(damaged(bundled_jpeg(), "random"))
    monkeypatch.setenv("FCM_FFMPEG", str(tmp_path / "no-ffmpeg-here"))
    assert image_warnings(path) == []
    assert load_image(path).shape == (427, 640, 3)


# --------------------------------------------------------------------------- the study, end to end


def study(*extra, workers=1, orders=("identity", "tsp-correlation")):
    """The issue's tiny grid: 2 calibration and 2 test images at a 160 px short side, QP 27 and 37."""
    args = ["--model-arg", "short_side=160", "--limit", "2", "--orders", *orders, "--no-bundled-orders",
            "--compare-quantizers", "none", "--qps", "27", "37", "--quiet", "--workers", str(workers), *extra]
    return subprocess.run([sys.executable, "-m", "studies.search_order", *args], cwd=ROOT, capture_output=True,
                          text=True, timeout=900)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["huge.png", "dot.png"])
def test_study_stops_with_one_line_before_coding_an_unusable_image(tmp_path, name):
    folder = tmp_path / "test"
    folder.mkdir()
    shutil.copy([s.path for s in default_split()[1] if s.id == "chelsea"][0], folder / "chelsea.png")
    if name == "huge.png":
        write_blank_png(folder / name, 14000, 13000)
    else:
        Image.new("RGB", (1, 1), (120, 30, 200)).save(folder / name)
    out = tmp_path / "out"
    proc = study("--test", str(folder), "--out", str(out), "--cache-dir", str(tmp_path / "cache"))
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    last = [ln for ln in proc.stderr.splitlines() if ln.strip()][-1]
    assert last.startswith("error: ") and str(folder / name) in last
    assert not (out / "results.sqlite").exists()  # nothing was coded


@pytest.mark.slow
def test_study_rows_are_the_same_with_one_worker_and_with_two(tmp_path):
    cache = tmp_path / "cache"
    rows = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        proc = study("--out", str(out), "--cache-dir", str(cache), workers=workers, orders=("identity",))
        assert proc.returncode == 0, proc.stderr[-2000:]
        with open(out / "results.csv", newline="") as f:
            rows[workers] = {r["key"]: r for r in csv.DictReader(f)}
    assert rows[1].keys() == rows[2].keys() and len(rows[1]) == 8  # 2 images x 2 QPs: identity, and MPEG's anchor
    for key, row in rows[1].items():
        other = rows[2][key]
        assert (row["bits"], row["feature_psnr"]) == (other["bits"], other["feature_psnr"])
        assert json.loads(row["task_stats"]) == json.loads(other["task_stats"]), (row["image_id"], row["order"], row["qp"])
