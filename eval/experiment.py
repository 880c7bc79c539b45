"""Study plumbing shared by every entry point: features, references, job grids, reports.

Each study (search_order, tuning, ablations, benchmarks) is a thin command line over these
steps, so none of them re-implements a part of the pipeline:

1. :func:`prepare_features` runs the model head on every image once (disk cache keyed by
   model, layer and image content) and returns a :class:`FeatureSet` that streams the cached
   arrays back one image at a time (orderers and quantizers never see all images at once);
2. :func:`prepare_references` runs the tail on the uncompressed features of the test images
   once, the reference the task metric compares against;
3. :func:`make_jobs` turns orders x quantizers x codecs x QPs into :class:`~eval.core.Job`
   cells; :func:`eval.runner.run_grid` runs them into a :class:`~eval.store.ResultStore`;
4. :func:`write_report` writes ``results.csv``, ``summary.json``, ``rd_curves.png`` and
   returns the printed table.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from eval.core import Job
from eval.io import atomic_write_json, save_arrays

__all__ = [
    "FeatureRef",
    "FeatureSet",
    "prepare_features",
    "prepare_references",
    "make_jobs",
    "write_report",
    "RESULT_COLUMNS",
]

RESULT_COLUMNS = [
    "image_id", "order", "qp", "bits", "pixels", "bpp", "feature_psnr", "feature_mse", "task_stats",
    "codec", "quantizer", "packing", "order_digest", "encode_seconds", "decode_seconds", "tail_seconds",
    "status", "error", "key",
]


@dataclass(frozen=True)
class FeatureRef:
    """Where one image's cached features live, and what the tail needs to run on them."""

    sample_id: str
    key: str
    path: str
    meta: dict
    annotation: object = None

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
            refs.append(FeatureRef(sample.id, entry.key, str(entry.features_path), entry.meta, getattr(sample, "annotation", None)))
            bar.update(1)
    return FeatureSet(refs)


def reference_path(ref: FeatureRef, adapter) -> Path:
    """Cached uncompressed tail output, keyed by the tail's own settings (windows, thresholds)."""
    tail_id = getattr(adapter, "tail_identity", adapter.identity)()
    tag = hashlib.sha256(f"{tail_id}|{getattr(adapter.task, 'name', 'task')}".encode()).hexdigest()[:12]
    return Path(ref.path).with_name(Path(ref.path).stem + f".reference-{tag}.npz")


def prepare_references(adapter, features: FeatureSet, progress: bool = True) -> dict[str, str]:
    """Tail outputs of the uncompressed features, computed once per image and cached beside them."""
    from eval.io import load_arrays

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
                save_arrays(path, adapter.tail(ref.load(), ref.meta))
            paths[ref.sample_id] = str(path)
            bar.update(1)
    return paths


def make_jobs(
    features: FeatureSet,
    references: Mapping[str, str],
    orders: Mapping[str, np.ndarray],
    quantizer: dict,
    codec: str,
    qps: Iterable[int],
    model: dict,
    packing: str = "temporal",
    bitstream_dir: str | None = None,
    extra: dict | None = None,
) -> list[Job]:
    """The grid image x order x qp for one quantizer, packing and codec."""
    jobs = []
    for ref in features.refs:
        for name, order in orders.items():
            for qp in qps:
                jobs.append(
                    Job(
                        image_id=ref.sample_id,
                        image_key=ref.key,
                        feature_path=ref.path,
                        reference_path=references[ref.sample_id],
                        meta=ref.meta,
                        order_name=name,
                        order=tuple(int(i) for i in np.asarray(order)),
                        quantizer=quantizer,
                        packing=packing,
                        codec=codec,
                        qp=int(qp),
                        model=model,
                        annotation=ref.annotation,
                        bitstream_dir=bitstream_dir,
                        extra=dict(extra or {}),
                    )
                )
    return jobs


def write_report(
    out: str | Path,
    rows: Sequence[dict],
    task,
    images: Sequence[str],
    anchor: str = "identity",
    method: str = "pchip",
    title: str = "",
    extra_summary: dict | None = None,
) -> tuple[str, dict]:
    """Write ``results.csv``, ``summary.json`` and ``rd_curves.png`` into ``out``.

    Returns the printable table and the summary dict.
    """
    from eval.report import bd_table, build_curves, format_table, plot_rd_curves, summary_dict
    from eval.store import write_csv_atomic

    out = Path(out)
    ok_rows = [r for r in rows if r.get("status") == "ok"]
    csv_rows = [dict(r, task_stats=json.dumps(r.get("task_stats"), sort_keys=True)) for r in ok_rows]
    write_csv_atomic(out / "results.csv", csv_rows, RESULT_COLUMNS)
    curves = build_curves(ok_rows, task=task, images=images)
    table, notes = bd_table(curves, anchor=anchor, method=method)
    task_name = getattr(task, "name", "task")
    summary = summary_dict(table, anchor, notes, curves, {"task_metric": task_name, "bd_method": method, **(extra_summary or {})})
    atomic_write_json(out / "summary.json", summary)
    if curves:
        plot_rd_curves(curves, out / "rd_curves.png", anchor=anchor, task_label=task_name, title=title)
    return format_table(table, task_name=task_name), summary


# --------------------------------------------------------------------------- setup


@dataclass
class Setup:
    """Everything a study needs before coding: model, features of both splits, fitted quantizer, codec."""

    adapter: object
    model_spec: dict
    calib: FeatureSet
    test: FeatureSet
    quantizer: object
    quantizer_dict: dict
    codec_spec: str


