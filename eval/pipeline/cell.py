"""The one shared codec+eval core: every study codes and scores features through here.

One *cell* is (image, order, quantizer, packing, codec, qp). :func:`code_features` runs the
data path of a cell::

    features -> permute -> quantize -> pack as frames -> encode -> bitstream (bits counted)
             -> decode -> unpack -> dequantize -> un-permute -> reconstructed features

and :func:`run_job` adds the measurements (bits, feature PSNR, the model tail on the
reconstruction and the task statistics against the uncompressed tail) and returns one
flat result row. Jobs are small picklable descriptions that point at cached feature files,
so they run the same inline, in local processes or on a Dask cluster (:mod:`eval.pipeline.runner`).
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import socket
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping

import numpy as np

from eval.analysis.metrics import mse_and_psnr
from eval.errors import FeatureError
from eval.pipeline.cell_process import TAIL_THREADS, keep_heap, limit_threads, loaded_adapter, torch_threads
from eval.pipeline.faults import resource_fault

__all__ = ["CodingResult", "Job", "code_features", "run_job", "check_features", "cell_key", "make_jobs", "order_side_bits"]


@dataclass
class CodingResult:
    """What one encode/decode round trip produced."""

    reconstruction: np.ndarray  # float32 [C,H,W] in the ORIGINAL channel order
    bits: int  # bits of the real bitstream
    bitstream: Any  # codec.Bitstream
    encode_seconds: float
    decode_seconds: float
    # CPU seconds (user + system) of the codec's child processes (ffmpeg, VTM) while encoding /
    # decoding: unlike wall time this is not inflated by other jobs on a shared machine.
    # Exact when one cell runs at a time in a process (inline and the runner's single-threaded
    # workers). None when not measured (older callers).
    encode_cpu_seconds: float | None = None
    decode_cpu_seconds: float | None = None


def _children_cpu() -> float:
    """CPU seconds used so far by this process's finished, waited-for child processes."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def check_features(features: np.ndarray, n_channels: int | None = None, where: str = "features") -> np.ndarray:
    """Validate one image's features ([C,H,W], finite, matching the permutation length)."""
    arr = np.asarray(features)
    if arr.ndim != 3:
        raise FeatureError(f"{where}: expected a [C,H,W] array, got shape {arr.shape}; check the model head's output "
                           "(or delete this feature cache entry so it is recomputed)")
    if not np.isfinite(arr).all():
        bad = int((~np.isfinite(arr)).sum())
        raise FeatureError(
            f"{where}: {bad} NaN/Inf values; the model head or the cached file is broken "
            "(delete the feature cache entry and recompute)"
        )
    if n_channels is not None and arr.shape[0] != n_channels:
        raise FeatureError(
            f"{where}: {arr.shape[0]} channels but the channel order has {n_channels} entries; "
            "use an order learned for this model and layer"
        )
    return arr.astype(np.float32, copy=False)


def code_features(features, permutation, quantizer, packing, codec, qp: int) -> CodingResult:
    """Code one image's features with a channel order and return the reconstruction and bits.

    ``permutation`` is a :class:`reorder.Permutation`, ``quantizer`` a fitted codec
    quantizer, ``packing`` a codec packing, ``codec`` a codec backend.
    """
    features = check_features(features, permutation.n_channels)
    permuted = getattr(quantizer, "permuted", None)  # per-channel parameters follow the order (global: itself)
    if callable(permuted):
        quantizer = permuted(permutation.order)
    codes = quantizer.quantize(permutation.apply(features))
    frames = packing.pack(codes, codec.grid)
    c0, t0 = _children_cpu(), time.perf_counter()
    bitstream = codec.encode(frames, int(qp), bit_depth=quantizer.bits)
    c1, t1 = _children_cpu(), time.perf_counter()
    decoded = codec.decode(bitstream)
    c2, t2 = _children_cpu(), time.perf_counter()
    rec_codes = packing.unpack(decoded, codes.shape)
    reconstruction = permutation.invert(quantizer.dequantize(rec_codes)).astype(np.float32, copy=False)
    return CodingResult(reconstruction, int(bitstream.bits), bitstream, t1 - t0, t2 - t1, c1 - c0, c2 - c1)


