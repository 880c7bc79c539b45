"""Sample photos, image folders, image loading and splits."""

import numpy as np
import pytest
from PIL import Image

from eval.data.images import (
    DEFAULT_TEST,
    Sample,
    default_split,
    grey_photos,
    image_folder,
    load_image,
    sample_photos,
    skimage_data_dir,
    split,
)
from eval.errors import ImageReadError


def test_sample_photos_are_bundled_colour_photos_in_fixed_order():
    photos = sample_photos()
    ids = [s.id for s in photos]
    assert ids[:4] == ["astronaut", "chelsea", "coffee", "rocket"]
    assert len(ids) >= 8 and len(set(ids)) == len(ids)
    assert "motorcycle_right" not in ids  # stereo twin of motorcycle_left
    for s in photos:
        assert s.path.startswith(str(skimage_data_dir()))
    img = photos[1].load()  # chelsea
    assert img.dtype == np.uint8 and img.shape == (300, 451, 3) and img.flags.c_contiguous
    assert not (np.array_equal(img[..., 0], img[..., 1]) and np.array_equal(img[..., 1], img[..., 2]))


def test_grey_photos_load_as_rgb():
    g = grey_photos()
    assert [s.id for s in g][:3] == ["camera", "coins", "moon"]
    img = g[0].load()
    assert img.shape == (512, 512, 3)
    assert np.array_equal(img[..., 0], img[..., 2])


def test_default_split_is_disjoint_and_deterministic():
    calib, test = default_split()
    assert [s.id for s in test] == list(DEFAULT_TEST)
    assert not {s.id for s in calib} & {s.id for s in test}
    assert {"camera", "motorcycle_left"} <= {s.id for s in calib}
    calib2, _ = default_split()
    assert [s.id for s in calib2] == [s.id for s in calib]
    colour_only, _ = default_split(include_grey=False)
    assert {s.id for s in colour_only} == {s.id for s in sample_photos()} - set(DEFAULT_TEST)


def _save(path, array, mode=None):
    Image.fromarray(array, mode=mode).save(path) if mode else Image.fromarray(array).save(path)
    return path


def test_load_image_converts_grey_rgba_and_16bit(tmp_path):
    grey = np.arange(12, dtype=np.uint8).reshape(3, 4)
    out = load_image(_save(tmp_path / "g.png", grey))
    assert out.shape == (3, 4, 3) and np.array_equal(out[..., 1], grey)
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[..., 0], rgba[..., 3] = 200, 0
    out = load_image(_save(tmp_path / "a.png", rgba))
    assert out.shape == (2, 2, 3) and (out[..., 0] == 200).all()
    deep = np.array([[0, 256, 65535]], dtype=np.uint16)
    out = load_image(_save(tmp_path / "d.png", deep))
    assert out[0, :, 0].tolist() == [0, 1, 255]


def test_load_image_errors_name_path_and_reason(tmp_path):
    with pytest.raises(ImageReadError, match=r"missing\.png: no such file"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "notes.png").write_text("not an image")
    with pytest.raises(ImageReadError, match=r"notes\.png: not an image"):
        load_image(tmp_path / "notes.png")
    with pytest.raises(ImageReadError, match="is a directory"):
        load_image(tmp_path)
    good = _save(tmp_path / "full.png", np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = good.read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError, match=r"cut\.png: cannot decode"):
        load_image(tmp_path / "cut.png")


def test_image_folder_sorted_and_filtered(tmp_path):
    px = np.zeros((4, 4, 3), np.uint8)
    for name in ["b.jpg", "a.PNG", "c.png"]:
        _save(tmp_path / name, px)
    (tmp_path / "readme.txt").write_text("x")
    (tmp_path / "sub").mkdir()
    _save(tmp_path / "sub" / "d.png", px)
    assert [s.id for s in image_folder(tmp_path)] == ["a.PNG", "b.jpg", "c.png"]
    assert [s.id for s in image_folder(tmp_path, recursive=True)][-1] == "sub/d.png"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        image_folder(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="has no images"):
        image_folder(tmp_path / "empty")


def test_split_deterministic_and_order_independent():
    samples = [Sample(id=f"img{i:02d}", path=None) for i in range(10)]
    calib, test = split(samples, n_calib=4, seed=3)
    assert len(calib) == 4 and len(test) == 6
    assert {s.id for s in calib}.isdisjoint({s.id for s in test})
    calib_rev, _ = split(samples[::-1], n_calib=4, seed=3)
    assert sorted(s.id for s in calib_rev) == sorted(s.id for s in calib)
    others = {tuple(sorted(s.id for s in split(samples, 4, seed)[0])) for seed in range(6)}
    assert len(others) > 1  # the seed matters
    with pytest.raises(ValueError, match="between 1 and 9"):
        split(samples, n_calib=10, seed=0)


def test_in_memory_sample():
    a = np.full((2, 3), 7, np.uint8)
    s = Sample(id="mem", path=None, image=a)
    assert s.load().shape == (2, 3, 3)
    assert s.content_digest() == Sample(id="other", path=None, image=a.copy()).content_digest()
    with pytest.raises(ImageReadError, match="neither a path nor an image"):
        Sample(id="empty", path=None).load()


def test_other_photos_are_a_second_disjoint_test_set():
    """`--test bundled:other` keeps the default calibration photos and tests on photos from other packages."""
    from eval.data import choose_splits
    from eval.data.images import bundled_set, default_split

    calib, test = choose_splits(test="bundled:other")
    assert [s.id for s in test] == ["china", "flower", "grace_hopper"]
    assert [s.id for s in calib] == [s.id for s in default_split()[0]]
    default_test = bundled_set("default-test")
    digests = {s.content_digest() for s in calib + default_test}
    assert all(s.content_digest() not in digests for s in test)
    for s in test:
        img = s.load()
        assert img.ndim == 3 and img.shape[2] == 3 and min(img.shape[:2]) >= 400
    with pytest.raises(ValueError, match="unknown bundled image set 'nope'"):
        choose_splits(test="bundled:nope")
    with pytest.raises(ValueError, match="calib needs test"):
        choose_splits(calib="bundled:default-calib")
