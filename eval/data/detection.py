"""Detection data sets as :class:`eval.data.images.Sample` lists with ground-truth annotations.

* :func:`coco_json` reads a COCO instances JSON (e.g. ``instances_val2017.json``);
* :func:`openimages_vcm` reads Open Images style CSVs as used by the MPEG VCM/FCM OpenImages subsets
  (boxes with normalized coordinates and ``IsGroupOf``, optional verified image-level labels).

Every annotation is a JSON-serialisable dict understood by :mod:`eval.tasks.detection`::

    {"format": "coco" | "openimages", "image_size": [h, w],
     "boxes": [[x0, y0, x1, y1], ...],      # pixels of the original image, continuous coordinates
     "classes": [int, ...],                 # class index in the model's class space (see below)
     "iscrowd": [bool, ...],                # COCO crowd regions (ignored by AP)
     "is_group_of": [bool, ...],            # Open Images group-of boxes
     "positive_labels": [int], "negative_labels": [int]}   # Open Images verified image-level labels

``limit=N`` keeps the first N images by sorted id, so a tiny subset is deterministic.
"""
from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Mapping

from eval.data.images import Sample

__all__ = ["coco_json", "openimages_vcm", "DetectionDatasetError"]

_IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".JPG", ".JPEG", ".PNG")


class DetectionDatasetError(ValueError):
    """An annotation file is missing, malformed or inconsistent; the message names the file and the fix."""


def _check_limit(limit):
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise DetectionDatasetError(f"limit must be a positive integer or None, got {limit!r}")


def _check_dir(image_dir) -> Path:
    d = Path(image_dir)
    if not d.is_dir():
        raise DetectionDatasetError(f"image directory {d} does not exist; point image_dir at the folder of images")
    return d


