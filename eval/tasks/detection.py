"""Detection accuracy: COCO AP via pycocotools, our own AP@0.5 (VOC all-point or COCO 101-point), and the
Open Images challenge metric (group-of boxes, image-level labels), plus the ``map50`` task metric.

Inputs are per-image lists, aligned by position:

* detections: ``{"boxes": (N, 4) xyxy pixels, "scores": (N,), "classes": (N,) int}``
* ground truth: ``{"boxes": (M, 4) xyxy, "classes": (M,) int}`` and optionally
  ``"iscrowd"`` (M,) bool (COCO crowd regions), ``"is_group_of"`` (M,) bool (Open Images group-of boxes),
  ``"positive_labels"`` / ``"negative_labels"`` (class ids verified present / absent in the image).

Boxes are continuous coordinates (area = (x1 - x0) * (y1 - y0), no +1), as in pycocotools. A detection
matches at ``IoU >= iou_threshold`` (pycocotools' rule).
"""
from __future__ import annotations

import contextlib
import io
import math
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from eval.tasks.base import TaskMetric

__all__ = [
    "box_iou", "box_ioa", "average_precision", "coco_map", "voc_ap_per_class", "voc_map50",
    "openimages_ap_per_class", "openimages_map50", "DetectionMAP50",
]

#: pycocotools' 101 recall thresholds, built exactly as pycocotools builds them (bitwise the same floats).
COCO_RECALL_THRESHOLDS = np.linspace(0.0, 1.00, int(np.round((1.00 - 0.0) / 0.01)) + 1, endpoint=True)


# ----------------------------------------------------------------------------------------- validation

def _as_detections(d: Any, i: int) -> dict:
    if not isinstance(d, dict) or not {"boxes", "scores", "classes"} <= set(d):
        raise ValueError(f"detections[{i}] must be a dict with 'boxes', 'scores' and 'classes'; got {type(d).__name__}"
                         f"{' with keys ' + str(sorted(d)) if isinstance(d, dict) else ''}")
    boxes = np.asarray(d["boxes"], dtype=np.float64).reshape(-1, 4)
    scores = np.asarray(d["scores"], dtype=np.float64).reshape(-1)
    classes = np.asarray(d["classes"]).reshape(-1).astype(np.int64)
    if not len(boxes) == len(scores) == len(classes):
        raise ValueError(f"detections[{i}]: {len(boxes)} boxes, {len(scores)} scores, {len(classes)} classes; "
                         "they must have the same length")
    if not (np.isfinite(boxes).all() and np.isfinite(scores).all()):
        raise ValueError(f"detections[{i}] holds NaN/Inf boxes or scores; drop or fix them before evaluating")
    return {"boxes": boxes, "scores": scores, "classes": classes}


def _as_ground_truth(g: Any, i: int) -> dict:
    if not isinstance(g, dict) or not {"boxes", "classes"} <= set(g):
        raise ValueError(f"ground_truths[{i}] must be a dict with 'boxes' and 'classes'")
    boxes = np.asarray(g["boxes"], dtype=np.float64).reshape(-1, 4)
    classes = np.asarray(g["classes"]).reshape(-1).astype(np.int64)
    n = len(boxes)
    if len(classes) != n:
        raise ValueError(f"ground_truths[{i}]: {n} boxes but {len(classes)} classes")
    if not np.isfinite(boxes).all():
        raise ValueError(f"ground_truths[{i}] holds NaN/Inf boxes")
    out = {"boxes": boxes, "classes": classes}
    for key in ("iscrowd", "is_group_of"):
        flags = np.zeros(n, bool) if g.get(key) is None else np.asarray(g[key]).reshape(-1).astype(bool)
        if len(flags) != n:
            raise ValueError(f"ground_truths[{i}]['{key}'] has {len(flags)} entries for {n} boxes")
        out[key] = flags
    for key in ("positive_labels", "negative_labels"):
        out[key] = None if g.get(key) is None else {int(c) for c in g[key]}
    return out