def order_side_bits(n_channels: int) -> int:
    """Bits to signal one permutation of ``n_channels`` channels with a fixed-length index: ceil(log2(n!)).

    What a per-image (or per-stream) order would put in :attr:`Job.side_bits` (830 bits for
    MobileNetV2's 144 channels); a fixed order known to the decoder costs 0.
    """
    import math

    n = int(n_channels)
    return 0 if n <= 1 else math.ceil(math.lgamma(n + 1) / math.log(2) - 1e-9)


def cell_key(**parts) -> str:
    """Stable key of a cell from its defining parts (JSON-canonicalised, sha256)."""
    text = json.dumps(parts, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True)
class Job:
    """A picklable description of one cell; the heavy data lives in files on a shared path."""

    image_id: str
    image_key: str  # content key of the cached features (model, layer, image bytes)
    feature_path: str  # .npy of float32 [C,H,W]; meta JSON beside it
    reference_path: str  # .npz of the uncompressed tail output
    meta: dict
    order_name: str
    order: tuple
    quantizer: dict  # codec.quantizer to_dict()
    packing: str
    codec: str  # codec registry spec
    qp: int
    model: dict  # {"name": ..., "kwargs": {...}} for eval.models.make_model
    annotation: Any = None
    bitstream_dir: str | None = None  # keep bitstreams here when set
    extra: dict = field(default_factory=dict)  # recorded verbatim in the row (e.g. ablation axes)
    # Bits of side information sent with this image's stream and counted in its bpp: 0 for a fixed
    # order and a fixed quantizer the decoder knows beforehand (learned once, shipped with the
    # decoder); an order or quantizer range chosen per image or per stream fills in its real size.
    side_bits: int = 0

    @property
    def order_digest(self) -> str:
        return hashlib.sha256(np.asarray(self.order, dtype=np.int64).tobytes()).hexdigest()[:12]

    @property
    def key(self) -> str:
        return cell_key(
            image=self.image_key,
            order=self.order_digest,
            quantizer=self.quantizer,
            packing=self.packing,
            codec=self.codec,
            qp=int(self.qp),
            model=self.model,
            # signalled side information makes another cell (same bits, other rate); 0 keeps existing keys
            **({"side_bits": int(self.side_bits)} if self.side_bits else {}),
        )

    def describe(self) -> dict:
        """The columns that identify the cell in a result row."""
        return {
            "key": self.key,
            "image_id": self.image_id,
            "order": self.order_name,
            "order_digest": self.order_digest,
            "quantizer": json.dumps(self.quantizer, sort_keys=True),
            "packing": self.packing,
            "codec": self.codec,
            "qp": int(self.qp),
            "pixels": int(self.meta["pixels"]),
            "side_bits": int(self.side_bits),
            **self.extra,
        }


def _feature_quality(adapter, meta: dict, features: np.ndarray, reconstruction: np.ndarray) -> dict:
    """``feature_mse`` and ``feature_psnr`` over the part of the map that holds the image.

    An adapter whose features carry padding names that part with ``valid_region(meta)``
    (top-left ``(h, w)``, e.g. detectron2's C2 of an input padded to a multiple of 32); the
    row then records it as ``feature_valid_hw``. Bits always count the whole coded map.
    Adapters without padding (MobileNetV2) return None: the whole map, as always.
    """
    region = getattr(adapter, "valid_region", None)
    hw = region(meta) if callable(region) else None
    if hw is None:
        err, psnr = mse_and_psnr(features, reconstruction)
        return {"feature_mse": float(err), "feature_psnr": float(psnr)}
    h, w = (int(v) for v in hw)
    if not (0 < h <= features.shape[-2] and 0 < w <= features.shape[-1]):
        raise FeatureError(f"valid region {h}x{w} of {type(adapter).__name__} does not fit its {features.shape[-2]}x"
                           f"{features.shape[-1]} feature map; the features do not belong to this meta")
    ref, rec = features[..., :h, :w], reconstruction[..., :h, :w]
    err, psnr = mse_and_psnr(ref, rec)
    return {"feature_mse": float(err), "feature_psnr": float(psnr), "feature_valid_hw": [h, w]}


