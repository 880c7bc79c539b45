"""Confidence intervals for BD-rates: a paired bootstrap over test images (and windows inside them).

What is resampled
-----------------
One bootstrap replicate draws the test images with replacement (a numpy ``Generator`` with a
fixed seed, so the intervals are reproducible). The *same* draw is used for every curve of the
replicate (paired: an order and its anchor are always compared on the same images), the
curves are rebuilt from the drawn images' rows with exactly the aggregation of
:func:`eval.analysis.curves.build_curves` (bpp = total bits, side bits included, over total
pixels; feature PSNR = mean over images; the task score = the task metric's ``aggregate`` over
the drawn per-image statistics; an image drawn twice counts twice), and each order's BD-rate
against the anchor is computed with :func:`~eval.analysis.curves.bd_between` and the study's
``bd_method``. The interval is the 2.5 and 97.5 percentiles of the replicates' BD-rates
(``level`` = 0.95). A replicate whose BD-rate is not computable (e.g. a resampled curve that is
not monotone) is counted in ``failed`` and left out of the percentiles.

Windows inside images (two-stage bootstrap)
-------------------------------------------
Where the task's score is pooled over many units inside each image (MobileNetV2's KL
fidelity: dozens of 224 px windows per image) and the per-image statistics carry the
per-unit values, each drawn image's units are drawn with replacement as well (the same unit
draw for every order and QP of that image in the replicate: paired again). The task metric
opts in with two methods::

    task.unit_count(stats) -> int | None         # units in one image's stats (None: no per-unit data)
    task.resample_units(stats, index) -> dict    # the stats of the units at ``index`` (with repeats)

Feature PSNR and bpp have no such units (the codec codes the whole image), so only the task
BD-rate gets the second stage. ``unit`` in the result says which scheme was used.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import numpy as np

from eval.analysis import curves as C

__all__ = ["Bootstrap", "paired_bootstrap", "percentile_interval", "block_draw"]


def percentile_interval(values: Sequence[float], level: float = 0.95) -> tuple[float, float] | None:
    """The ``level`` percentile interval of the finite ``values``; None when there are none."""
    v = np.asarray([x for x in values if x is not None], dtype=np.float64)
    v = v[np.isfinite(v)]
    if v.size == 0:
        return None
    alpha = (1.0 - float(level)) / 2.0
    lo, hi = np.quantile(v, [alpha, 1.0 - alpha])
    return float(lo), float(hi)


@dataclass
class Bootstrap:
    """Bootstrap BD-rate replicates per curve and metric, and their intervals.

    ``values[setup_key][metric]`` holds one BD-rate per replicate (NaN where it failed);
    ``setup_key`` is the curve's setup as a tuple (see :func:`eval.analysis.curves.setup_key`).
    """

    replicates: int
    seed: int
    level: float
    unit: str  # "images" or "images and windows"
    n_images: int
    values: dict = field(default_factory=dict)

    def interval(self, key: tuple, metric: str) -> tuple[float, float] | None:
        v = self.values.get(key, {}).get(metric)
        return None if v is None else percentile_interval(v, self.level)

    def failed(self, key: tuple, metric: str) -> int:
        v = self.values.get(key, {}).get(metric)
        return 0 if v is None else int(np.count_nonzero(~np.isfinite(v)))

    def describe(self) -> dict:
        """What ``summary.json`` records about the bootstrap itself."""
        return {"replicates": self.replicates, "seed": self.seed, "level": self.level, "unit": self.unit,
                "n_images": self.n_images, "interval": "percentile"}


def _unit_counts(task, by_image: dict[str, list[dict]]) -> dict[str, int] | None:
    """Units per image when every row of every image carries per-unit task data with one count per image."""
    count = getattr(task, "unit_count", None)
    if task is None or count is None or not hasattr(task, "resample_units"):
        return None
    out = {}
    for image, rows in by_image.items():
        counts = {count(C.task_stats(r)) for r in rows}
        if len(counts) != 1 or None in counts or 0 in counts:
            return None
        out[image] = counts.pop()
    return out


#: the fewest runs of consecutive images a block-bootstrap replicate draws (the block is shortened to keep them)
MIN_BLOCKS = 4


def block_draw(rng: np.random.Generator, n: int, block: int) -> np.ndarray:
    """Indices of one moving-block bootstrap sample of ``n`` items: ``ceil(n / block)`` runs of ``block``
    consecutive indices, each starting anywhere in ``0 .. n - block``, joined and cut to ``n``.

    Neighbouring frames of a video are nearly the same picture, so drawing single frames would
    treat near-copies as independent evidence and give intervals that are too narrow; drawing
    runs keeps the dependence inside each run (Kuensch's moving-block bootstrap). ``block >= n``
    draws the whole sequence every time.
    """
    block = max(1, min(int(block), n))
    starts = rng.integers(0, n - block + 1, -(-n // block))
    return (starts[:, None] + np.arange(block)[None, :]).reshape(-1)[:n]


def paired_bootstrap(rows: Iterable[dict], task=None, images: Iterable[str] | None = None, *, anchor: str = "identity",
                     method: str = "pchip", replicates: int = 1000, seed: int = 0, level: float = 0.95,
                     windows: bool = True, setup_columns: Sequence[str] | None = None,
                     match_columns: Sequence[str] | None = None, match_qps: bool = True, block: int = 1) -> Bootstrap:
    """Paired bootstrap of every curve's BD-rate against the anchor order (see the module docstring).

    ``rows``, ``task``, ``images`` as for :func:`eval.analysis.curves.build_curves`; ``anchor``,
    ``method``, ``match_columns`` and ``match_qps`` as for :func:`eval.analysis.curves.bd_table`. ``windows``
    adds the second stage over units inside images when the task supports it. ``block`` > 1 draws
    runs of ``block`` consecutive images of ``images`` (in the order given, e.g. frames in time)
    instead of single images (:func:`block_draw`), shortened where needed so that a replicate has
    at least :data:`MIN_BLOCKS` runs (``unit`` records the length used).
    """
    setup_columns = tuple(C.SETUP_COLUMNS if setup_columns is None else setup_columns)
    match_columns = tuple(C.MATCH_COLUMNS if match_columns is None else match_columns)
    grouped, expected = C.group_rows(rows, setup_columns, images)
    image_list = sorted(expected)
    # at least MIN_BLOCKS runs per replicate: with fewer, every replicate is nearly the same sequence and the
    # interval collapses to a point (one run of all images is the sample itself)
    block = max(1, min(int(block), len(image_list) // MIN_BLOCKS))
    if block > 1:  # runs of consecutive images: the given order is their time order
        image_list = [img for img in dict.fromkeys(images or image_list) if img in expected]
    n = len(image_list)
    # per curve: the complete QPs (as build_curves keeps them) and their rows per image
    curves: dict[tuple, dict] = {}
    for key, by_qp in grouped.items():
        complete = {qp: per_image for qp, per_image in sorted(by_qp.items()) if set(per_image) >= expected}
        curves[key] = {"setup": dict(zip(setup_columns, key)), "points": complete}
    by_image: dict[str, list[dict]] = {img: [] for img in image_list}
    for c in curves.values():
        for per_image in c["points"].values():
            for img in image_list:
                by_image[img].append(per_image[img])
    units = _unit_counts(task, by_image) if windows and task is not None else None
    unit = ("images and windows" if units else "images") + (f" in blocks of {int(block)} consecutive" if int(block) > 1 else "")
    result = Bootstrap(int(replicates), int(seed), float(level), unit, n)
    if n == 0 or replicates <= 0:
        return result

    def match(setup):
        return tuple(setup.get(k) for k in match_columns)

    anchors = {match(c["setup"]): key for key, c in curves.items() if c["setup"].get("order") == anchor}
    pairs = [(key, anchors[match(c["setup"])]) for key, c in curves.items() if match(c["setup"]) in anchors]
    for key, _ in pairs:
        result.values[key] = {m: np.full(int(replicates), np.nan) for m in C.QUALITY_METRICS}

    rng = np.random.default_rng(seed)
    for b in range(int(replicates)):
        draw = [image_list[i] for i in (rng.integers(0, n, n) if int(block) <= 1 else block_draw(rng, n, int(block)))]
        unit_draw = [rng.integers(0, units[img], units[img]) for img in draw] if units else None
        rebuilt: dict[tuple, C.Curve] = {}

        def curve(key):
            if key not in rebuilt:
                c = curves[key]
                out = C.Curve(setup=c["setup"], n_images=n)
                for qp, per_image in c["points"].items():
                    chosen = [per_image[img] for img in draw]
                    stats = None
                    if task is not None and unit_draw is not None:
                        stats = [task.resample_units(C.task_stats(r), idx) for r, idx in zip(chosen, unit_draw)]
                    bpp, psnr, score = C.aggregate_point(chosen, task, stats=stats)
                    out.qp.append(qp)
                    out.bpp.append(bpp)
                    out.feature_psnr.append(psnr)
                    if score is not None:
                        out.task.append(score)
                rebuilt[key] = out
            return rebuilt[key]

        for key, ref in pairs:
            for m in C.QUALITY_METRICS:
                v = C.bd_between(curve(ref), curve(key), m, method, match_qps=match_qps)
                if v is not None:
                    result.values[key][m][b] = v
    return result