def _validate(detections: Sequence, ground_truths: Sequence) -> tuple[list[dict], list[dict]]:
    if len(detections) != len(ground_truths):
        raise ValueError(f"{len(detections)} detection entries but {len(ground_truths)} ground-truth entries; "
                         "give one of each per image, in the same order")
    return ([_as_detections(d, i) for i, d in enumerate(detections)],
            [_as_ground_truth(g, i) for i, g in enumerate(ground_truths)])


# ----------------------------------------------------------------------------------------- geometry

def _intersection(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    w = np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0])
    h = np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1])
    return np.clip(w, 0, None) * np.clip(h, 0, None)


def _area(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, np.float64).reshape(-1, 4)
    return np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix [len(a), len(b)] of xyxy boxes (0 where the union is empty)."""
    inter = _intersection(a, b)
    union = _area(a)[:, None] + _area(b)[None, :] - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def box_ioa(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Intersection over the area of each box of ``a`` (the detection), [len(a), len(b)]."""
    inter = _intersection(a, b)
    area = _area(a)[:, None]
    return np.divide(inter, area, out=np.zeros_like(inter), where=area > 0)


# ----------------------------------------------------------------------------------------- AP from a ranked list

def average_precision(scores: Sequence[float], is_tp: Sequence[bool], n_positives: float,
                      interpolation: str = "all") -> float:
    """AP of one class from its scored detections (already stripped of ignored ones).

    ``interpolation="all"``: PASCAL VOC 2010+ / Open Images: area under the precision envelope at every
    recall change. ``"coco101"``: pycocotools: mean of the envelope sampled at recall 0, 0.01, ..., 1.
    Ties in score keep the given order (stable sort), as pycocotools does. NaN when ``n_positives == 0``.
    """
    if n_positives <= 0:
        return math.nan
    scores = np.asarray(scores, np.float64).reshape(-1)
    is_tp = np.asarray(is_tp, bool).reshape(-1)
    order = np.argsort(-scores, kind="mergesort")
    tp = np.cumsum(is_tp[order]).astype(np.float64)
    fp = np.cumsum(~is_tp[order]).astype(np.float64)
    recall = tp / n_positives
    if interpolation == "coco101":
        precision = tp / (tp + fp + np.spacing(1))  # pycocotools' denominator
        envelope = np.maximum.accumulate(precision[::-1])[::-1] if len(precision) else precision
        idx = np.searchsorted(recall, COCO_RECALL_THRESHOLDS, side="left")
        sampled = np.array([envelope[j] if j < len(envelope) else 0.0 for j in idx])
        return float(sampled.mean())
    if interpolation == "all":
        if not len(tp):
            return 0.0
        precision = tp / (tp + fp)
        mrec = np.concatenate([[0.0], recall, [1.0]])
        mpre = np.concatenate([[0.0], precision, [0.0]])
        mpre = np.maximum.accumulate(mpre[::-1])[::-1]
        steps = np.nonzero(mrec[1:] != mrec[:-1])[0]
        return float(np.sum((mrec[steps + 1] - mrec[steps]) * mpre[steps + 1]))
    raise ValueError(f"interpolation must be 'all' or 'coco101', got {interpolation!r}")


def _nanmean(values: Iterable[float]) -> float:
    vals = [v for v in values if not math.isnan(v)]
    return float(np.mean(vals)) if vals else math.nan


# ----------------------------------------------------------------------------------------- COCO via pycocotools

