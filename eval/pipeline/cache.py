"""Disk cache of model-head features, so every image goes through the head once.

Key: ``sha256(adapter.identity() + "\\n" + sha256(image content))``, where the
image content is the file's bytes (or an in-memory image's shape and pixels).
Anything that changes the features - model, layer, weights, preprocessing,
torch version, the image itself - changes the key; renaming a file does not.

Layout: ``<root>/<key[:2]>/<key>.npy`` (float32 ``[C, H, W]``) and
``<key>.json`` (the head's meta plus what the entry was made from). Both are
written atomically (temp file + ``os.replace``); the ``.json`` is written last
and marks a complete entry. An entry that fails to load (truncated or foreign
``.npy``, broken JSON, shape/dtype mismatch with its JSON, non-finite values)
is reported with a :class:`RuntimeWarning` and recomputed.

A write that fails (no space left, a read-only or foreign folder) raises one
:class:`~eval.errors.StorageError` line naming the cache folder, after removing what
was written of that entry: the cache never holds half an entry.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codec.files import atomic_save_npy, atomic_write_bytes, atomic_write_text
from eval.errors import FeatureError, StorageError

__all__ = ["FeatureCache", "CacheEntry", "computed_on", "image_digest", "CACHE_FORMAT", "save_arrays", "load_arrays",
           "writing_cache"]

CACHE_FORMAT = "fcm-feature-cache"
_VERSION = 1


@dataclass(frozen=True)
class CacheEntry:
    """One cached image: its key, file paths and the head's meta (features stay on disk until :meth:`load`)."""

    key: str
    features_path: Path
    meta_path: Path
    meta: dict
    sample_id: str
    computed_on: dict | None = None  # CPU model and torch threads of the head's run (None: an older entry)
    warnings: tuple[str, ...] = ()  # about the image file (damaged data that still decoded): see FeatureSet.warnings

    def load(self) -> np.ndarray:
        """The cached float32 ``[C, H, W]`` features."""
        return np.load(self.features_path, allow_pickle=False)


def computed_on() -> dict:
    """Where features are computed now: the CPU model and, where torch is loaded, its thread count."""
    import sys

    from eval.environment import cpu_info

    torch = sys.modules.get("torch")
    return {"cpu": cpu_info()["model"], "torch_threads": torch.get_num_threads() if torch is not None else None}


def image_digest(sample) -> str:
    """SHA-256 of a sample's image content (``sample.content_digest()`` when it has one)."""
    fn = getattr(sample, "content_digest", None)
    if callable(fn):
        return fn()
    from eval.data.images import content_digest

    return content_digest(getattr(sample, "path", None), sample.load)



