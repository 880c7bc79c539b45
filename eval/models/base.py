"""The two interfaces every model plugs into the evaluation through.

A :class:`ModelAdapter` splits a network at one layer: :meth:`~ModelAdapter.head`
turns an image into the feature map that gets coded, :meth:`~ModelAdapter.tail`
turns (decoded) features into the task output. Its :class:`TaskMetric` compares
a task output on decoded features with the output on the original features (or
with ground truth) per image, and aggregates per-image statistics into the one
set-level score that becomes the task axis of an RD curve.

Per-image statistics are kept separate from the set-level score on purpose:
set-level metrics such as mAP or a mean KL are not means of per-image scores,
so results store sufficient statistics and aggregate them per curve point.
"""

from __future__ import annotations

import abc
from typing import Any, Sequence

import numpy as np

__all__ = ["ModelAdapter", "TaskMetric"]


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


class ModelAdapter(abc.ABC):
    """A network split at one layer into ``head`` (image -> features) and ``tail`` (features -> task output).

    Attributes: ``name`` (registry name), ``layer`` (where the split is),
    ``n_channels`` (C of the feature map), ``task`` (a :class:`TaskMetric`).
    """

    name: str
    layer: str
    n_channels: int
    task: TaskMetric

    @abc.abstractmethod
    def identity(self) -> str:
        """A stable string that changes whenever the features would: model, layer, weights digest, preprocessing.

        Used as (part of) the feature-cache key.
        """

    @abc.abstractmethod
    def head(self, image: np.ndarray) -> tuple[np.ndarray, dict]:
        """Features of one ``H x W x 3`` uint8 RGB image: ``(float32 [C, h, w], meta)``.

        ``meta`` is JSON-serialisable and holds at least ``"pixels"``, the input
        image's ``H * W`` (the denominator of bits per pixel), plus whatever the
        tail needs to run on the features alone.
        """

    @abc.abstractmethod
    def tail(self, features: np.ndarray, meta: dict) -> Any:
        """Task output from (possibly decoded) float32 ``[C, h, w]`` features and the head's ``meta``."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={getattr(self, 'name', '?')!r}, layer={getattr(self, 'layer', '?')!r})"