def coco_map(detections: Sequence[dict], ground_truths: Sequence[dict],
             image_sizes: Sequence[tuple[int, int]] | None = None) -> dict[str, float]:
    """COCO box AP (0.5:0.95), AP50 and AP75 computed by pycocotools from in-memory dicts.

    ``image_sizes`` (height, width) per image only fills the COCO image records; bbox evaluation does not
    use them. Crowd ground truth (``iscrowd``) is honoured. Returns NaN values when no image has ground truth.
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    dets, gts = _validate(detections, ground_truths)
    images, annotations, results, cats = [], [], [], set()
    for i, (d, g) in enumerate(zip(dets, gts)):
        if image_sizes is not None:
            h, w = image_sizes[i]
        else:
            allb = np.concatenate([d["boxes"], g["boxes"]]) if len(d["boxes"]) + len(g["boxes"]) else np.ones((1, 4))
            h, w = int(np.ceil(allb[:, 3].max())) + 1, int(np.ceil(allb[:, 2].max())) + 1
        images.append({"id": i + 1, "height": int(h), "width": int(w)})
        for b, c, crowd in zip(g["boxes"], g["classes"], g["iscrowd"]):
            x, y, bw, bh = b[0], b[1], b[2] - b[0], b[3] - b[1]
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "category_id": int(c),
                                "bbox": [float(x), float(y), float(bw), float(bh)], "area": float(bw * bh),
                                "iscrowd": int(crowd)})
            cats.add(int(c))
        for b, s, c in zip(d["boxes"], d["scores"], d["classes"]):
            results.append({"image_id": i + 1, "category_id": int(c), "score": float(s),
                            "bbox": [float(b[0]), float(b[1]), float(b[2] - b[0]), float(b[3] - b[1])]})
            cats.add(int(c))
    if not annotations:
        return {"AP": math.nan, "AP50": math.nan, "AP75": math.nan}
    if not results:
        return {"AP": 0.0, "AP50": 0.0, "AP75": 0.0}
    gt = COCO()
    gt.dataset = {"images": images, "annotations": annotations,
                  "categories": [{"id": c, "name": str(c)} for c in sorted(cats)]}
    with contextlib.redirect_stdout(io.StringIO()):
        gt.createIndex()
        dt = gt.loadRes(results)
        ev = COCOeval(gt, dt, "bbox")
        ev.evaluate()
        ev.accumulate()
        ev.summarize()
    ap, ap50, ap75 = (float(v) for v in ev.stats[:3])
    return {k: (math.nan if v < 0 else v) for k, v in (("AP", ap), ("AP50", ap50), ("AP75", ap75))}


# ----------------------------------------------------------------------------------------- our own AP@0.5

def _match_image_class(boxes, scores, gt_boxes, gt_ignore, iou_threshold, matching):
    """Label each detection (already in score order) TP (1), FP (0) or ignored (-1) for one image and class.

    ``matching="coco"``: each detection takes the unmatched, not-ignored ground truth of highest IoU
    (falling back to ignored/crowd regions, which may absorb any number of detections); ``"voc"``: it
    takes the ground truth of highest IoU and is a false positive when that one is already taken.
    """
    labels = np.zeros(len(boxes), np.int64)
    if not len(gt_boxes):
        return labels
    ious = box_iou(boxes, gt_boxes)
    if gt_ignore.any():  # crowd regions: overlap is measured over the detection's area
        ious[:, gt_ignore] = box_ioa(boxes, gt_boxes[gt_ignore])
    taken = np.zeros(len(gt_boxes), bool)
    for k in range(len(boxes)):
        if matching == "voc":
            j = int(np.argmax(ious[k]))
            if ious[k, j] < iou_threshold:
                continue
            if gt_ignore[j]:
                labels[k] = -1
            elif not taken[j]:
                taken[j], labels[k] = True, 1
            continue
        best, best_j = iou_threshold, -1
        for j in np.argsort(gt_ignore, kind="mergesort"):  # real boxes first, like pycocotools
            if taken[j] and not gt_ignore[j]:
                continue
            if best_j >= 0 and not gt_ignore[best_j] and gt_ignore[j]:
                break
            if ious[k, j] < best:
                continue
            best, best_j = ious[k, j], j
        if best_j >= 0:
            if gt_ignore[best_j]:
                labels[k] = -1
            else:
                taken[best_j], labels[k] = True, 1
    return labels


def _image_matches(d: dict, g: dict, match, classes=None) -> dict[int, tuple]:
    """One image's matched detections per class: ``{class: (scores, is_tp, n_positives)}``.

    ``match(boxes, scores, ground_truth, gt_mask, class)`` gets the image's detections of the
    class, highest score first, and returns the scores and true/false labels it counts and the
    number of positives, or None when the class is not evaluated on that image. ``classes``
    defaults to the classes of the image's detections and ground truth.
    """
    if classes is None:
        classes = sorted({int(c) for c in g["classes"]} | {int(c) for c in d["classes"]})
    out = {}
    for c in classes:
        dsel = np.nonzero(d["classes"] == c)[0]
        dsel = dsel[np.argsort(-d["scores"][dsel], kind="mergesort")]
        matched = match(d["boxes"][dsel], d["scores"][dsel], g, g["classes"] == c, c)
        if matched is not None:
            out[int(c)] = matched
    return out


def _pooled_ap(per_image: Sequence[Mapping], interpolation: str) -> dict[int, float]:
    """AP per class from every image's :func:`_image_matches`, pooled in image order (ties keep that order)."""
    classes = sorted({int(c) for m in per_image for c in m})
    out = {}
    for c in classes:
        scores, labels, n_pos = [], [], 0
        for m in per_image:
            if c in m:
                image_scores, image_labels, image_pos = m[c]
                scores.extend(image_scores)
                labels.extend(image_labels)
                n_pos += image_pos
        out[c] = average_precision(scores, labels, n_pos, interpolation)
    return out


