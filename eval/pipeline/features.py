"""Features of a split: the model head run once per image, cached, streamed back one image at a time.

:func:`prepare_features` runs (or reuses) the model head for every sample and returns a
:class:`FeatureSet` that loads the cached arrays one image at a time, so orderers and
quantizers never hold the whole calibration set in memory. :func:`prepare_references`
runs the tail once on the uncompressed features of the test images: the reference that
the task metric compares every decoded cell against.
"""

from __future__ import annotations

import hashlib
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np

from eval.pipeline.cache import load_arrays, save_arrays, writing_cache
from eval.pipeline.cell_process import TAIL_THREADS, torch_threads

__all__ = ["FeatureRef", "FeatureSet", "prepare_features", "prepare_references", "reference_path"]


@dataclass(frozen=True)
class FeatureRef:
    """Where one image's cached features live, and what the tail needs to run on them."""

    sample_id: str
    key: str
    path: str
    meta: dict
    annotation: object = None
    computed_on: dict | None = None  # see eval.pipeline.cache.CacheEntry
    warnings: tuple[str, ...] = ()  # about the image file, see FeatureSet.warnings

    def load(self) -> np.ndarray:
        return np.load(self.path, allow_pickle=False)


class FeatureSet(Sequence):
    """A re-iterable, streaming view of cached features: iterating yields one array at a time."""

    def __init__(self, refs: Sequence[FeatureRef]):
        self.refs = list(refs)

    def __len__(self) -> int:
        return len(self.refs)

    def __getitem__(self, i):
        if isinstance(i, slice):
            return FeatureSet(self.refs[i])
        return self.refs[i].load()

    def __iter__(self) -> Iterator[np.ndarray]:
        for ref in self.refs:
            yield ref.load()

    @property
    def ids(self) -> list[str]:
        return [r.sample_id for r in self.refs]

    def digest(self) -> str:
        """Identifies the set (feature keys), recorded as calibration provenance."""
        return hashlib.sha256("\n".join(sorted(r.key for r in self.refs)).encode()).hexdigest()[:16]

    def computed_on(self) -> dict[str, int]:
        """How many of the set's images had their features computed on each CPU model ("not recorded": older entries)."""
        counts: dict[str, int] = {}
        for ref in self.refs:
            cpu = (ref.computed_on or {}).get("cpu") or "not recorded"
            counts[cpu] = counts.get(cpu, 0) + 1
        return dict(sorted(counts.items()))

    def warnings(self) -> list[str]:
        """One line per image whose file decoded although it is damaged (a JPEG with corrupt data: see
        :func:`eval.data.images.image_warnings`), found when its features were computed and kept in the
        feature cache, so a re-run reports them too. For the study's summary.json "warnings"."""
        return [w for ref in self.refs for w in ref.warnings]

    @property
    def n_channels(self) -> int:
        return int(self.refs[0].meta.get("shape", self[0].shape)[0])


def _bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=not enabled, file=sys.stderr, dynamic_ncols=True)


def prepare_features(adapter, samples, cache, progress: bool = True, desc: str = "features") -> FeatureSet:
    """Run (or reuse) the model head for every sample; return a streaming :class:`FeatureSet`."""
    refs = []
    with _bar(len(samples), desc, progress) as bar:
        for sample in samples:
            entry = cache.entry(adapter, sample)
            refs.append(FeatureRef(sample.id, entry.key, str(entry.features_path), entry.meta, getattr(sample, "annotation", None),
                                   entry.computed_on, entry.warnings))
            bar.update(1)
    return FeatureSet(refs)


def reference_path(ref: FeatureRef, adapter) -> Path:
    """Cached uncompressed tail output, keyed by the tail's own settings (windows, thresholds)."""
    tail_id = getattr(adapter, "tail_identity", adapter.identity)()
    # outputs from before the tail ran on TAIL_THREADS threads everywhere differ in their last bits: not reused
    tag = hashlib.sha256(f"{tail_id}|{getattr(adapter.task, 'name', 'task')}|threads={TAIL_THREADS}".encode()).hexdigest()[:12]
    return Path(ref.path).with_name(Path(ref.path).stem + f".reference-{tag}.npz")


def prepare_references(adapter, features: FeatureSet, progress: bool = True) -> dict[str, str]:
    """Tail outputs of the uncompressed features, computed once per image and cached beside them."""
    paths = {}
    with _bar(len(features), "reference tail", progress) as bar:
        for ref in features.refs:
            path = reference_path(ref, adapter)
            ok = path.exists()
            if ok:
                try:
                    load_arrays(path)
                except Exception:  # noqa: BLE001 - a corrupt cache file is recomputed
                    ok = False
            if not ok:
                with torch_threads(TAIL_THREADS):  # as in every cell (eval.pipeline.cell.run_job)
                    output = adapter.tail(ref.load(), ref.meta)
                with writing_cache(Path(ref.path).parent.parent, path):
                    save_arrays(path, output)
            paths[ref.sample_id] = str(path)
            bar.update(1)
    return paths