def coco_json(annotation_json: str | os.PathLike, image_dir: str | os.PathLike, limit: int | None = None) -> list[Sample]:
    """Samples of a COCO instances JSON; ``classes`` are detectron2's contiguous ids.

    detectron2 maps COCO category ids to contiguous class indices by sorting the file's category ids
    (0..79 for the 80 COCO categories, the order COCO-trained detectron2 models predict in); the original
    ids are kept as ``category_ids`` and the names as ``class_names``. Images without annotations are kept
    (they can still hold false positives).
    """
    _check_limit(limit)
    path = Path(annotation_json)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise DetectionDatasetError(f"COCO annotation file {path} not found") from None
    except (OSError, ValueError) as exc:
        raise DetectionDatasetError(f"COCO annotation file {path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= set(data):
        raise DetectionDatasetError(f"{path} is not a COCO instances file: it needs 'images', 'annotations' "
                                    "and 'categories' lists")
    image_dir = _check_dir(image_dir)
    cat_ids = sorted(int(c["id"]) for c in data["categories"])
    contiguous = {cid: i for i, cid in enumerate(cat_ids)}
    names = {int(c["id"]): str(c.get("name", c["id"])) for c in data["categories"]}
    images = sorted(data["images"], key=lambda im: int(im["id"]))
    if limit is not None:
        images = images[:limit]
    per_image: dict[int, list] = {int(im["id"]): [] for im in images}
    for ann in data["annotations"]:
        iid = int(ann["image_id"])
        if iid in per_image:
            per_image[iid].append(ann)
    samples = []
    for im in images:
        iid = int(im["id"])
        boxes, classes, catids, crowd = [], [], [], []
        for ann in sorted(per_image[iid], key=lambda a: int(a.get("id", 0))):
            if int(ann["category_id"]) not in contiguous:
                raise DetectionDatasetError(f"{path}: annotation {ann.get('id')} has category_id "
                                            f"{ann['category_id']} missing from 'categories'")
            x, y, w, h = (float(v) for v in ann["bbox"])
            boxes.append([x, y, x + w, y + h])
            catids.append(int(ann["category_id"]))
            classes.append(contiguous[int(ann["category_id"])])
            crowd.append(bool(ann.get("iscrowd", 0)))
        annotation = {
            "format": "coco", "image_size": [int(im.get("height", 0)), int(im.get("width", 0))],
            "boxes": boxes, "classes": classes, "category_ids": catids, "iscrowd": crowd,
            "class_names": [names[c] for c in catids],
        }
        samples.append(Sample(id=str(iid), path=str(image_dir / im["file_name"]), annotation=annotation))
    return samples


def _read_csv(path: Path, required: set[str], what: str) -> list[dict]:
    try:
        with open(path, newline="") as f:
            reader = csv.DictReader(f)
            missing = required - set(reader.fieldnames or [])
            if missing:
                raise DetectionDatasetError(f"{what} {path} lacks column(s) {sorted(missing)}; "
                                            f"it has {reader.fieldnames}")
            return list(reader)
    except FileNotFoundError:
        raise DetectionDatasetError(f"{what} {path} not found") from None


def _load_label_map(label_map) -> dict[str, int] | None:
    if label_map is None or isinstance(label_map, Mapping):
        return None if label_map is None else {str(k): int(v) for k, v in label_map.items()}
    path = Path(label_map)
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DetectionDatasetError(f"label map {path} must be a JSON object {{label: class index}}: {exc}") from None
    if not isinstance(data, dict):
        raise DetectionDatasetError(f"label map {path} must be a JSON object {{label: class index}}")
    return {str(k): int(v) for k, v in data.items()}


def _find_image(image_dir: Path, image_id: str) -> Path:
    for ext in _IMAGE_EXTS:
        p = image_dir / f"{image_id}{ext}"
        if p.is_file():
            return p
    raise DetectionDatasetError(f"no image for ImageID {image_id!r} in {image_dir} (tried {', '.join(_IMAGE_EXTS)})")


def _image_size(path: Path) -> tuple[int, int]:
    """(height, width) of the image as :meth:`Sample.load` returns it, from the file header only."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            w, h = im.size
            orientation = im.getexif().get(0x0112, 1)
    except OSError as exc:
        raise DetectionDatasetError(f"{path}: cannot read image size ({exc})") from None
    if orientation in (5, 6, 7, 8):  # Sample.load applies EXIF rotation: report the size the model sees
        h, w = w, h
    return h, w


def _truthy(v: str) -> bool:
    return str(v).strip().lower() in ("1", "true", "yes")


def openimages_vcm(detection_csv: str | os.PathLike, image_dir: str | os.PathLike,
                   labels_csv: str | os.PathLike | None = None, limit: int | None = None,
                   label_map: Mapping[str, int] | str | os.PathLike | None = None) -> list[Sample]:
    """Samples of Open Images style CSVs (the MPEG VCM/FCM OpenImages subsets).

    ``detection_csv``: ImageID, LabelName, XMin, XMax, YMin, YMax (normalized to [0, 1]), IsGroupOf.
    ``labels_csv``: ImageID, LabelName, Confidence (1 = verified present, 0 = verified absent); with it the
    Open Images metric ignores detections of classes not verified in an image. Images are those named in
    either file, found as ``image_dir/<ImageID>.jpg`` (or .jpeg/.png); boxes are scaled to pixels with the
    image's size (read from its header).

    ``label_map`` (dict or JSON file ``{LabelName: class index}``) maps labels to the model's class indices,
    e.g. Open Images MIDs to a COCO-trained detector's 0..79; labels it lacks are dropped (the model cannot
    predict them). Without it, classes are indices into the sorted label names (``class_names``).
    """
    _check_limit(limit)
    image_dir = _check_dir(image_dir)
    rows = _read_csv(Path(detection_csv), {"ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax"}, "detection CSV")
    label_rows = [] if labels_csv is None else _read_csv(Path(labels_csv), {"ImageID", "LabelName", "Confidence"},
                                                         "image-level labels CSV")
    mapping = _load_label_map(label_map)
    if mapping is None:
        names = sorted({r["LabelName"] for r in rows} | {r["LabelName"] for r in label_rows})
        mapping = {n: i for i, n in enumerate(names)}
    ids = sorted({r["ImageID"] for r in rows} | {r["ImageID"] for r in label_rows})
    if limit is not None:
        ids = ids[:limit]
    keep = set(ids)
    boxes_by_id: dict[str, list] = {i: [] for i in ids}
    for n, r in enumerate(rows):
        if r["ImageID"] in keep and r["LabelName"] in mapping:
            try:
                coords = [float(r[k]) for k in ("XMin", "YMin", "XMax", "YMax")]
            except ValueError:
                raise DetectionDatasetError(f"detection CSV {detection_csv} row {n + 2}: non-numeric box "
                                            f"{[r[k] for k in ('XMin', 'XMax', 'YMin', 'YMax')]}") from None
            if not all(-0.01 <= c <= 1.01 for c in coords):
                raise DetectionDatasetError(f"detection CSV {detection_csv} row {n + 2}: coordinates {coords} are "
                                            "not normalized to [0, 1]; this reader expects Open Images CSVs")
            boxes_by_id[r["ImageID"]].append((coords, r["LabelName"], _truthy(r.get("IsGroupOf", "0"))))
    pos: dict[str, set] = {i: set() for i in ids}
    neg: dict[str, set] = {i: set() for i in ids}
    for r in label_rows:
        if r["ImageID"] in keep and r["LabelName"] in mapping:
            (pos if _truthy(r["Confidence"]) else neg)[r["ImageID"]].add(mapping[r["LabelName"]])
    samples = []
    for iid in ids:
        path = _find_image(image_dir, iid)
        h, w = _image_size(path)
        entries = boxes_by_id[iid]
        annotation = {
            "format": "openimages", "image_size": [h, w],
            "boxes": [[c[0] * w, c[1] * h, c[2] * w, c[3] * h] for c, _, _ in entries],
            "classes": [mapping[lab] for _, lab, _ in entries],
            "labels": [lab for _, lab, _ in entries],
            "is_group_of": [g for _, _, g in entries],
        }
        if labels_csv is not None:
            annotation["positive_labels"] = sorted(pos[iid])
            annotation["negative_labels"] = sorted(neg[iid])
        samples.append(Sample(id=iid, path=str(path), annotation=annotation))
    return samples
