"""A study's RD points as an MPEG-style per-QP CSV, in the column order of CompressAI-Vision's CTTC files.

CompressAI-Vision (the MPEG FCM reference evaluation framework) writes one ``summary.csv``
per coded operating point and gathers them into the per-dataset CSV that is pasted into
the MPEG common-test-condition (CTTC) reporting templates. For an image dataset (its
``bpp`` mode, e.g. OpenImages V6) that CSV has the columns

    Dataset, qp, avg_bpp, end_accuracy, y_psnr, nn_part_1, encode, decode, nn_part_2

one row per dataset and QP, sorted by dataset then QP; ``avg_bpp`` is the total bitstream
bits over the total input-image pixels, ``end_accuracy`` the task score (mAP, in percent),
``y_psnr`` an empty column kept for the template, and the rest timings. (Video datasets use
``bitrate (kbps)`` in the place of ``avg_bpp``; CompressAI-Vision's ``to_csv`` also writes
pandas' unnamed row-index column first.)

:func:`mpeg_rows` writes a study's :class:`eval.analysis.report.Report` the same way, one row
per order (its RD curve) and QP, straight from the curves held in memory:

=================  ==========================================================================
column             value here
=================  ==========================================================================
``Dataset``        the order's name (``Curve.label``): each order is one RD curve, as each
                   dataset is one curve in a CTTC file
``qp``             the codec QP (``Curve.qp``)
``avg_bpp``        bits per input-image pixel over the test set (``Curve.bpp``), the same
                   definition as CompressAI-Vision's ``avg_bpp``
``end_accuracy``   the task metric as the study aggregates it (``Curve.task``), on its own
                   scale, not multiplied by 100 (``kl_fidelity_db`` is in dB; multiply a
                   ``map50`` value by 100 for a template that expects percent); empty when
                   the study has no task curve
``y_psnr``         the feature PSNR in dB (``Curve.feature_psnr``) of the decoded features
                   against the uncompressed ones, in the template's PSNR column
                   (CompressAI-Vision leaves it empty: it has no feature PSNR)
``codec``,         the coding setup of the curve, then the number of test images and the
``quantizer``,     task metric's name (where CompressAI-Vision puts its timing columns,
``packing``,       which a curve does not hold; per-cell times are in ``results.csv``)
``n_images``,
``task_metric``
=================  ==========================================================================

Rows follow the report's curve order, QPs ascending within a curve; the pandas index column
is not written.
"""

from __future__ import annotations

from typing import Iterable

__all__ = ["MPEG_COLUMNS", "MPEG_CSV_COLUMNS", "mpeg_rows"]

#: CompressAI-Vision's CTTC columns, in its order (image datasets, without timings)
MPEG_COLUMNS = ["Dataset", "qp", "avg_bpp", "end_accuracy", "y_psnr"]
#: every column of the file: the CTTC ones, then this package's setup columns
MPEG_CSV_COLUMNS = MPEG_COLUMNS + ["codec", "quantizer", "packing", "n_images", "task_metric"]


def _at(values: list, i: int):
    return values[i] if i < len(values) else None


def mpeg_rows(report, curves: Iterable | None = None) -> list[dict]:
    """One row per curve and QP of ``report`` (an :class:`eval.analysis.report.Report`), keyed by ``MPEG_CSV_COLUMNS``.

    ``curves`` replaces ``report.curves`` (e.g. a subset); ``report`` may then be None.
    Values are the curves' own numbers (no rounding, no rescaling); a missing value is None.
    """
    task_name = getattr(report, "task_name", "task")
    rows = []
    for curve in (report.curves if curves is None else curves):
        setup = curve.setup
        for i, qp in enumerate(curve.qp):
            rows.append({
                "Dataset": curve.label,
                "qp": qp,
                "avg_bpp": _at(curve.bpp, i),
                "end_accuracy": _at(curve.task, i),
                "y_psnr": _at(curve.feature_psnr, i),
                "codec": setup.get("codec"),
                "quantizer": setup.get("quantizer"),
                "packing": setup.get("packing"),
                "n_images": curve.n_images,
                "task_metric": task_name,
            })
    return rows