def _ap_per_class(detections: Sequence, ground_truths: Sequence, match, interpolation: str) -> dict[int, float]:
    """AP per class over images: the loop that the VOC/COCO and Open Images protocols share.

    Every class seen in any image's detections or ground truth is matched on every image
    (:func:`_image_matches`), then pooled (:func:`_pooled_ap`).
    """
    dets, gts = _validate(detections, ground_truths)
    classes = sorted({int(c) for g in gts for c in g["classes"]} | {int(c) for d in dets for c in d["classes"]})
    return _pooled_ap([_image_matches(d, g, match, classes) for d, g in zip(dets, gts)], interpolation)


def voc_ap_per_class(detections: Sequence[dict], ground_truths: Sequence[dict], iou_threshold: float = 0.5,
                     interpolation: str = "all", matching: str = "coco",
                     max_dets: int | None = None) -> dict[int, float]:
    """AP per class (NaN for classes without ground truth) at one IoU threshold, our own implementation.

    With ``interpolation="coco101", matching="coco", max_dets=100`` it reproduces pycocotools' AP50
    (crowd regions ignored the same way); ``interpolation="all"`` gives the PASCAL VOC 2010+ value.
    ``max_dets`` keeps the highest-scoring detections per image and class.
    """
    return _ap_per_class(detections, ground_truths, _voc_match(iou_threshold, matching, max_dets), interpolation)


def _voc_match(iou_threshold: float, matching: str, max_dets: int | None):
    """The per-image, per-class matching of :func:`voc_ap_per_class` (a ``match`` for :func:`_image_matches`)."""
    if matching not in ("coco", "voc"):
        raise ValueError(f"matching must be 'coco' or 'voc', got {matching!r}")

    def match(boxes, scores, g, gsel, c):
        gt_boxes, gt_ignore = g["boxes"][gsel], g["iscrowd"][gsel]
        if max_dets is not None:
            boxes, scores = boxes[:max_dets], scores[:max_dets]
        lab = _match_image_class(boxes, scores, gt_boxes, gt_ignore, iou_threshold, matching)
        keep = lab >= 0
        return scores[keep], lab[keep] == 1, int((~gt_ignore).sum())

    return match


def voc_map50(detections: Sequence[dict], ground_truths: Sequence[dict], **kwargs) -> float:
    """Mean over classes with ground truth of :func:`voc_ap_per_class` at IoU 0.5 (NaN if there are none)."""
    kwargs.setdefault("iou_threshold", 0.5)
    return _nanmean(voc_ap_per_class(detections, ground_truths, **kwargs).values())


# ----------------------------------------------------------------------------------------- Open Images challenge

