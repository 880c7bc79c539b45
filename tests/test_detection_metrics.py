"""Detection metrics: our AP against pycocotools and hand-computed values, the Open Images challenge rules."""
import json
import math

import numpy as np
import pytest

from eval.tasks.detection import (
    DetectionMAP50, average_precision, box_ioa, box_iou, coco_map, openimages_ap_per_class, openimages_map50,
    voc_ap_per_class, voc_map50,
)


def _det(boxes, scores, classes):
    return {"boxes": np.asarray(boxes, float).reshape(-1, 4), "scores": np.asarray(scores, float),
            "classes": np.asarray(classes, int)}


def _synthetic_set(seed, n_images=25, n_classes=4):
    """Random ground truth (10% crowd), jittered true detections, class confusions and clutter."""
    rng = np.random.default_rng(seed)
    dets, gts = [], []
    for _ in range(n_images):
        m = int(rng.integers(0, 6))
        xy = rng.uniform(0, 200, (m, 2))
        gt_boxes = np.c_[xy, xy + rng.uniform(10, 60, (m, 2))]
        gt_classes = rng.integers(0, n_classes, m)
        boxes, classes = [], []
        for _ in range(int(rng.integers(0, 3 * m + 2))):
            if m and rng.random() < 0.7:
                s = int(rng.integers(0, m))
                boxes.append(gt_boxes[s] + rng.normal(0, 4, 4))
                classes.append(gt_classes[s] if rng.random() < 0.85 else rng.integers(0, n_classes))
            else:
                p = rng.uniform(0, 200, 2)
                boxes.append(np.r_[p, p + rng.uniform(10, 60, 2)])
                classes.append(rng.integers(0, n_classes))
        boxes = np.asarray(boxes, float).reshape(-1, 4)
        boxes[:, 2:] = np.maximum(boxes[:, 2:], boxes[:, :2] + 1)
        dets.append(_det(boxes, rng.random(len(boxes)), classes))
        gts.append({"boxes": gt_boxes, "classes": gt_classes, "iscrowd": rng.random(m) < 0.1})
    return dets, gts


# Hand-made set: 3 ground-truth boxes of class 0 over two images; ranked detections TP, FP, TP, FP, TP.
HAND_GTS = [{"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "classes": [0, 0]},
            {"boxes": [[0, 0, 10, 10]], "classes": [0]}]
HAND_DETS = [_det([[0, 0, 10, 10], [50, 50, 60, 60], [20, 20, 30, 30]], [0.9, 0.8, 0.7], [0, 0, 0]),
             _det([[40, 40, 50, 50], [0, 0, 10, 10]], [0.6, 0.5], [0, 0])]
# precision/recall after each: (1, 1/3) (1/2, 1/3) (2/3, 2/3) (1/2, 2/3) (3/5, 1)
# all-point: envelope 1 on (0, 1/3], 2/3 on (1/3, 2/3], 3/5 on (2/3, 1] -> (1 + 2/3 + 3/5) / 3
HAND_AP_ALL = (1 + 2 / 3 + 3 / 5) / 3
# 101-point: recalls 0.00..0.33 -> 1 (34 points), 0.34..0.66 -> 2/3 (33), 0.67..1.00 -> 3/5 (34)
HAND_AP_101 = (34 * 1 + 33 * 2 / 3 + 34 * 3 / 5) / 101


def test_iou_and_ioa_of_simple_boxes():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[5, 0, 15, 10], [0, 0, 10, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b), [[50 / 150, 1.0, 0.0]])
    np.testing.assert_allclose(box_ioa(a, b), [[0.5, 1.0, 0.0]])
    big = np.array([[0, 0, 100, 100]])
    assert box_ioa(a, big)[0, 0] == 1.0 and box_iou(a, big)[0, 0] == pytest.approx(0.01)


