"""COCO JSON and Open Images CSV readers: boxes in pixels xyxy, class ids, deterministic subsets, clear errors."""
import csv
import json

import numpy as np
import pytest
from PIL import Image

from eval.data.detection import DetectionDatasetError, coco_json, openimages_vcm


def _image(path, w, h):
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(path)


@pytest.fixture
def coco_files(tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    data = {
        "images": [{"id": 42, "file_name": "b.png", "height": 30, "width": 40},
                   {"id": 7, "file_name": "a.png", "height": 20, "width": 50},
                   {"id": 100, "file_name": "c.png", "height": 10, "width": 10}],
        "categories": [{"id": 18, "name": "dog"}, {"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 2, "image_id": 42, "category_id": 18, "bbox": [1, 2, 10, 5], "iscrowd": 0, "area": 50},
            {"id": 1, "image_id": 42, "category_id": 1, "bbox": [0, 0, 4, 4], "iscrowd": 1, "area": 16},
            {"id": 3, "image_id": 7, "category_id": 3, "bbox": [5.5, 6, 2, 3], "area": 6},
        ],
    }
    for im in data["images"]:
        _image(images / im["file_name"], im["width"], im["height"])
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    return path, images


def test_coco_json_boxes_classes_and_order(coco_files):
    path, images = coco_files
    samples = coco_json(path, images)
    assert [s.id for s in samples] == ["7", "42", "100"]  # numeric id order
    a = samples[1].annotation
    # annotation id order; xywh -> xyxy; contiguous ids from sorted category ids (1, 3, 18) -> (0, 1, 2)
    assert a["boxes"] == [[0, 0, 4, 4], [1, 2, 11, 7]]
    assert a["classes"] == [0, 2] and a["category_ids"] == [1, 18] and a["class_names"] == ["person", "dog"]
    assert a["iscrowd"] == [True, False] and a["image_size"] == [30, 40]
    assert samples[0].annotation["boxes"] == [[5.5, 6, 7.5, 9]] and samples[0].annotation["classes"] == [1]
    assert samples[2].annotation["boxes"] == []  # image without objects is kept
    assert samples[0].load().shape == (20, 50, 3)
    json.dumps([s.annotation for s in samples])


def test_coco_json_limit_is_deterministic_and_errors_are_clear(coco_files, tmp_path):
    path, images = coco_files
    assert [s.id for s in coco_json(path, images, limit=2)] == ["7", "42"]
    with pytest.raises(DetectionDatasetError, match="positive integer"):
        coco_json(path, images, limit=0)
    with pytest.raises(DetectionDatasetError, match="not found"):
        coco_json(tmp_path / "nope.json", images)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"images": []}))
    with pytest.raises(DetectionDatasetError, match="'categories'"):
        coco_json(bad, images)
    with pytest.raises(DetectionDatasetError, match="image directory"):
        coco_json(path, tmp_path / "missing")


def _write_csv(path, header, rows):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)


@pytest.fixture
def oid_files(tmp_path):
    images = tmp_path / "oid"
    images.mkdir()
    _image(images / "img_b.jpg", 200, 100)
    _image(images / "img_a.png", 50, 40)
    exif = Image.Exif()
    exif[0x0112] = 6  # stored 20 wide x 10 high, displayed (and loaded) rotated: 10 wide x 20 high
    Image.fromarray(np.zeros((10, 20, 3), np.uint8)).save(images / "img_c.jpg", exif=exif)
    boxes = tmp_path / "boxes.csv"
    _write_csv(boxes, ["ImageID", "Source", "LabelName", "Confidence", "XMin", "XMax", "YMin", "YMax", "IsGroupOf"], [
        ["img_b", "xclick", "/m/dog", "1", "0.1", "0.5", "0.2", "0.6", "0"],
        ["img_b", "xclick", "/m/person", "1", "0", "1", "0", "1", "1"],
        ["img_a", "xclick", "/m/cat", "1", "0.5", "1.0", "0.25", "0.75", "0"],
    ])
    labels = tmp_path / "labels.csv"
    _write_csv(labels, ["ImageID", "Source", "LabelName", "Confidence"], [
        ["img_b", "verification", "/m/dog", "1"], ["img_b", "verification", "/m/cat", "0"],
        ["img_c", "verification", "/m/person", "0"],
    ])
    return boxes, labels, images


def test_openimages_boxes_in_pixels_with_group_of_and_labels(oid_files):
    boxes, labels, images = oid_files
    samples = openimages_vcm(boxes, images, labels_csv=labels)
    assert [s.id for s in samples] == ["img_a", "img_b", "img_c"]  # sorted, incl. the labels-only image
    # sorted label names: /m/cat 0, /m/dog 1, /m/person 2
    a, b, c = (s.annotation for s in samples)
    assert a["boxes"] == [[25.0, 10.0, 50.0, 30.0]] and a["classes"] == [0] and a["image_size"] == [40, 50]
    assert b["boxes"] == [[20.0, 20.0, 100.0, 60.0], [0.0, 0.0, 200.0, 100.0]]
    assert b["classes"] == [1, 2] and b["is_group_of"] == [False, True]
    assert b["positive_labels"] == [1] and b["negative_labels"] == [0]
    assert c["boxes"] == [] and c["negative_labels"] == [2]
    for s in samples:  # sizes (EXIF rotation included) are those of the image the model gets
        assert list(s.load().shape[:2]) == s.annotation["image_size"]
    assert c["image_size"] == [20, 10]
    assert samples[0].path.endswith("img_a.png")
    assert [s.id for s in openimages_vcm(boxes, images, limit=1)] == ["img_a"]
    assert "positive_labels" not in openimages_vcm(boxes, images)[0].annotation


def test_openimages_label_map_drops_unmapped_labels(oid_files, tmp_path):
    boxes, labels, images = oid_files
    label_map = tmp_path / "map.json"
    label_map.write_text(json.dumps({"/m/person": 0, "/m/dog": 16}))
    b = openimages_vcm(boxes, images, labels_csv=labels, label_map=label_map)[1].annotation
    assert b["classes"] == [16, 0] and b["labels"] == ["/m/dog", "/m/person"]
    assert b["negative_labels"] == []  # /m/cat is not in the map
    a = openimages_vcm(boxes, images, label_map={"/m/person": 0})[0].annotation
    assert a["boxes"] == []


def test_openimages_errors_name_the_problem(oid_files, tmp_path):
    boxes, labels, images = oid_files
    bad = tmp_path / "bad.csv"
    _write_csv(bad, ["ImageID", "LabelName", "XMin"], [["x", "y", "0"]])
    with pytest.raises(DetectionDatasetError, match=r"lacks column\(s\) \['XMax', 'YMax', 'YMin'\]"):
        openimages_vcm(bad, images)
    pixels = tmp_path / "pixels.csv"
    _write_csv(pixels, ["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax", "IsGroupOf"],
               [["img_b", "/m/dog", "10", "50", "20", "60", "0"]])
    with pytest.raises(DetectionDatasetError, match="not normalized"):
        openimages_vcm(pixels, images)
    missing = tmp_path / "missing.csv"
    _write_csv(missing, ["ImageID", "LabelName", "XMin", "XMax", "YMin", "YMax"], [["img_z", "/m/dog", "0", "1", "0", "1"]])
    with pytest.raises(DetectionDatasetError, match="no image for ImageID 'img_z'"):
        openimages_vcm(missing, images)
