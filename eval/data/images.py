"""Image sets for the evaluation: the photos bundled with scikit-image, an image folder, splits.

A :class:`Sample` is an id plus where its pixels come from; :meth:`Sample.load`
returns an ``H x W x 3`` ``uint8`` RGB array via :func:`load_image`.

Embedded default data: the photos inside scikit-image
-----------------------------------------------------
scikit-image ships a few images *inside the wheel* (``skimage/data``); the
others are fetched by ``pooch`` on first use, which must never happen here (no
network at run time). This module therefore reads the files from the installed
package's ``data`` folder directly, located without importing scikit-image,
and never calls ``skimage.data.<name>()``.

Bundled in scikit-image 0.26 (checked in the installed wheel):

* colour photographs - ``astronaut`` (512x512), ``chelsea`` (451x300),
  ``coffee`` (600x400), ``rocket`` (640x427), ``motorcycle_left`` (741x500),
  ``hubble_deep_field`` (1000x872), ``ihc`` (immunohistochemistry micrograph,
  512x512), ``retina`` (fundus photograph, 1411x1411). ``motorcycle_right`` is
  left out: it is the other half of a stereo pair, nearly the same picture as
  ``motorcycle_left``, and would leak between a calibration and a test split.
  ``color.png`` (a synthetic colour wheel), ``logo.png``, ``chessboard_RGB``
  and ``phantom`` (grey content in RGB) are not photographs.
* grey photographs (:data:`GREY_PHOTOS`, loaded as RGB with R=G=B) -
  ``camera``, ``coins``, ``moon``, ``clock_motion``, ``brick``, ``grass``,
  ``gravel``. Scans of text (``page``, ``text``), ``cell``, the tiny
  ``microaneurysms`` and synthetic images are left out.

The default split (:func:`default_split`)
-----------------------------------------
* test: ``astronaut``, ``chelsea``, ``coffee``, ``rocket`` - four everyday
  colour scenes, the kind of content the coded features serve;
* calibration: the other colour photos (``motorcycle_left``,
  ``hubble_deep_field``, ``ihc``, ``retina``) plus the seven grey photos.

Why grey photos join the calibration set: only four colour photos are left for
it once four are held out, three of them scientific images. Channel orders are
fitted from channel-similarity statistics, which get steadier with more and
more varied images, and most of the 144 expanded channels respond to luminance
structure (edges, textures) that grey photos exercise fully; colour-opponent
channels still get their statistics from the four colour calibration photos.
Grey photos are never used for testing (their colour channels are degenerate).
``default_split(include_grey=False)`` gives the colour-only variant.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import subprocess
import threading
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from eval.errors import ImageReadError

__all__ = [
    "Sample",
    "load_image",
    "image_warnings",
    "max_image_pixels",
    "ENV_MAX_IMAGE_PIXELS",
    "skimage_data_dir",
    "sample_photos",
    "grey_photos",
    "image_folder",
    "split",
    "default_split",
    "COLOUR_PHOTOS",
    "GREY_PHOTOS",
    "DEFAULT_TEST",
    "IMAGE_EXTENSIONS",
    "OTHER_PHOTOS",
    "other_photos",
    "bundled_set",
    "image_set",
    "BUNDLED_SETS",
]

COLOUR_PHOTOS = (
    "astronaut.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
    "motorcycle_left.png",
    "hubble_deep_field.jpg",
    "ihc.png",
    "retina.jpg",
)
"""Colour photographs bundled in scikit-image's wheel, in the fixed order :func:`sample_photos` returns."""

GREY_PHOTOS = ("camera.png", "coins.png", "moon.png", "clock_motion.png", "brick.png", "grass.png", "gravel.png")
"""Grey photographs bundled in scikit-image's wheel (loaded as RGB)."""

