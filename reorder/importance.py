"""How much the task needs each channel, as data an orderer can use (reorder knows no model).

A :class:`ChannelImportance` holds, per channel, the task loss when that channel alone is coded at
a reference QP offset (``reference_offset``, e.g. +9: VVenC's top temporal layer), measured by
:mod:`eval.pipeline.importance` on the calibration split, and optionally the measured
:class:`~reorder.position_loss.PositionLoss` that says how a channel's error changes with the
offset. Task losses of separately coded channels add up to first order (the task loss is a
second-order function of small feature errors, and errors of different channels are
uncorrelated), and each scales with its channel's error energy, so an order that puts channel
``c`` at a position of QP offset ``o`` is expected to cost::

    W[c, o] = importance[c] * mse_c(o) / mse_c(reference_offset)

and the order ``sum_p W[order[p], offset(p)]`` (:meth:`ChannelImportance.expected_loss`). Without
a position-loss model the ratio is ``2 ** ((o - reference_offset) / 3)``, the squared quantiser
step. :meth:`ChannelImportance.weighted_qp` is the importance-weighted mean QP offset of an order.

Files: JSON written by :meth:`save` (``format: fcm-channel-importance``), read by :meth:`load`;
:func:`as_importance` accepts a path, a dict, a vector or an instance.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .position_loss import PositionLoss

__all__ = ["ChannelImportance", "as_importance", "qp_offsets_of", "IMPORTANCE_FORMAT"]

IMPORTANCE_FORMAT = "fcm-channel-importance"


def qp_offsets_of(structure) -> np.ndarray:
    """The QP offset of every position of a :class:`codec.structure.PredictionStructure` (or a sequence)."""
    values = getattr(structure, "qp_offset", structure)
    if any(v is None for v in values):
        source = getattr(structure, "source", "")
        raise ValueError(f"the prediction structure {source!r} does not give every position's QP offset; "
                         "use a codec whose structure does (vvenc, vtm:cfg=...)")
    return np.asarray(values, dtype=np.float64)


@dataclass(frozen=True)
class ChannelImportance:
    """Per-channel task loss at ``reference_offset`` and how it changes with the offset (module docstring)."""

    importance: np.ndarray
    reference_offset: float = 9.0
    loss: PositionLoss | None = None
    provenance: dict = field(default_factory=dict)

    def __post_init__(self):
        imp = np.asarray(self.importance, dtype=np.float64)
        if imp.ndim != 1 or imp.size == 0 or not np.isfinite(imp).all() or (imp < 0).any():
            raise ValueError("channel importance must be a non-empty vector of finite values >= 0")
        if self.loss is not None and self.loss.n_channels != imp.size:
            raise ValueError(f"channel importance has {imp.size} channels but its position loss model has "
                             f"{self.loss.n_channels}; both must come from the same layer")
        object.__setattr__(self, "importance", imp)
        object.__setattr__(self, "reference_offset", float(self.reference_offset))

    @property
    def n_channels(self) -> int:
        return int(self.importance.size)

    def _check_order(self, order) -> np.ndarray:
        order = np.asarray(order, dtype=np.int64)
        if sorted(order.tolist()) != list(range(self.n_channels)):
            raise ValueError(f"order must be a permutation of 0..{self.n_channels - 1} (the importance's channels)")
        return order

    def ratio(self, offsets) -> np.ndarray:
        """[C, K]: each channel's error at the QP offsets ``offsets`` relative to its error at ``reference_offset``."""
        o = np.asarray(offsets, dtype=np.float64).ravel()
        if self.loss is not None:
            return self.loss.ratio(o, self.reference_offset)
        return np.broadcast_to(2.0 ** ((o - self.reference_offset) / 3.0), (self.n_channels, o.size)).copy()

    def position_table(self, structure) -> np.ndarray:
        """[C, n_positions]: ``W[c, p]``, the expected task loss of channel ``c`` at position ``p`` of ``structure``."""
        offsets = qp_offsets_of(structure)
        if offsets.size != self.n_channels:
            raise ValueError(f"the structure has {offsets.size} positions for {self.n_channels} channels")
        levels, inverse = np.unique(offsets, return_inverse=True)
        return self.importance[:, None] * self.ratio(levels)[:, inverse]

    def expected_loss(self, order, structure) -> float:
        """The order's expected task loss ``sum_p W[order[p], p]`` (importance units, e.g. nats of KL)."""
        order = self._check_order(order)
        W = self.position_table(structure)
        return float(W[order, np.arange(order.size)].sum())

    def weighted_qp(self, order, structure) -> float:
        """Importance-weighted mean QP offset of the positions ``order`` puts the channels at."""
        order = self._check_order(order)
        offsets = qp_offsets_of(structure)
        total = self.importance.sum()
        if total <= 0:
            return float(offsets.mean())
        return float((self.importance[order] * offsets).sum() / total)

    # -- files --------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        return {"format": IMPORTANCE_FORMAT, "version": 1, "n_channels": self.n_channels,
                "importance": [float(x) for x in self.importance], "reference_offset": self.reference_offset,
                "loss": None if self.loss is None else self.loss.to_dict(), "provenance": self.provenance}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "importance") -> "ChannelImportance":
        if not isinstance(d, dict) or "importance" not in d:
            raise ValueError(f"{source}: not a channel importance (a JSON object with an 'importance' list); "
                             "write one with eval.pipeline.importance")
        if d.get("format", IMPORTANCE_FORMAT) != IMPORTANCE_FORMAT:
            raise ValueError(f"{source}: format {d.get('format')!r} is not {IMPORTANCE_FORMAT!r}")
        loss = PositionLoss.from_dict(d["loss"]) if d.get("loss") else None
        return cls(np.asarray(d["importance"], dtype=np.float64), float(d.get("reference_offset", 9.0)), loss,
                   dict(d.get("provenance") or {}))

    def save(self, path) -> Path:
        from codec.files import atomic_write_text

        return atomic_write_text(Path(path), json.dumps(self.to_dict(), indent=1))

    @classmethod
    def load(cls, path) -> "ChannelImportance":
        p = Path(path)
        try:
            d = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ValueError(f"importance file {p} does not exist; compute it with eval.pipeline.importance") from None
        except json.JSONDecodeError as exc:
            raise ValueError(f"importance file {p} is not JSON ({exc})") from None
        return cls.from_dict(d, source=f"importance file {p}")

    def digest(self) -> str:
        """Identifies the importance data (values, reference offset, loss model), for order provenance."""
        d = self.to_dict()
        d.pop("provenance")
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def as_importance(value: Any) -> ChannelImportance:
    """A :class:`ChannelImportance` from an instance, a JSON path, a dict, or a plain vector (no loss model)."""
    if isinstance(value, ChannelImportance):
        return value
    if value is None:
        raise ValueError("this orderer needs channel importance: pass importance=PATH (a JSON written by "
                         "eval.pipeline.importance) or a vector")
    if isinstance(value, (str, Path)):
        return ChannelImportance.load(value)
    if isinstance(value, dict):
        return ChannelImportance.from_dict(value)
    return ChannelImportance(np.asarray(value, dtype=np.float64))
