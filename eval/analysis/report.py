"""A study's RD curves, BD-rates against the anchor, their intervals and per-image BD-rates, in one object.

:class:`Report` joins what :mod:`eval.analysis.curves` builds (curves, the BD-rate table) with
the paired-bootstrap intervals of :mod:`eval.analysis.bootstrap`; it lives apart from both so
that each of them imports only the one below it (bootstrap resamples curves; curves know no
bootstrap).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

from eval.analysis.bootstrap import paired_bootstrap
from eval.analysis.curves import (MATCH_COLUMNS, MIN_OVERLAP, QUALITY_METRICS, SETUP_COLUMNS, bd_table, build_curves, format_table,
                                  overlap_warnings, per_image_bd)

__all__ = ["Report"]


@dataclass
class Report:
    """A study's RD curves and their BD-rates against the anchor order, in memory.

    :meth:`summary` is the content of ``summary.json``; :meth:`format` the printed table;
    :meth:`bd_rates` what the BD-rate figure draws. ``bootstrap`` (an
    :class:`eval.analysis.bootstrap.Bootstrap`) gives every BD-rate its interval;
    ``per_image`` the BD-rates on each test image alone; ``warnings`` what a reader must
    not miss (curves that overlap too little for a BD-rate, failed bootstrap replicates).
    """

    curves: list
    table: list
    notes: list
    anchor: str = "identity"
    method: str = "pchip"
    task_name: str = "task"
    bootstrap: object = None
    per_image: list = field(default_factory=list)
    warnings: list = field(default_factory=list)
    min_overlap: float = MIN_OVERLAP

    @classmethod
    def from_rows(cls, rows: Iterable[dict], task, images: Iterable[str], anchor: str = "identity",
                  method: str = "pchip", *, replicates: int = 1000, seed: int = 0, level: float = 0.95,
                  windows: bool = True, min_overlap: float = MIN_OVERLAP, setup_columns: Sequence[str] = SETUP_COLUMNS,
                  match_columns: Sequence[str] = MATCH_COLUMNS, match_qps: bool = True, block: int = 1) -> "Report":
        """Curves, BD-rates, their paired-bootstrap intervals (``replicates`` = 0: none) and per-image BD-rates.

        ``block`` > 1 resamples runs of that many consecutive test images (video frames in time
        order, as ``images`` lists them; :func:`eval.analysis.bootstrap.block_draw`).

        ``setup_columns``, ``match_columns`` and ``match_qps`` as for :func:`build_curves` and
        :func:`bd_table`; the defaults compare each order with the anchor order coded the same
        way at the same QPs. A comparison across quantizers relabels the rows (``order`` = the
        run) and passes ``setup_columns=("order",), match_columns=(), match_qps=False``.
        """
        rows = list(rows)
        images = list(images)
        curves = build_curves(rows, task=task, images=images, setup_columns=setup_columns)
        table, notes = bd_table(curves, anchor=anchor, method=method, match_columns=match_columns, match_qps=match_qps)
        boot, failures = None, []
        if replicates:
            boot = paired_bootstrap(rows, task, images, anchor=anchor, method=method, replicates=replicates,
                                    seed=seed, level=level, windows=windows, setup_columns=setup_columns,
                                    match_columns=match_columns, match_qps=match_qps, block=block)
            for t in table:
                key = tuple(t.get(c) for c in setup_columns)
                for m in QUALITY_METRICS:
                    t[f"bd_{m}_ci"] = boot.interval(key, m) if t[f"bd_{m}"] is not None else None
                    failed = boot.failed(key, m) if key in boot.values and t[f"bd_{m}"] is not None else 0
                    t[f"bd_{m}_failed"] = failed
                    if failed:
                        failures.append(f"{t['order']} {m}: {failed} of {boot.replicates} bootstrap replicates had no "
                                        f"computable BD-rate (a resampled curve not monotone); the interval comes from "
                                        f"the other {boot.replicates - failed}")
        warnings = overlap_warnings(table, anchor, min_overlap) + failures
        per_image = per_image_bd(rows, task, images, anchor=anchor, method=method, setup_columns=setup_columns,
                                 match_columns=match_columns, match_qps=match_qps)
        return cls(curves, table, notes, anchor, method, getattr(task, "name", "task"), boot, per_image, warnings, min_overlap)

    def bd_rates(self) -> dict:
        """``{order: {"feature_psnr": x, "task": y}}``, plus ``"feature_psnr_ci"``/``"task_ci"`` ``[lo, hi]`` with a bootstrap."""
        out = {}
        for t in self.table:
            entry = {}
            for m in QUALITY_METRICS:
                entry[m] = t[f"bd_{m}"]
                if self.bootstrap is not None:
                    ci = t.get(f"bd_{m}_ci")
                    entry[f"{m}_ci"] = None if ci is None else [float(ci[0]), float(ci[1])]
            out[t["order"]] = entry
        return out

    def overlaps(self) -> dict:
        """``{order: {"feature_psnr": share, "task": share}}``: how much of the anchor's quality range each curve covers."""
        return {t["order"]: {m: t.get(f"overlap_{m}") for m in QUALITY_METRICS} for t in self.table}

    def format(self) -> str:
        return format_table(self.table, task_name=self.task_name)

    def summary(self, extra: dict | None = None) -> dict:
        """``{"anchor", "bd_rate": {ORDER: {"feature_psnr", "feature_psnr_ci", "task", "task_ci"}}, "overlap", "warnings",
        "bootstrap", "curves", "notes", "task_metric", "bd_method", ...}``."""
        boot = None
        if self.bootstrap is not None:
            boot = dict(self.bootstrap.describe(), failed={
                t["order"]: {m: t.get(f"bd_{m}_failed", 0) for m in QUALITY_METRICS} for t in self.table})
        return {
            "anchor": self.anchor,
            "bd_rate": self.bd_rates(),
            "overlap": self.overlaps(),
            "min_overlap": self.min_overlap,
            "warnings": list(self.warnings),
            "bootstrap": boot,
            "curves": [c.as_dict() for c in self.curves],
            "notes": list(self.notes),
            "task_metric": self.task_name,
            "bd_method": self.method,
            **(extra or {}),
        }