OTHER_PHOTOS = (("sklearn", "datasets/images/china.jpg"), ("sklearn", "datasets/images/flower.jpg"),
                ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"))
"""Colour photos shipped inside two other dependencies' wheels (package, path inside it): scikit-learn's
``load_sample_images`` pair (a temple in China, a flower) and matplotlib's portrait of Grace Hopper.
Everyday scenes from other sources than scikit-image: the second, disjoint test set
(``test = "bundled:other"``)."""

DEFAULT_TEST = ("astronaut", "chelsea", "coffee", "rocket")
"""Sample ids held out for testing by :func:`default_split`."""

ENV_MAX_IMAGE_PIXELS = "FCM_MAX_IMAGE_PIXELS"
"""Environment variable: the largest image (width x height, in pixels) :func:`load_image` decodes."""

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm", ".gif")


@dataclass
class Sample:
    """One input image.

    ``id`` names it in results; ``path`` is the image file (``None`` for an
    in-memory image given as ``image``, an ``H x W x 3`` uint8 array);
    ``annotation`` is task ground truth (e.g. detection boxes) or ``None``.
    """

    id: str
    path: str | None
    annotation: Any = None
    image: np.ndarray | None = field(default=None, repr=False, compare=False)

    def load(self) -> np.ndarray:
        """The image as a C-contiguous ``H x W x 3`` uint8 RGB array."""
        if self.path is not None:
            return load_image(self.path)
        if self.image is None:
            raise ImageReadError(f"sample {self.id!r} has neither a path nor an image; give one of them")
        return _as_rgb_uint8(np.asarray(self.image), f"sample {self.id!r}")

    def content_digest(self) -> str:
        """SHA-256 of the image content (:func:`content_digest`)."""
        return content_digest(self.path, self.load)

    def file_warnings(self) -> list[str]:
        """One-line warnings about a file that decodes but is damaged (:func:`image_warnings`; [] in memory)."""
        return [] if self.path is None else image_warnings(self.path)


def content_digest(path, load) -> str:
    """SHA-256 of an image's content: the file's bytes at ``path``, else the shape and bytes of ``load()``.

    The feature cache keys on it, so the same photo under another name is the same entry.
    """
    h = hashlib.sha256()
    if path is not None:
        try:
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
        except OSError as exc:
            raise ImageReadError(f"{path}: cannot read ({exc.strerror or exc})") from None
    else:
        a = np.ascontiguousarray(load())
        h.update(repr(a.shape).encode())
        h.update(a.tobytes())
    return h.hexdigest()


def _as_rgb_uint8(a: np.ndarray, what: str) -> np.ndarray:
    if a.dtype != np.uint8:
        raise ImageReadError(f"{what}: image array has dtype {a.dtype}; expected uint8 (0..255)")
    if a.ndim == 2:
        a = np.stack([a, a, a], axis=-1)
    elif a.ndim == 3 and a.shape[2] in (3, 4):
        a = a[..., :3]
    else:
        raise ImageReadError(f"{what}: image array has shape {a.shape}; expected H x W or H x W x 3/4")
    return np.ascontiguousarray(a)


def max_image_pixels() -> int | None:
    """The largest image (width x height) :func:`load_image` decodes, in pixels; None: no limit.

    ``$FCM_MAX_IMAGE_PIXELS`` when set, else the size at which Pillow itself refuses a file as a
    decompression bomb (``2 * PIL.Image.MAX_IMAGE_PIXELS``, 178,956,970 pixels by default; a
    program that set Pillow's limit to None has none here either). Why a limit at all: a small
    file can decode to gigabytes (a 14000 x 13000 PNG of one colour is 177 KB on disk and
    546 MB decoded), and every image is scaled to the model's input size anyway.
    """
    text = os.environ.get(ENV_MAX_IMAGE_PIXELS, "").strip()
    if text:
        try:
            value = int(text.replace("_", "").replace(",", ""))
        except ValueError:
            value = 0
        if value < 1:
            raise ImageReadError(f"{ENV_MAX_IMAGE_PIXELS}={text!r} is not a positive whole number of pixels; "
                                 f"set it to e.g. 250000000 or unset it")
        return value
    from PIL import Image

    return None if Image.MAX_IMAGE_PIXELS is None else 2 * int(Image.MAX_IMAGE_PIXELS)


#: Pillow's own decompression-bomb check reads a module global; load_image swaps it for its own
#: limit (which names the file and says what to do) only while it opens and decodes a file
_PIL_LIMIT_LOCK = threading.Lock()


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as a C-contiguous ``H x W x 3`` uint8 RGB array.

    Grey images are replicated to three channels; alpha is dropped (the colour
    values are kept as stored, like torchvision's ImageNet loader); palette
    images are expanded; 16-bit grey keeps its 8 most significant bits. The
    EXIF orientation tag is applied (as image viewers and detectron2 do).
    Multi-frame files give their first frame. Raises :class:`ImageReadError`
    naming the path and the reason for a missing, unreadable or non-image file,
    and for an image larger than :func:`max_image_pixels` (read from the file's
    header, before any pixel is decoded).
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    p = Path(path)
    if not p.exists():
        raise ImageReadError(f"{p}: no such file; check the path")
    if p.is_dir():
        raise ImageReadError(f"{p}: is a directory, not an image file; give the path of an image")
    limit = max_image_pixels()
    try:
        with _PIL_LIMIT_LOCK:
            saved, Image.MAX_IMAGE_PIXELS = Image.MAX_IMAGE_PIXELS, None
            try:
                with Image.open(p) as im:
                    _check_pixels(p, im.size, limit)
                    im.load()
                    try:
                        im = ImageOps.exif_transpose(im)
                    except Exception:  # noqa: BLE001 - a broken EXIF block must not make the pixels unreadable
                        pass
                    mode = im.mode
                    if mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
                        a = np.asarray(im)
                        a = (np.clip(a.astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
                        return _as_rgb_uint8(a, str(p))
                    if mode == "F":
                        raise ImageReadError(f"{p}: floating-point image (mode F) has no defined 0..255 scale; save it as 8-bit")
                    if mode != "RGB":
                        im = im.convert("RGB")
                    a = np.asarray(im)
            finally:
                Image.MAX_IMAGE_PIXELS = saved
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError(f"{p}: not an image file PIL can read; remove it from the image folder or save it as PNG/JPEG") from None
    except MemoryError:
        raise ImageReadError(f"{p}: not enough memory to decode this image; resize it or free memory") from None
    except (OSError, ValueError, SyntaxError) as exc:
        raise ImageReadError(f"{p}: cannot decode image ({exc}); the file is damaged or truncated: replace it or remove it from the image folder") from None
    if a.ndim != 3 or a.shape[2] != 3 or a.shape[0] == 0 or a.shape[1] == 0:
        raise ImageReadError(f"{p}: decoded to shape {a.shape}; expected a non-empty H x W x 3 image")
    return np.ascontiguousarray(a, dtype=np.uint8)


def _check_pixels(path: Path, size: tuple[int, int], limit: int | None) -> None:
    """Refuse an image of ``size`` (width, height) above ``limit`` pixels, naming the file and the way out."""
    w, h = (int(v) for v in size)
    if limit is not None and w * h > limit:
        raise ImageReadError(
            f"{path}: {w}x{h} image ({w * h:,} pixels) is larger than the {limit:,} pixels load_image decodes "
            f"(a guard against decompression bombs); resize it (the model scales every image to its input size "
            f"anyway) or raise the limit with {ENV_MAX_IMAGE_PIXELS}={w * h}")


def image_warnings(path: str | os.PathLike) -> list[str]:
    """One-line warnings about an image file that :func:`load_image` decodes although it is damaged; [] if none.

    A JPEG whose entropy-coded data is damaged in the middle (bytes overwritten, cut out or
    inserted) decodes in Pillow without an exception or a warning: libjpeg recovers with
    grey or shifted blocks and reports "Corrupt JPEG data" through a message hook that
    Pillow leaves silent, so the study would code a picture that is not the photo. Such a
    file is decoded a second time by ffmpeg's JPEG decoder (the package's ffmpeg,
    :func:`codec.ffmpeg.ffmpeg_exe`), whose errors ("error count", "overread", "bad vlc")
    become the warning. Checked by hand: no report on the 6 bundled JPEG photos and 10
    Pillow-written variants (progressive, restart markers, CMYK, grey, 4:4:4, 1 x 1), a report
    on each of 6 damaged copies (64 random bytes, 2000 zeros, one flipped bit, a stray EOI
    marker, 5000 bytes cut out, a truncated file). Other formats need no second look: Pillow
    refuses damaged PNG data itself (its CRCs and zlib stream), which :func:`load_image`
    reports as an error. Without a usable ffmpeg the check is skipped ([]): coding needs
    ffmpeg anyway and says so.

    Called where an image's features are computed (:class:`eval.pipeline.cache.FeatureCache`
    records the result in the cache entry), not in :func:`load_image`: a second decode per
    JPEG costs 10-130 ms and is done once per image, not at every load.
    """
    p = Path(path)
    try:
        with open(p, "rb") as f:
            magic = f.read(3)
    except OSError:
        return []  # load_image reports an unreadable file itself
    if magic != b"\xff\xd8\xff":
        return []
    from codec.errors import CodecError
    from codec.ffmpeg import ffmpeg_exe

    try:
        exe = ffmpeg_exe()
        proc = subprocess.run([exe, "-hide_banner", "-nostdin", "-v", "error", "-i", f"file:{p}", "-f", "null", "-"],
                              capture_output=True, timeout=120)
    except (CodecError, OSError, subprocess.TimeoutExpired):
        return []
    lines = [re.sub(r"^\[[^]]*\]\s*", "", ln).strip()
             for ln in proc.stderr.decode("utf-8", "replace").replace("\r", "\n").splitlines()]
    lines = [ln for ln in lines if ln]
    if not lines or any(w in ln.lower() for ln in lines for w in ("not supported", "unsupported", "not implemented")):
        return []  # nothing found, or a kind of JPEG ffmpeg cannot check (arithmetic coding, 12-bit)
    found = "; ".join(dict.fromkeys(lines[:4]))
    return [f"{p}: JPEG data is damaged (ffmpeg's decoder: {found}) though it decodes, so its features, bits and "
            "task scores are those of a partly garbled picture; replace the file or remove it from the image set"]


def skimage_data_dir() -> Path:
    """The ``data`` folder inside the installed scikit-image package (found without importing it)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ImageReadError("scikit-image is not installed, so its sample photos are unavailable; pip install scikit-image")
    d = Path(list(spec.submodule_search_locations)[0]) / "data"
    if not d.is_dir():
        raise ImageReadError(f"scikit-image has no bundled data folder at {d}; reinstall scikit-image")
    return d


def _bundled(names: Sequence[str]) -> list[Sample]:
    d = skimage_data_dir()
    out, missing = [], []
    for name in names:
        p = d / name
        if p.is_file():
            out.append(Sample(id=Path(name).stem, path=str(p)))
        else:
            missing.append(name)
    if missing:
        warnings.warn(f"scikit-image at {d} lacks bundled {', '.join(missing)}; continuing without them",
                      RuntimeWarning, stacklevel=3)
    return out


def sample_photos(include_grey: bool = False) -> list[Sample]:
    """The colour photos bundled in scikit-image (fixed order), optionally followed by the grey ones."""
    samples = _bundled(COLOUR_PHOTOS)
    if include_grey:
        samples += grey_photos()
    return samples


def grey_photos() -> list[Sample]:
    """The grey photos bundled in scikit-image (fixed order); they load as RGB with equal channels."""
    return _bundled(GREY_PHOTOS)


def image_folder(directory: str | os.PathLike, recursive: bool = False,
                 extensions: Sequence[str] = IMAGE_EXTENSIONS) -> list[Sample]:
    """Every image file in ``directory`` (by extension, case-insensitive), sorted by relative path.

    Sample ids are the paths relative to ``directory`` (POSIX separators), so
    ``a.png`` and ``a.jpg`` stay distinct. Files are not opened here; a bad file
    raises :class:`ImageReadError` when loaded. Raises ``FileNotFoundError`` /
    ``NotADirectoryError`` / ``ValueError`` (no images) with the path.
    """
    d = Path(directory)
    if not d.exists():
        raise FileNotFoundError(f"image folder {d} does not exist; check the path")
    if not d.is_dir():
        raise NotADirectoryError(f"{d} is not a folder; give a folder of images")
    exts = {e.lower() if e.startswith(".") else "." + e.lower() for e in extensions}
    files = d.rglob("*") if recursive else d.iterdir()
    found = sorted((p for p in files if p.is_file() and p.suffix.lower() in exts),
                   key=lambda p: p.relative_to(d).as_posix())
    if not found:
        raise ValueError(f"image folder {d} has no images ({', '.join(sorted(exts))}); add images or fix the path")
    return [Sample(id=p.relative_to(d).as_posix(), path=str(p)) for p in found]


def split(samples: Sequence[Sample], n_calib: int, seed: int = 0) -> tuple[list[Sample], list[Sample]]:
    """Random, reproducible calibration/test split: ``n_calib`` samples for calibration, the rest for test.

    The choice depends only on ``seed`` and the sample ids (not on the input
    order); each part keeps the input order. Both parts must be non-empty.
    """
    samples = list(samples)
    n = len(samples)
    if not isinstance(n_calib, (int, np.integer)) or isinstance(n_calib, bool):
        raise TypeError(f"n_calib must be an integer, got {type(n_calib).__name__}")
    if not 0 < n_calib < n:
        raise ValueError(f"n_calib={n_calib} must be between 1 and {n - 1} for {n} samples (both parts non-empty)")
    ids = [s.id for s in samples]
    if len(set(ids)) != n:
        dup = sorted({i for i in ids if ids.count(i) > 1})
        raise ValueError(f"sample ids must be unique to split reproducibly; repeated: {', '.join(dup[:5])}")
    by_id = sorted(range(n), key=lambda i: ids[i])
    perm = np.random.default_rng(seed).permutation(n)
    chosen = {by_id[i] for i in perm[:n_calib]}
    calib = [s for i, s in enumerate(samples) if i in chosen]
    test = [s for i, s in enumerate(samples) if i not in chosen]
    return calib, test


def other_photos() -> list[Sample]:
    """The photos of :data:`OTHER_PHOTOS` (ids ``china``, ``flower``, ``grace_hopper``), read from the installed packages."""
    out = []
    for package, inner in OTHER_PHOTOS:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise ImageReadError(f"{package} is not installed, so its sample photo {inner} is unavailable; pip install {package}")
        p = Path(list(spec.submodule_search_locations)[0]) / inner
        if not p.is_file():
            raise ImageReadError(f"{package} at {p.parent} lacks its sample photo {p.name}; reinstall {package}")
        out.append(Sample(id=p.stem, path=str(p)))
    return out


BUNDLED_SETS = ("default-calib", "default-test", "other")
"""Names ``bundled:NAME`` accepted where an image folder is (:func:`bundled_set`)."""


def bundled_set(name: str) -> list[Sample]:
    """An image set shipped with the installed packages: ``default-calib`` / ``default-test`` (the parts of
    :func:`default_split`) or ``other`` (:func:`other_photos`)."""
    if name == "other":
        return other_photos()
    if name in ("default-calib", "default-test"):
        calib, test = default_split()
        return calib if name == "default-calib" else test
    raise ValueError(f"unknown bundled image set {name!r}; expected bundled:{', bundled:'.join(BUNDLED_SETS)}")


def image_set(spec: str) -> list[Sample]:
    """Samples from ``spec``: ``bundled:NAME`` (:func:`bundled_set`) or an image folder (:func:`image_folder`)."""
    if str(spec).startswith("bundled:"):
        return bundled_set(str(spec).split(":", 1)[1])
    return image_folder(spec)


def default_split(include_grey: bool = True) -> tuple[list[Sample], list[Sample]]:
    """The embedded default ``(calibration, test)`` split described in the module docstring."""
    photos = sample_photos()
    test = [s for s in photos if s.id in DEFAULT_TEST]
    if len(test) < len(DEFAULT_TEST):
        raise ImageReadError(
            f"scikit-image lacks some of the default test photos {', '.join(DEFAULT_TEST)}; "
            "install scikit-image>=0.21 or pass your own images"
        )
    calib = [s for s in photos if s.id not in DEFAULT_TEST]
    if include_grey:
        calib += grey_photos()
    if not calib:
        raise ImageReadError("no calibration photos are bundled with this scikit-image; pass your own images")
    return calib, test