def run_job(job: Job, single_thread: bool = True) -> dict:
    """Run one cell and return its result row; failures become ``status="error"`` rows.

    Errors never propagate: a failed encode is data (the study records it and goes on).
    """
    from codec import make_codec, make_packing, quantizer_from_dict
    from codec.files import atomic_write_bytes
    from eval.pipeline.cache import load_arrays
    from reorder import Permutation

    if single_thread:
        limit_threads()
    keep_heap()
    row = job.describe()
    row.update(status="ok", error="", host=socket.gethostname(), pid=os.getpid())
    t_cell = time.perf_counter()
    try:
        permutation = Permutation(np.asarray(job.order, dtype=np.int64), {"name": job.order_name})
        features = check_features(np.load(job.feature_path, allow_pickle=False), permutation.n_channels, job.feature_path)
        quantizer = quantizer_from_dict(job.quantizer)
        codec = make_codec(job.codec)
        packing = make_packing(job.packing)
        result = code_features(features, permutation, quantizer, packing, codec, job.qp)
        per_image = getattr(quantizer, "side_bits", None)  # e.g. offsets/scales sent with each image (global: 0)
        if callable(per_image):
            row["side_bits"] = int(row["side_bits"]) + int(per_image(permutation.n_channels))
        if job.bitstream_dir:
            atomic_write_bytes(Path(job.bitstream_dir) / f"{job.key}.bin", result.bitstream.data)
        adapter = loaded_adapter(job.model)
        t0 = time.perf_counter()
        with torch_threads(TAIL_THREADS):  # the same sums inline and on workers
            output = adapter.tail(result.reconstruction, job.meta)
        tail_seconds = time.perf_counter() - t0
        reference = load_arrays(job.reference_path)
        stats = adapter.task.image_stats(output, reference, job.annotation)
        row.update(
            bits=result.bits,
            bpp=(result.bits + row["side_bits"]) / row["pixels"],  # side information counts (0 today)
            **_feature_quality(adapter, job.meta, features, result.reconstruction),
            task_stats=stats,
            encode_seconds=round(result.encode_seconds, 4),
            decode_seconds=round(result.decode_seconds, 4),
            encode_cpu_seconds=round(result.encode_cpu_seconds, 4),
            decode_cpu_seconds=round(result.decode_cpu_seconds, 4),
            tail_seconds=round(tail_seconds, 4),
            # the whole cell (load, quantize, pack, code, unpack, tail, metrics, writes): what
            # studies.bench_pipeline splits into codec and non-codec shares
            cell_seconds=round(time.perf_counter() - t_cell, 4),
        )
    except Exception as exc:  # noqa: BLE001 - every failure is recorded against its row
        row.update(status="error", error=f"{type(exc).__name__}: {exc}".strip(), traceback=traceback.format_exc(limit=6))
        fault = resource_fault(exc)
        if fault is not None:  # the machine's fault, not the cell's: the runner stops the study and stores nothing
            row["resource_fault"] = fault
    return row


def make_jobs(
    features,
    references: Mapping[str, str],
    orders: Mapping[str, np.ndarray],
    quantizer: dict,
    codec: str,
    qps: Iterable[int],
    model: dict,
    packing: str = "temporal",
    bitstream_dir: str | None = None,
    extra: dict | None = None,
    side_bits: int = 0,
) -> list[Job]:
    """The grid image x order x qp for one quantizer, packing and codec (``features``: a FeatureSet).

    ``side_bits``: bits sent with each image besides its bitstream (a per-image order's index); 0 for
    orders and quantizers fixed in the decoder.
    """
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
                        side_bits=int(side_bits),
                    )
                )
    return jobs
