"""The interface of a task metric: per-image statistics, aggregated per RD point.

A :class:`TaskMetric` compares a task output on decoded features with the output on the
original features (or with ground truth) per image, and aggregates per-image statistics
into the one set-level score that becomes the task axis of an RD curve. Per-image
statistics are kept apart from the set-level score on purpose: set-level metrics such as
mAP or a mean KL are not means of per-image scores, so results store sufficient
statistics and aggregate them per curve point.
"""

from __future__ import annotations

import abc
from typing import Any, Sequence

__all__ = ["TaskMetric"]


class TaskMetric(abc.ABC):
    """How good a task output is, per image and over a set.

    Subclasses set ``name`` (recorded with results) and ``higher_is_better``.
    """

    name: str = "task"
    higher_is_better: bool = True

    @abc.abstractmethod
    def image_stats(self, output: Any, reference_output: Any, annotation: Any = None) -> dict:
        """JSON-serialisable statistics of one image's ``output`` against ``reference_output`` / ``annotation``."""

    @abc.abstractmethod
    def aggregate(self, stats: Sequence[dict]) -> float:
        """The set-level score from the per-image statistics of one RD point."""

    def summary(self, stats: Sequence[dict]) -> dict:
        """Set-level score plus any secondary figures, as ``{name: value}`` (default: just the score)."""
        return {self.name: float(self.aggregate(stats))}