def prepare_setup(
    model_spec: dict,
    calib_samples,
    test_samples,
    quantizer: str = "log",
    codec: str = "vvenc",
    cache_dir: str | Path = ".cache/features",
    progress: bool = True,
    check_codec: bool = True,
) -> Setup:
    """Load the model, cache features of both splits, fit the quantizer on calibration features.

    ``check_codec`` codes two tiny frames first, so a missing or broken codec binary is
    reported before any model work starts.
    """
    from codec import make_codec
    from eval.cache import FeatureCache
    from eval.models import make_model

    codec_obj = make_codec(codec)
    if check_codec:
        smoke_test_codec(codec_obj)
    adapter = make_model(model_spec["name"], **model_spec.get("kwargs", {}))
    cache = FeatureCache(cache_dir)
    calib = prepare_features(adapter, calib_samples, cache, progress, desc="calibration features")
    test = prepare_features(adapter, test_samples, cache, progress, desc="test features")
    q = fit_quantizer(quantizer, calib)
    return Setup(adapter, model_spec, calib, test, q, q.to_dict(), codec_obj.spec())


def fit_quantizer(spec, calib):
    """A quantizer from a spec string (fitted on ``calib``) or a saved dict (kept as saved when it has a range)."""
    from codec import make_quantizer, quantizer_from_dict

    if isinstance(spec, dict):
        q = quantizer_from_dict(spec)
        return q if q.is_fitted else q.fit(calib)
    return make_quantizer(spec).fit(calib)


def smoke_test_codec(codec_obj) -> None:
    """Encode and decode two tiny frames; raises the codec's own clear error if that fails."""
    side = max(32, codec_obj.grid)  # libvvenc rejects 16x16 pictures (its per-picture byte limit is below the parameter sets)
    frames = np.full((2, side, side), 100, dtype=np.uint8)
    codec_obj.decode(codec_obj.encode(frames, 37, bit_depth=8))


def learn_orders(names: Sequence[str], calib: FeatureSet, out_dir: str | Path, provenance: dict, progress: bool = True) -> dict:
    """Fit each named orderer on the calibration features and save its permutation as JSON.

    ``identity`` is always included (it is the anchor). An order already saved in
    ``out_dir`` with the same orderer parameters and calibration digest is reused, so a
    re-run (e.g. after an interruption) keeps the same cells instead of coding new ones.
    """
    from reorder import Permutation, make_orderer

    out_dir = Path(out_dir)
    names = ["identity"] + [n for n in names if n != "identity"]
    orders = {}
    calib_digest = calib.digest()
    for name in names:
        orderer = make_orderer(name)
        params = {k: _plain(v) for k, v in orderer.get_params().items()}
        path = out_dir / f"{_safe_name(name)}.json"
        if path.exists():
            try:
                saved = Permutation.load(path, n_channels=calib.n_channels)
                if saved.provenance.get("orderer_params") == params and saved.provenance.get("calibration_digest") == calib_digest:
                    orders[name] = saved
                    continue
            except ValueError as exc:  # an unreadable saved order is learned again (and overwritten)
                warnings.warn(f"saved order {path} is unusable ({exc}); learning it again", RuntimeWarning, stacklevel=2)
        t0 = time.perf_counter()
        if progress:
            print(f"learning order {name} on {len(calib)} calibration images ...", file=sys.stderr)
        orderer.fit(calib)
        perm = orderer.to_permutation(  # the orderer adds its own parameters, tour cost and solver
            **provenance, orderer=name, orderer_params=params, calibration_digest=calib_digest,
            calibration_images=calib.ids, fit_seconds=round(time.perf_counter() - t0, 3),
        )
        perm.save(path)
        if getattr(orderer, "distance_", None) is not None:  # kept for the similarity heat map
            np.save(path.with_suffix(".distance.npy"), np.asarray(orderer.distance_, dtype=np.float32))
        orders[name] = perm
    return orders


def load_order_files(specs: Sequence[str], n_channels: int, out_dir: str | Path | None = None) -> dict:
    """Load user order files given as ``PATH`` or ``NAME=PATH``; each is validated for ``n_channels``."""
    from reorder import Permutation

    orders = {}
    for spec in specs:
        name, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
        name = name or f"file:{Path(path).stem}"
        if name in orders:
            raise ValueError(f"--order-file: the name {name!r} is used twice; give each file a NAME=PATH")
        perm = Permutation.load(path, n_channels=n_channels)
        orders[name] = perm
        if out_dir is not None:
            perm.save(Path(out_dir) / f"{_safe_name(name)}.json")
    return orders


def _safe_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)


def _plain(value):
    """Parameters as JSON would give them back (tuples become lists), for comparison."""
    return json.loads(json.dumps(value, default=str))


def write_figures(out: str | Path, features: FeatureSet, orders: Mapping[str, object], image_index: int = 0) -> dict[str, Path]:
    """The study's pictures in ``out/figures``: BD-rate bars, channel mosaics of one test image
    in every order, and each learned distance matrix as a heat map in identity and learned orders."""
    import logging

    from eval.figures import figures_from_study, similarity_heatmap

    out = Path(out)
    made = figures_from_study(out, features=features[image_index], image_id=features.ids[image_index])
    all_orders = {name: np.asarray(p.order) for name, p in orders.items()}
    for name in orders:
        dist_path = out / "orders" / f"{_safe_name(name)}.distance.npy"
        if not dist_path.exists():
            continue
        shown = {"identity": all_orders.get("identity", np.arange(features.n_channels)), name: all_orders[name]}
        try:
            made[f"similarity-{name}"] = similarity_heatmap(
                np.load(dist_path), out / "figures" / f"similarity-{_safe_name(name)}.png", orders=shown,
                title=f"calibration-set channel distances of '{name}', in identity and in '{name}' order",
            )
        except ValueError as exc:
            logging.getLogger(__name__).warning("similarity heat map for %s skipped: %s", name, exc)
    return made