def openimages_ap_per_class(detections: Sequence[dict], ground_truths: Sequence[dict],
                            iou_threshold: float = 0.5) -> dict[int, float]:
    """Open Images challenge detection AP per class, implemented from the published metric description.

    Per image and class:

    * image-level labels: when the image carries ``positive_labels``/``negative_labels``, a class that is
      neither among them nor among the image's box classes is unannotated there and its detections are
      ignored. Without them the image counts as exhaustively labelled (every class evaluated).
    * detections, highest score first, are matched as in PASCAL VOC 2010 to the non-group-of boxes
      (IoU >= threshold with the best-overlapping box: true positive if it is still free, else false positive);
    * a detection matching no such box is "inside" the group-of box it overlaps most when intersection over
      the *detection's* area >= threshold: it is then not counted on its own; each group-of box with at least
      one detection inside yields exactly one true positive whose score is the highest such score;
    * a group-of box with no detection inside is one missed positive (it counts in the number of positives
      like any other box); remaining detections, including all of a verified-absent class, are false positives.

    AP is the VOC 2010 all-point interpolated area; NaN for classes without any positive box. The label
    hierarchy expansion of the challenge is not applied: give already-expanded annotations.
    """
    def match(boxes, sc, g, gsel, c):
        if g["positive_labels"] is not None or g["negative_labels"] is not None:
            verified = (g["positive_labels"] or set()) | (g["negative_labels"] or set()) | set(g["classes"].tolist())
            if c not in verified:
                return None  # the class is not annotated on this image
        group = g["is_group_of"][gsel]
        single_boxes, group_boxes = g["boxes"][gsel][~group], g["boxes"][gsel][group]
        iou = box_iou(boxes, single_boxes)
        ioa = box_ioa(boxes, group_boxes)
        taken = np.zeros(len(single_boxes), bool)
        group_best = np.full(len(group_boxes), -np.inf)
        scores, labels = [], []
        for k in range(len(boxes)):
            if len(single_boxes):
                j = int(np.argmax(iou[k]))
                if iou[k, j] >= iou_threshold:
                    scores.append(sc[k])
                    labels.append(not taken[j])
                    taken[j] = True
                    continue
            if len(group_boxes):
                j = int(np.argmax(ioa[k]))
                if ioa[k, j] >= iou_threshold:
                    group_best[j] = max(group_best[j], sc[k])
                    continue
            scores.append(sc[k])
            labels.append(False)
        hit = np.isfinite(group_best)
        scores.extend(group_best[hit])
        labels.extend([True] * int(hit.sum()))
        return scores, labels, len(single_boxes) + len(group_boxes)

    return _ap_per_class(detections, ground_truths, match, "all")


def openimages_map50(detections: Sequence[dict], ground_truths: Sequence[dict], iou_threshold: float = 0.5) -> float:
    """Mean Open Images challenge AP over classes with at least one positive box (NaN if none)."""
    return _nanmean(openimages_ap_per_class(detections, ground_truths, iou_threshold).values())


# ----------------------------------------------------------------------------------------- task metric

def _detections_to_lists(output: Any, what: str) -> dict:
    d = _as_detections(output, 0) if isinstance(output, dict) else None
    if d is None:
        raise ValueError(f"{what} must be a detection dict with 'boxes', 'scores', 'classes'; got {type(output).__name__}")
    return {"boxes": d["boxes"].round(3).tolist(), "scores": d["scores"].round(6).tolist(),
            "classes": d["classes"].tolist()}


#: the key of an image's statistics that holds its detections matched for COCO's AP50 (see :func:`_coco50_matches`)
COCO50_MATCHES = "coco50_matches"


def _coco50_matches(det: dict, gt: dict) -> dict[str, list]:
    """One image's detections matched as pycocotools matches them for AP50 (IoU 0.5, at most 100 per class):
    ``{class: [scores, is_tp, n_positives]}``.

    Matching is per image, so it is done once per coded image; an AP over any set of images (a
    bootstrap replicate draws hundreds) then only pools these lists (``_pooled_ap``), and equals
    :func:`coco_map`'s AP50 (tested).
    """
    d, g = _as_detections(det, 0), _as_ground_truth(gt, 0)
    return {str(c): [[float(v) for v in sc], [bool(v) for v in tp], int(n)]
            for c, (sc, tp, n) in _image_matches(d, g, _voc_match(0.5, "coco", 100)).items()}


