"""A study's output folder: the one module that knows its layout.

::

    OUT/
      results.sqlite           every coded cell as it finishes (the resumable store)
      results.csv              the finished rows, one per image x order x QP (RESULT_COLUMNS)
      summary.json             BD-rate table with 95 % intervals, curve overlaps, warnings, curves, notes,
                               the run's settings and its environment (eval.environment)
      bd_rate_per_image.csv    each order's BD-rate against the anchor on every test image alone
      rd_curves.png            bpp against feature PSNR and against the task metric
      orders/NAME.json         each order with its provenance (NAME made filesystem-safe)
      orders/NAME.distance.npy the calibration distance matrix a learned order was solved on
      figures/                 BD-rate bars, channel mosaics, similarity heat maps
      bitstreams/KEY.bin       every bitstream (with run.keep_bitstreams)
      config.toml              the run's typed configuration: ``--from OUT/config.toml`` runs it again
      mpeg_per_qp.csv          one row per order x QP in CompressAI-Vision's CTTC column order
      .study.lock              held while a study runs in the folder (one study per folder)

Studies and notebooks ask this module for paths and hand it in-memory results;
it writes them (atomically) and draws the figures from the same in-memory data, so
nothing is written and then read back within one run.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from codec.files import atomic_save_npy, atomic_write_json, safe_name, write_csv

__all__ = ["StudyFolder", "OrderFolder", "RESULT_COLUMNS"]

logger = logging.getLogger(__name__)

RESULT_COLUMNS = [
    "image_id", "order", "qp", "bits", "side_bits", "pixels", "bpp", "feature_psnr", "feature_mse", "task_stats",
    "codec", "quantizer", "packing", "order_digest", "encode_seconds", "decode_seconds", "tail_seconds",
    "encode_cpu_seconds", "decode_cpu_seconds", "status", "error", "key",
]
"""``results.csv``'s columns. ``bpp`` = (``bits`` + ``side_bits``) / ``pixels``: ``bits`` is the real
bitstream, ``side_bits`` what is signalled beside it per image (0 for a fixed order and quantizer
known to the decoder); ``*_cpu_seconds`` are the codec processes' CPU time (user + system)."""

#: per-unit task statistics kept in results.sqlite (the bootstrap over windows reads them) but left
#: out of results.csv, which stays one short line per cell
PER_UNIT_STATS = ("kl_windows",)


class OrderFolder:
    """A folder of saved orders: ``STEM.json`` (a :class:`reorder.Permutation`) and ``STEM.distance.npy``.

    ``STEM`` is the order's name where that is a plain file name; a name with other characters
    (``tsp-correlation:normalization=zscore``) gets :func:`safe_name` plus a short digest of the
    exact name, so two names that differ only in such characters never share a file.
    """

    def __init__(self, root: str | Path):
        self.root = Path(root)

    @staticmethod
    def stem(name: str) -> str:
        """The file stem of order ``name``, the same in every run whatever other orders are saved.

        Not :func:`_file_names` (which numbers clashing stems ``-2``, ``-3`` among the names of one
        set of figures): orders are saved and looked up one at a time across runs, so the stem
        must follow from the name alone.
        """
        safe = safe_name(name)
        if safe == str(name):
            return safe
        return f"{safe}-{hashlib.sha256(str(name).encode()).hexdigest()[:8]}"

    def order_path(self, name: str) -> Path:
        return self.root / f"{self.stem(name)}.json"

    def distance_path(self, name: str) -> Path:
        return self.root / f"{self.stem(name)}.distance.npy"

    def sub(self, name: str) -> "OrderFolder":
        return OrderFolder(self.root / self.stem(name))

    def save(self, name: str, permutation, distance: np.ndarray | None = None) -> Path:
        path = permutation.save(self.order_path(name))
        if distance is not None:
            atomic_save_npy(self.distance_path(name), np.asarray(distance, dtype=np.float32))
        return path

    def load(self, name: str, n_channels: int | None = None):
        """The saved order ``name`` (validated), or None when there is none or it is unusable (warned)."""
        from reorder import Permutation

        path = self.order_path(name)
        if not path.exists():
            return None
        try:
            return Permutation.load(path, n_channels=n_channels)
        except ValueError as exc:
            warnings.warn(f"saved order {path} is unusable ({exc}); learning it again", RuntimeWarning, stacklevel=3)
            return None

    def load_distance(self, name: str) -> np.ndarray | None:
        path = self.distance_path(name)
        if not path.exists():
            return None
        try:
            return np.load(path, allow_pickle=False)
        except (OSError, ValueError):
            return None


