"""Classification fidelity: how far decoded features move a classifier's predictions, in dB.

The classifier stands in for a downstream machine task; there are no labels,
so the task score measures how far decoded features move the network's
*predictive distribution* from what the uncompressed features give. Whole-
image top-1 over a handful of photos moves in steps (a 4-photo set can only
score 0, 25, 50, 75 or 100 %) and was not monotone in the QP. Instead the
tail classifies many overlapping 224 px windows (56 x 56 on the stride-4 map,
``window_stride`` apart): each window is a differently framed crop, so one
image yields dozens of predictions; and instead of a hard top-1 the score uses
the KL divergence from the reference softmax to the decoded softmax, which
changes smoothly with the distortion. The set score is
``-10*log10(sum of per-window KL / number of windows)`` in dB: higher is better,
it behaves like a PSNR of the predictions (a 10x smaller mean KL is +10 dB),
and in scratch runs it was monotone in QP and ranked orders as feature PSNR
did. Top-1 / top-5 agreement with the reference are kept as secondary stats.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np

from eval.errors import FeatureError
from eval.tasks.base import TaskMetric

__all__ = ["KLFidelity", "log_softmax"]


def log_softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax of ``[n, classes]`` logits, stable for large logits."""
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


class KLFidelity(TaskMetric):
    """Fidelity of decoded predictions to the reference predictions, in dB (higher is better).

    ``image_stats(output, reference)`` takes per-window logits ``[n, classes]``
    (decoded and reference, same windows) and returns
    ``{"kl_sum", "n", "top1_agree", "top5_agree", "kl_windows"}``: the summed
    ``KL(softmax(reference) || softmax(output))`` in nats (computed in float64,
    each window's KL clipped at 0 against rounding), the number of windows, and
    how many windows keep the reference top-1 class as top-1 / within the top 5, and each
    window's own KL (``kl_windows``, 6 significant digits: what the bootstrap over windows
    inside images resamples; ``results.csv`` leaves it out, the results store keeps it).

    ``aggregate`` pools windows over all images: ``-10*log10(sum kl / sum n)``.
    A mean KL of exactly 0 (identical predictions, e.g. lossless coding) would
    be +inf, which breaks RD interpolation, so the score is capped at
    ``max_db`` = 100 dB (mean KL 1e-10 nats, far below any lossy codec's
    effect and close to float32 rounding of the logits).
    """

    name = "kl_fidelity_db"
    higher_is_better = True

    def __init__(self, max_db: float = 100.0):
        self.max_db = float(max_db)

    def image_stats(self, output, reference_output, annotation=None) -> dict:
        out = np.asarray(output, dtype=np.float64)
        ref = np.asarray(reference_output, dtype=np.float64)
        if out.shape != ref.shape or out.ndim != 2 or out.shape[0] == 0:
            raise ValueError(
                f"logits shapes {out.shape} and {ref.shape} must be equal [windows, classes]; "
                "run the same tail (same windows) on decoded and reference features"
            )
        if not (np.isfinite(out).all() and np.isfinite(ref).all()):
            raise FeatureError("logits contain NaN/Inf; the decoded features are broken (check the decoder/dequantizer)")
        lp_ref = log_softmax(ref)
        lp_out = log_softmax(out)
        kl = np.maximum((np.exp(lp_ref) * (lp_ref - lp_out)).sum(axis=1), 0.0)
        top_ref = ref.argmax(axis=1)
        k = min(5, out.shape[1])
        top5 = np.argpartition(-out, k - 1, axis=1)[:, :k]
        return {
            "kl_sum": float(kl.sum()),
            "n": int(out.shape[0]),
            "top1_agree": int((out.argmax(axis=1) == top_ref).sum()),
            "top5_agree": int((top5 == top_ref[:, None]).any(axis=1).sum()),
            # per-window KL (6 significant digits) for the bootstrap over windows (eval.analysis.bootstrap)
            "kl_windows": [float(f"{v:.6g}") for v in kl],
        }

    # -- per-window statistics for the two-stage bootstrap (eval.analysis.bootstrap) ---------------
    @staticmethod
    def unit_count(stats: dict) -> int | None:
        """Windows with their own KL in one image's ``stats`` (None for rows stored without them)."""
        kl = stats.get("kl_windows") if isinstance(stats, dict) else None
        return len(kl) if kl else None

    @staticmethod
    def resample_units(stats: dict, index) -> dict:
        """One image's statistics over the windows at ``index`` (repeats allowed): ``{"kl_sum", "n"}``.

        Enough for :meth:`aggregate` and :meth:`mean_kl`; the top-1/top-5 counts are not kept per window.
        """
        kl = np.asarray(stats["kl_windows"], dtype=np.float64)
        idx = np.asarray(index, dtype=np.int64)
        return {"kl_sum": float(kl[idx].sum()), "n": int(idx.size)}

    @staticmethod
    def _totals(stats: Sequence[dict]) -> tuple[float, int]:
        stats = list(stats)
        if not stats:
            raise ValueError("no per-image statistics to aggregate; run at least one image")
        n = sum(int(s["n"]) for s in stats)
        if n <= 0:
            raise ValueError("per-image statistics cover 0 windows; nothing to aggregate")
        return float(sum(float(s["kl_sum"]) for s in stats)), n

    def mean_kl(self, stats: Sequence[dict]) -> float:
        """Mean KL divergence per window (nats) over all images."""
        total, n = self._totals(stats)
        return total / n

    def aggregate(self, stats: Sequence[dict]) -> float:
        mean = self.mean_kl(stats)
        return min(self.max_db, -10.0 * math.log10(mean)) if mean > 0 else self.max_db

    def top1_agreement(self, stats: Sequence[dict]) -> float:
        """Fraction of windows (all images) whose top-1 class matches the reference."""
        _, n = self._totals(stats)
        return sum(int(s["top1_agree"]) for s in stats) / n

    def summary(self, stats: Sequence[dict]) -> dict:
        _, n = self._totals(stats)
        return {
            self.name: self.aggregate(stats),
            "mean_kl": self.mean_kl(stats),
            "top1_agreement": self.top1_agreement(stats),
            "top5_agreement": sum(int(s["top5_agree"]) for s in stats) / n,
            "windows": n,
        }