class DetectionMAP50(TaskMetric):
    """Task metric ``map50``: mAP@0.5 of the (possibly compressed) model's detections over a set.

    ``image_stats`` stores the image's detections and its ground truth as JSON-friendly lists:

    * an annotation with ``boxes`` and ``classes`` (see :mod:`eval.data.detection`) is used as is;
      if it carries group-of flags or image-level labels the set is scored with the Open Images challenge
      metric, otherwise with pycocotools' AP50;
    * without an annotation (e.g. the bundled sample photos) the uncompressed model's detections with
      score >= ``pseudo_gt_score`` (and a box of positive width and height) become pseudo ground truth,
      as FCM evaluations do when labels are missing: the score then measures fidelity to the uncompressed
      detector, not accuracy. A set without any (pseudo) ground truth aggregates to NaN.

    ``protocol`` forces "coco" (pycocotools AP50), "voc" (our all-point AP50) or "openimages".
    """

    name = "map50"
    higher_is_better = True

    def __init__(self, pseudo_gt_score: float = 0.5, protocol: str = "auto"):
        if protocol not in ("auto", "coco", "voc", "openimages"):
            raise ValueError(f"protocol must be 'auto', 'coco', 'voc' or 'openimages', got {protocol!r}")
        if not 0.0 <= pseudo_gt_score <= 1.0:
            raise ValueError(f"pseudo_gt_score must be in [0, 1], got {pseudo_gt_score}")
        self.pseudo_gt_score = float(pseudo_gt_score)
        self.protocol = protocol

    def get_params(self) -> dict:
        return {"pseudo_gt_score": self.pseudo_gt_score, "protocol": self.protocol}

    def image_stats(self, output: Any, reference_output: Any = None, annotation: Any = None) -> dict:
        det = _detections_to_lists(output, "output")
        if annotation is not None and isinstance(annotation, dict) and "boxes" in annotation:
            g = _as_ground_truth(annotation, 0)
            gt = {"boxes": g["boxes"].tolist(), "classes": g["classes"].tolist(),
                  "iscrowd": g["iscrowd"].tolist(), "is_group_of": g["is_group_of"].tolist()}
            for key in ("positive_labels", "negative_labels"):
                if g[key] is not None:
                    gt[key] = sorted(g[key])
            source = "annotation"
        elif reference_output is not None:
            ref = _detections_to_lists(reference_output, "reference_output")
            keep = [i for i, (s, b) in enumerate(zip(ref["scores"], ref["boxes"]))
                    if s >= self.pseudo_gt_score and b[2] > b[0] and b[3] > b[1]]
            gt = {"boxes": [ref["boxes"][i] for i in keep], "classes": [ref["classes"][i] for i in keep]}
            source = "pseudo"
        else:
            raise ValueError("map50 needs ground truth: pass an annotation with 'boxes' and 'classes', "
                             "or the uncompressed model's output as reference_output")
        out = {"detections": det, "ground_truth": gt, "gt_source": source}
        if self._protocol([gt]) == "coco":
            out[COCO50_MATCHES] = _coco50_matches(det, gt)
        return out

    def _protocol(self, gts: Sequence[dict]) -> str:
        if self.protocol != "auto":
            return self.protocol
        oid = any(any(g.get("is_group_of") or []) or "positive_labels" in g or "negative_labels" in g for g in gts)
        return "openimages" if oid else "coco"

    def aggregate(self, stats: Sequence[dict]) -> float:
        if not stats:
            raise ValueError("map50.aggregate got no image statistics; evaluate at least one image")
        dets = [s["detections"] for s in stats]
        gts = [s["ground_truth"] for s in stats]
        protocol = self._protocol(gts)
        if protocol == "openimages":
            return openimages_map50(dets, gts)
        if protocol == "voc":
            return voc_map50(dets, gts)
        if all(COCO50_MATCHES in s for s in stats):  # each image matched once, at cell time: only the pooling is left
            per_image = [{int(c): v for c, v in s[COCO50_MATCHES].items()} for s in stats]
            return _nanmean(_pooled_ap(per_image, "coco101").values())
        return coco_map(dets, gts)["AP50"]