def test_hand_computed_average_precision_both_interpolations():
    assert voc_map50(HAND_DETS, HAND_GTS) == pytest.approx(HAND_AP_ALL, abs=1e-12)
    assert voc_map50(HAND_DETS, HAND_GTS, interpolation="coco101") == pytest.approx(HAND_AP_101, abs=1e-12)
    assert coco_map(HAND_DETS, HAND_GTS)["AP50"] == pytest.approx(HAND_AP_101, abs=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_coco101_mode_reproduces_pycocotools_ap50(seed):
    dets, gts = _synthetic_set(seed)
    ours = voc_map50(dets, gts, interpolation="coco101", max_dets=100)
    ref = coco_map(dets, gts)["AP50"]
    assert 0.05 < ref < 0.95  # a set where matching actually matters
    assert ours == pytest.approx(ref, abs=1e-12)
    # all-point interpolation integrates the same envelope more finely: close but not identical
    assert voc_map50(dets, gts) == pytest.approx(ref, abs=0.03)


def test_perfect_and_empty_detections():
    gts = [{"boxes": [[0, 0, 10, 10]], "classes": [3]}]
    assert voc_map50([_det([[0, 0, 10, 10]], [0.5], [3])], gts) == 1.0
    assert voc_map50([_det(np.zeros((0, 4)), [], [])], gts) == 0.0
    assert coco_map([_det(np.zeros((0, 4)), [], [])], gts)["AP50"] == 0.0
    # classes without ground truth are left out of the mean, not counted as zero
    per_class = voc_ap_per_class([_det([[0, 0, 10, 10], [50, 50, 60, 60]], [0.5, 0.9], [3, 7])], gts)
    assert per_class[3] == 1.0 and math.isnan(per_class[7])


def test_voc_matching_differs_from_coco_matching_on_overlapping_ground_truth():
    # two overlapping GTs; the higher-scored detection takes the GT the second one overlaps most
    gts = [{"boxes": [[0, 0, 10, 10], [0, 2, 10, 12]], "classes": [0, 0]}]
    # first detection: IoU .852 with GT0, .786 with GT1; second: .905 with GT0, .739 with GT1
    dets = [_det([[0, 0.8, 10, 10.8], [0, 0.5, 10, 10.5]], [0.9, 0.8], [0, 0])]
    # COCO matching: the second detection falls back to the free GT -> both TP -> AP 1
    assert voc_map50(dets, gts, matching="coco") == 1.0
    # VOC matching: its best GT is taken -> FP; ranked TP, FP with 2 positives -> AP 1/2
    assert voc_map50(dets, gts, matching="voc") == pytest.approx(0.5)


def test_mismatched_inputs_are_rejected_with_a_clear_message():
    with pytest.raises(ValueError, match="2 detection entries but 1 ground-truth"):
        voc_map50(HAND_DETS, HAND_GTS[:1])
    with pytest.raises(ValueError, match="same length"):
        voc_map50([{"boxes": [[0, 0, 1, 1]], "scores": [0.1, 0.2], "classes": [0]}], HAND_GTS[:1])
    with pytest.raises(ValueError, match="interpolation"):
        average_precision([0.5], [True], 1, interpolation="11pt")


# ------------------------------------------------------------------------------------------ Open Images

def test_openimages_group_of_counts_once_with_its_highest_score():
    # class 0: a normal box N and a group-of box Q (group of 3+ objects).
    gts = [{"boxes": [[0, 0, 10, 10], [20, 0, 60, 40]], "classes": [0, 0], "is_group_of": [False, True]}]
    dets = [_det([[0, 0, 10, 10],       # .9 matches N -> TP
                  [0, 0, 10, 10],       # .8 duplicate on N -> FP
                  [21, 1, 31, 11],      # .7 inside Q (IoA 1, IoU 1/16)
                  [100, 100, 110, 110],  # .6 nowhere -> FP
                  [30, 10, 40, 20]],    # .3 inside Q as well: ignored, Q gives one TP scored .7
                 [0.9, 0.8, 0.7, 0.6, 0.3], [0] * 5)]
    # ranked: .9 TP, .8 FP, .7 TP(group), .6 FP; 2 positives
    # P/R: (1, .5) (.5, .5) (2/3, 1) (.5, 1) -> AP = .5 * 1 + .5 * 2/3 = 5/6
    assert openimages_ap_per_class(dets, gts)[0] == pytest.approx(5 / 6)
    # a second image whose group-of box got no detection: one more missed positive (3 in all)
    gts2 = gts + [{"boxes": [[0, 0, 50, 50]], "classes": [0], "is_group_of": [True]}]
    dets2 = dets + [_det(np.zeros((0, 4)), [], [])]
    # P/R: (1, 1/3) (.5, 1/3) (2/3, 2/3) (.5, 2/3) -> AP = 1/3 * 1 + 1/3 * 2/3 = 5/9
    assert openimages_ap_per_class(dets2, gts2)[0] == pytest.approx(5 / 9)
    # without the group-of rule (plain VOC, group-of box as an ordinary box) the value differs
    assert voc_map50(dets, [{"boxes": gts[0]["boxes"], "classes": [0, 0]}]) != pytest.approx(5 / 6)


def test_openimages_image_level_labels():
    gts = [
        # image A: class 1 verified present (with its box), class 2 verified absent, class 3 unannotated
        {"boxes": [[0, 0, 10, 10]], "classes": [1], "positive_labels": [1], "negative_labels": [2]},
        # image B: exhaustive boxes for classes 2 and 3
        {"boxes": [[0, 0, 10, 10], [20, 20, 30, 30]], "classes": [2, 3]},
    ]
    dets = [
        _det([[0, 0, 10, 10], [40, 40, 50, 50], [60, 60, 70, 70]], [0.9, 0.8, 0.95], [1, 2, 3]),
        _det([[0, 0, 10, 10], [20, 20, 30, 30]], [0.5, 0.4], [2, 3]),
    ]
    ap = openimages_ap_per_class(dets, gts)
    assert ap[1] == 1.0                      # the one TP
    # class 2: .8 FP (verified absent in A), .5 TP in B -> P/R (0, 0) (1/2, 1) -> AP 1/2
    assert ap[2] == pytest.approx(0.5)
    # class 3: the .95 detection in A is ignored (class unannotated there) -> only the TP in B -> 1
    assert ap[3] == 1.0
    assert openimages_map50(dets, gts) == pytest.approx((1 + 0.5 + 1) / 3)
    # counting the unannotated detection would have made class 3 a FP-then-TP list (AP 1/2)
    gts_exhaustive = [{"boxes": gts[0]["boxes"], "classes": gts[0]["classes"]}, gts[1]]
    assert openimages_ap_per_class(dets, gts_exhaustive)[3] == pytest.approx(0.5)


# ------------------------------------------------------------------------------------------ task metric

def test_map50_task_metric_with_pseudo_ground_truth_and_annotations():
    metric = DetectionMAP50(pseudo_gt_score=0.5)
    ref = {"boxes": [[0, 0, 10, 10], [20, 20, 40, 40], [50, 50, 60, 60], [70, 70, 70, 80]],
           "scores": [0.9, 0.7, 0.2, 0.95], "classes": [1, 2, 1, 1]}
    same = metric.image_stats(ref, ref)
    json.dumps(same)  # JSON-serialisable
    # .2 is below 0.5 and the zero-width box is no object: 2 pseudo ground-truth boxes
    assert same["gt_source"] == "pseudo" and same["ground_truth"]["boxes"] == [[0, 0, 10, 10], [20, 20, 40, 40]]
    # class 1 ranked: .95 FP (degenerate box), .9 TP, .2 FP -> AP 1/2 (all-point: 101-point gives 0.5 too)
    assert metric.aggregate([same]) == pytest.approx((0.5 + 1.0) / 2)
    moved = dict(ref, boxes=[[0, 0, 10, 10], [60, 60, 80, 80], [50, 50, 60, 60], [70, 70, 70, 80]])
    assert metric.aggregate([metric.image_stats(moved, ref)]) == pytest.approx(0.25)  # class 2 lost
    ann = {"boxes": [[0, 0, 10, 10]], "classes": [1], "is_group_of": [False], "positive_labels": [1]}
    stats = metric.image_stats(ref, None, ann)
    assert stats["gt_source"] == "annotation"
    # Open Images protocol chosen from the image-level labels: class 2 unannotated -> ignored;
    # class 1: .95 FP, .9 TP, .2 FP -> all-point AP 1/2
    assert metric.aggregate([stats]) == pytest.approx(0.5)
    # COCO protocol: same value here (class 2 has no ground truth, so it is left out of the mean)
    assert DetectionMAP50(protocol="coco").aggregate([stats]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="needs ground truth"):
        metric.image_stats(ref, None, None)
    with pytest.raises(ValueError, match="protocol"):
        DetectionMAP50(protocol="lvis")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_map50_pools_matches_made_once_per_image_and_equals_pycocotools(seed):
    """DetectionMAP50 matches each image when its cell is scored; the set's AP then only pools those matches,
    for any resampled set of images (duplicates included, as a bootstrap draws them)."""
    from eval.tasks.detection import COCO50_MATCHES

    dets, gts = _synthetic_set(seed)
    metric = DetectionMAP50()
    stats = [metric.image_stats(d, None, g) for d, g in zip(dets, gts)]
    assert all(COCO50_MATCHES in s for s in stats)
    draw = np.random.default_rng(seed).integers(0, len(stats), len(stats))
    chosen = [stats[i] for i in draw]
    fast = metric.aggregate(chosen)
    slow = coco_map([s["detections"] for s in chosen], [s["ground_truth"] for s in chosen])["AP50"]
    assert 0.05 < slow < 0.95 and fast == pytest.approx(slow, abs=1e-12)
    # rows stored before the matches existed are scored by pycocotools itself
    legacy = [{k: v for k, v in s.items() if k != COCO50_MATCHES} for s in chosen]
    assert metric.aggregate(legacy) == pytest.approx(slow, abs=1e-12)
