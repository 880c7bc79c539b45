"""search_order with the paper's model family: detectron2 split at C2, task BD-rate on mAP@0.5.

Random weights (nothing can be downloaded here) and a tiny R50-FPN input keep it CPU-cheap; the
point is that the whole path (COCO dataset -> C2 head -> reorder -> VVenC -> tail -> mAP) runs
through the same core as the embedded default.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from eval.models.detectron2 import detectron2_available

pytestmark = [pytest.mark.detectron2, pytest.mark.slow]
if not detectron2_available():
    pytest.skip("detectron2 is not installed (run: python -m eval.install.detectron2)", allow_module_level=True)

ROOT = Path(__file__).resolve().parents[1]


def coco_set(tmp_path):
    from eval.data.images import sample_photos

    images, annotations = [], []
    folder = tmp_path / "images"
    folder.mkdir()
    for i, s in enumerate(sample_photos()[:2], start=1):
        from PIL import Image

        name = Path(s.path).name
        shutil.copy(s.path, folder / name)
        w, h = Image.open(s.path).size
        images.append({"id": i, "file_name": name, "width": w, "height": h})
        annotations.append({"id": i, "image_id": i, "category_id": 1, "bbox": [w * 0.2, h * 0.2, w * 0.5, h * 0.5], "area": w * h * 0.25, "iscrowd": 0})
    ann = tmp_path / "instances.json"
    ann.write_text(json.dumps({"images": images, "annotations": annotations, "categories": [{"id": 1, "name": "thing"}]}))
    return ann, folder


def test_detectron2_study_end_to_end(tmp_path):
    ann, folder = coco_set(tmp_path)
    out = tmp_path / "out"
    args = [
        "--model", "detectron2", "--config", "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml",
        "--model-arg", "min_size=160", "--model-arg", "max_size=240", "--model-arg", "score_threshold=0.0",
        "--dataset", f"coco:{ann}:{folder}", "--n-calib", "1",
        "--orders", "identity", "tsp-correlation", "--qps", "22", "27", "32", "37",
        "--workers", "1", "--quiet", "--out", str(out), "--cache-dir", str(tmp_path / "cache"),
        "--compare-quantizers", "none", "--compare-pipelines", "none",
    ]
    proc = subprocess.run([sys.executable, "-m", "studies.search_order", *args], cwd=ROOT, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["task_metric"] == "map50"
    assert set(summary["bd_rate"]) == {"identity", "tsp-correlation"}
    order = json.loads((out / "orders" / "tsp-correlation.json").read_text())
    assert order["n_channels"] == 256 and order["provenance"]["layer"] == "res2"
    curves = {c["setup"]["order"]: c for c in summary["curves"]}
    assert curves["identity"]["qp"] == [22, 27, 32, 37]
    assert all(0.0 <= v <= 1.0 for v in curves["identity"]["task"])  # mAP@0.5 against the annotations
    rows = (out / "results.csv").read_text().splitlines()
    assert len(rows) == 1 + 1 * 2 * 4