class FeatureCache:
    """Features of ``adapter.head(sample.load())`` on disk under ``root``, keyed by model identity and image content."""

    def __init__(self, root: str | os.PathLike = ".cache/features"):
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"FeatureCache({str(self.root)!r})"

    # -- keys and paths ---------------------------------------------------------------------------
    def key(self, adapter, sample) -> str:
        """Cache key of ``sample``'s features under ``adapter``."""
        text = f"{adapter.identity()}\n{image_digest(sample)}"
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def paths(self, key: str) -> tuple[Path, Path]:
        """``(features .npy, meta .json)`` paths of ``key``."""
        d = self.root / key[:2]
        return d / f"{key}.npy", d / f"{key}.json"

    # -- reading ----------------------------------------------------------------------------------
    def _read(self, key: str, identity: str) -> tuple[np.ndarray, dict] | None:
        """Features and record of a complete, valid entry; ``None`` if absent; warns and returns ``None`` if corrupt."""
        npy, js = self.paths(key)
        if not js.exists():
            return None
        try:
            record = json.loads(js.read_text(encoding="utf-8"))
            if record.get("format") != CACHE_FORMAT or record.get("identity") != identity:
                raise ValueError("record is not a feature-cache entry for this model")
            features = np.load(npy, allow_pickle=False)
            if list(features.shape) != list(record["shape"]) or features.dtype != np.float32:
                raise ValueError(f"array {features.dtype}{list(features.shape)} != recorded float32{record['shape']}")
            if not np.isfinite(features).all():
                raise ValueError("array holds NaN/Inf")
            if not isinstance(record.get("meta"), dict) or "pixels" not in record["meta"]:
                raise ValueError("meta lacks 'pixels'")
        except (OSError, ValueError, KeyError, TypeError, EOFError) as exc:
            warnings.warn(f"feature cache entry {npy.name} in {npy.parent} is corrupt ({exc}); recomputing",
                          RuntimeWarning, stacklevel=3)
            return None
        return features, record

    # -- computing --------------------------------------------------------------------------------
    def _compute(self, adapter, sample, key: str, identity: str, digest: str) -> tuple[np.ndarray, dict]:
        where = _where(sample)
        image = sample.load()
        _check_size(adapter, image.shape[:2], where)
        features, meta = adapter.head(image)
        if not isinstance(features, np.ndarray) or features.ndim != 3:
            raise FeatureError(f"{adapter.name} head returned {type(features).__name__} "
                               f"{getattr(features, 'shape', '')} for {where}; expected a [C, H, W] array")
        n_ch = getattr(adapter, "n_channels", None)
        if n_ch is not None and features.shape[0] != n_ch:
            raise FeatureError(f"{adapter.name} head returned {features.shape[0]} channels for {where}; expected {n_ch}")
        if not np.isfinite(features).all():
            bad = int(np.size(features) - np.isfinite(features).sum())
            raise FeatureError(f"{adapter.name} head produced {bad} NaN/Inf values for {where}; "
                               "check the image and the model weights")
        features = np.ascontiguousarray(features, dtype=np.float32)
        if "pixels" not in meta:
            raise FeatureError(f"{adapter.name} head meta for {where} lacks 'pixels' (input H*W, needed for bpp)")
        record = {
            "format": CACHE_FORMAT,
            "version": _VERSION,
            "identity": identity,
            "image_digest": digest,
            "sample_id": str(sample.id),
            "shape": [int(s) for s in features.shape],
            "dtype": "float32",
            "meta": meta,
            # torch picks other kernels on other CPUs, so features (and every figure after them) can
            # differ in their last bits between machines; a cache reused elsewhere keeps this machine's
            "computed_on": computed_on(),
            "image_size": [int(v) for v in image.shape[:2]],
            "warnings": _file_warnings(sample),
        }
        try:
            text = json.dumps(record, indent=1, sort_keys=True)
        except TypeError as exc:
            raise FeatureError(f"{adapter.name} head meta for {where} is not JSON-serialisable ({exc})") from None
        npy, js = self.paths(key)
        with writing_cache(self.root, npy, js):
            atomic_save_npy(npy, features)
            atomic_write_text(js, text)  # last: marks the entry complete
        return features, record

    def _get(self, adapter, sample) -> tuple[str, np.ndarray, dict]:
        identity = adapter.identity()
        digest = image_digest(sample)
        key = hashlib.sha256(f"{identity}\n{digest}".encode("utf-8")).hexdigest()
        hit = self._read(key, identity)
        if hit is None:
            hit = self._compute(adapter, sample, key, identity, digest)
        else:  # a stored image is checked against this model's minimum too; an entry older than the file check
            # gets it now (not stored: the cache may be read-only)
            meta = hit[1]["meta"]
            size = hit[1].get("image_size") or meta.get("image_size") or meta.get("orig_size")
            if size is not None:
                _check_size(adapter, size, _where(sample))
            if "warnings" not in hit[1]:
                hit = hit[0], {**hit[1], "warnings": _file_warnings(sample)}
        features, record = hit
        return key, features, record

    # -- public API -------------------------------------------------------------------------------
    def get_or_compute(self, adapter, sample) -> tuple[np.ndarray, dict]:
        """``(features, meta)`` of ``sample``: from the cache, or computed with ``adapter.head`` and stored."""
        _, features, record = self._get(adapter, sample)
        return features, record["meta"]

    def entry(self, adapter, sample) -> CacheEntry:
        """Make sure ``sample`` is cached and return its :class:`CacheEntry` (features are not kept in memory)."""
        key, _, record = self._get(adapter, sample)
        npy, js = self.paths(key)
        return CacheEntry(key=key, features_path=npy, meta_path=js, meta=record["meta"], sample_id=str(sample.id),
                          computed_on=record.get("computed_on"), warnings=tuple(record.get("warnings") or ()))

    def contains(self, adapter, sample) -> bool:
        """True when a complete entry for ``sample`` exists (not validated)."""
        return self.paths(self.key(adapter, sample))[1].exists()


def _where(sample) -> str:
    return f"sample {sample.id!r}" + (f" ({sample.path})" if getattr(sample, "path", None) else "")


def _check_size(adapter, size, where: str) -> None:
    """The model's smallest input (``ModelAdapter.min_image_side``) checked here, where the image has a name."""
    check = getattr(adapter, "check_image_size", None)
    if callable(check):
        check(int(size[0]), int(size[1]), where)


def _file_warnings(sample) -> list[str]:
    fn = getattr(sample, "file_warnings", None)
    return [str(w) for w in fn()] if callable(fn) else []


@contextlib.contextmanager
def writing_cache(root: str | os.PathLike, *paths: str | os.PathLike):
    """Files of one cache entry are written inside this block: an OSError there (no space, read-only,
    no permission) removes ``paths`` (and their folder, when that leaves it empty) and becomes one
    :class:`~eval.errors.StorageError` line naming the cache folder ``root`` and what to do."""
    try:
        yield
    except OSError as exc:
        for p in map(Path, paths):
            with contextlib.suppress(OSError):
                p.unlink(missing_ok=True)
        for folder in {Path(p).parent for p in paths}:
            with contextlib.suppress(OSError):
                folder.rmdir()  # only when empty: other entries of the folder stay
        raise StorageError.writing(exc, "the feature cache", root, "point the feature cache elsewhere (cache_dir)") from None


def save_arrays(path: str | os.PathLike, value: np.ndarray | dict) -> Path:
    """Store a model output (one array, or a dict of arrays) as ``.npz`` without pickling."""
    arrays = value if isinstance(value, dict) else {"__array__": value}
    buf = io.BytesIO()
    np.savez(buf, **{k: np.asarray(v) for k, v in arrays.items()})
    return atomic_write_bytes(path, buf.getvalue())


def load_arrays(path: str | os.PathLike) -> np.ndarray | dict:
    """Inverse of :func:`save_arrays` (``allow_pickle=False``)."""
    with np.load(path, allow_pickle=False) as data:
        out = {k: data[k] for k in data.files}
    if list(out) == ["__array__"]:
        return out["__array__"]
    return out
