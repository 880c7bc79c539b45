"""One image's detections drawn as boxes, one panel per way of coding it: what a detector sees after coding.

Each panel shows the image with its detections at or above ``min_score`` (solid boxes, score
written at the corner) and, when given, the ground truth (the uncoded detector's own boxes
for pseudo ground truth) as thin dashed boxes, so a box that moved, vanished or appeared
under coarse coding is seen at a glance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import numpy as np

from eval.plots._png import new_figure, panel_cols, plain_text, save_png

__all__ = ["detections_figure", "detection_panels"]


def _boxes(det: Mapping | None, min_score: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    if not det:
        return np.zeros((0, 4)), np.zeros(0)
    boxes = np.asarray(det.get("boxes", []), dtype=float).reshape(-1, 4)
    scores = np.asarray(det.get("scores", np.ones(len(boxes))), dtype=float).reshape(-1)
    keep = scores >= min_score
    return boxes[keep], scores[keep]


def detections_figure(image: np.ndarray, panels: Mapping[str, Mapping], ground_truth: Mapping | None = None,
                      min_score: float = 0.5, title: str = "", panel_width_in: float = 4.2):
    """The figure: ``image`` (``H x W x 3`` uint8) once per panel, ``panels`` = ``{title: detections}``
    (``{"boxes": (N, 4) xyxy pixels, "scores": (N,)}``); returns a matplotlib Figure."""
    from matplotlib.patches import Rectangle

    a = np.asarray(image)
    if a.ndim != 3 or a.shape[2] != 3:
        raise ValueError(f"image must be H x W x 3, got shape {a.shape}")
    if not panels:
        raise ValueError("give at least one panel of detections")
    cols = panel_cols(len(panels))
    rows = -(-len(panels) // cols)
    h, w = a.shape[:2]
    fig = new_figure(panel_width_in * cols, panel_width_in * rows * h / w + (0.4 if title else 0.1))
    axes = np.atleast_1d(fig.subplots(rows, cols)).reshape(-1)
    gt_boxes, _ = _boxes(ground_truth)
    for ax, (name, det) in zip(axes, panels.items()):
        boxes, scores = _boxes(det, min_score)
        ax.imshow(a)
        for x0, y0, x1, y1 in gt_boxes:
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="white", linewidth=0.8, linestyle="--"))
        for (x0, y0, x1, y1), s in zip(boxes, scores):
            ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, edgecolor="#ff3b30", linewidth=1.4))
            ax.text(x0, y0, f"{s:.2f}", color="white", fontsize=6, va="bottom", ha="left",
                    bbox={"facecolor": "#ff3b30", "edgecolor": "none", "pad": 0.5})
        ax.set_title(plain_text(f"{name}: {len(boxes)} boxes >= {min_score:g}"), fontsize=8)
        ax.set_axis_off()
    for ax in axes[len(panels):]:
        ax.set_axis_off()
    if title:
        fig.suptitle(plain_text(title), fontsize=9)
    return fig


def detection_panels(image: np.ndarray, panels: Mapping[str, Mapping], path: str | Path,
                     ground_truth: Mapping | None = None, **kwargs: Any) -> Path:
    """:func:`detections_figure` written as a PNG at ``path``; returns the path."""
    return save_png(detections_figure(image, panels, ground_truth, **kwargs), path)