class StudyFolder:
    """The output folder ``root`` of one study (see the module docstring for its layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    @property
    def store_path(self) -> Path:
        return self.root / "results.sqlite"

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    @property
    def summary_json(self) -> Path:
        return self.root / "summary.json"

    @property
    def rd_plot(self) -> Path:
        return self.root / "rd_curves.png"

    @property
    def bd_per_image_csv(self) -> Path:
        return self.root / "bd_rate_per_image.csv"

    @property
    def figures_dir(self) -> Path:
        return self.root / "figures"

    @property
    def bitstreams_dir(self) -> Path:
        return self.root / "bitstreams"

    @property
    def orders(self) -> OrderFolder:
        return OrderFolder(self.root / "orders")

    def order_folder(self, *parts: str) -> OrderFolder:
        """Orders learned for a part of a study (``oracle/IMAGE``, ``calib_size/k4``)."""
        folder = OrderFolder(self.root)
        for part in parts:
            folder = folder.sub(part)
        return folder

    def results_store(self):
        from eval.pipeline.store import ResultStore

        return ResultStore(self.store_path)

    # ---------------------------------------------------------------- reading a finished study

    def read_summary(self) -> dict:
        """``summary.json`` as written by :meth:`write_report` (FileNotFoundError when the study has not finished)."""
        import json

        return json.loads(self.summary_json.read_text())

    def saved_orders(self, names, n_channels: int | None = None) -> dict:
        """``{name: Permutation}`` of the orders saved under ``orders/`` (names without a usable file are left out)."""
        found = {}
        for name in names:
            perm = self.orders.load(name, n_channels=n_channels)
            if perm is not None:
                found[name] = perm
        return found

    def saved_distances(self, names) -> dict[str, np.ndarray]:
        """``{name: distance matrix}`` of the learned orders among ``names`` that saved one."""
        found = {}
        for name in names:
            d = self.orders.load_distance(name)
            if d is not None:
                found[name] = d
        return found

    # ---------------------------------------------------------------- writing

    def write_csv(self, name: str, rows: Sequence[dict], columns: Sequence[str] | None = None) -> Path:
        return write_csv(self.root / name, rows, list(dict.fromkeys(columns)) if columns is not None else None)

    def write_json(self, name: str, obj) -> Path:
        return atomic_write_json(self.root / name, obj)

    def write_results(self, rows: Sequence[dict], columns: Sequence[str] = RESULT_COLUMNS) -> Path:
        """``results.csv``: the finished rows, task statistics as JSON text (without per-window lists,
        :data:`PER_UNIT_STATS`); rows stored before ``side_bits`` existed get 0 (nothing was signalled)."""
        import json

        def compact(stats):
            if isinstance(stats, dict):
                stats = {k: v for k, v in stats.items() if k not in PER_UNIT_STATS}
            return json.dumps(stats, sort_keys=True)

        ok = [dict(r, task_stats=compact(r.get("task_stats")), side_bits=int(r.get("side_bits") or 0))
              for r in rows if r.get("status") == "ok"]
        return self.write_csv("results.csv", ok, columns)

    def write_bd_per_image(self, report) -> Path:
        """``bd_rate_per_image.csv``: each order's BD-rate against the anchor on every test image alone
        (``report.per_image``, :func:`eval.analysis.curves.per_image_bd`)."""
        columns = ["image_id", "order", "bd_feature_psnr", "bd_task", "overlap_feature_psnr", "overlap_task",
                   "packing", "codec", "note"]  # the quantizer (long JSON) is in summary.json
        return self.write_csv(self.bd_per_image_csv.name, report.per_image, columns)

    def write_report(self, report, title: str = "", extra_summary: dict | None = None) -> dict:
        """``summary.json``, ``rd_curves.png`` and (when the report has them) ``bd_rate_per_image.csv`` of an
        :class:`eval.analysis.report.Report`; returns the summary."""
        from eval.plots import plot_rd_curves

        summary = report.summary(extra_summary)
        self.write_json("summary.json", summary)
        if getattr(report, "per_image", None):
            self.write_bd_per_image(report)
        if report.curves:
            plot_rd_curves(report.curves, self.rd_plot, anchor=report.anchor, task_label=report.task_name, title=title)
        return summary

    @property
    def runs_plot(self) -> Path:
        return self.root / "rd_curves_runs.png"

    def write_runs_plot(self, report, title: str = "") -> Path:
        """``rd_curves_runs.png``: the RD curves of every quantizer x order run (a report from
        :func:`eval.pipeline.quantizer_runs.runs_report`), the anchor run highlighted."""
        from eval.plots import plot_rd_curves

        plot_rd_curves(report.curves, self.runs_plot, anchor=report.anchor, task_label=report.task_name, title=title)
        return self.runs_plot

    def write_figures(self, report, features, image_id: str, orders: Mapping[str, np.ndarray],
                      distances: Mapping[str, np.ndarray] | None = None) -> dict[str, Path]:
        """``figures/``: BD-rate bars, channel mosaics of one test image in every order, similarity heat maps."""
        from eval.plots.study_figures import study_figures

        return study_figures(
            self.root, bd_table=report.bd_rates(), features=features, image_id=image_id,
            orders={name: np.asarray(o) for name, o in orders.items()}, distances=dict(distances or {}), anchor=report.anchor,
        )

    # ---------------------------------------------------------------- configuration and MPEG export

    @property
    def config_toml(self) -> Path:
        return self.root / "config.toml"

    @property
    def mpeg_csv(self) -> Path:
        return self.root / "mpeg_per_qp.csv"

    def write_config(self, text: str) -> Path:
        """``config.toml``: the run's typed configuration as TOML text
        (:func:`eval.experiments.config.config_to_toml`), written atomically."""
        from codec.files import atomic_write_text

        return atomic_write_text(self.config_toml, text)

    def write_mpeg_csv(self, report) -> Path:
        """``mpeg_per_qp.csv``: one row per order and QP of a report, CompressAI-Vision's CTTC column order
        (:mod:`eval.analysis.mpeg_csv`)."""
        from eval.analysis.mpeg_csv import MPEG_CSV_COLUMNS, mpeg_rows

        return self.write_csv(self.mpeg_csv.name, mpeg_rows(report), MPEG_CSV_COLUMNS)
