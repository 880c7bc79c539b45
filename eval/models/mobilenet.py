"""The embedded default model: torchvision's ImageNet MobileNetV2, split at a stride-4 layer.

Split point
-----------
``features[4].conv[0]``: the 1x1 expansion (conv + BN + ReLU6) of the first
block of the 32-channel stage. Its output has 144 channels at stride 4 - the
expanded, redundant representation whose channels look alike, which is what
channel reordering can exploit. The head runs ``features[0:4]`` and that
expansion; the tail runs the rest of block 4 (stride-2 depthwise conv and
linear projection; block 4 has no residual connection, so nothing crosses the
split), ``features[5:]``, global average pooling and the classifier. In eval
mode head-then-tail performs exactly the same operations as the unsplit
network, so on the same input the logits are bitwise equal (tested).

Preprocessing
-------------
The image is resized (PIL, bilinear with antialiasing on downscale) so that its
short side is ``short_side`` = 512 px, keeping the aspect ratio, then scaled to
[0, 1] and normalized with the ImageNet mean and std. 512 px makes the feature
map about 128 x 170 for a 4:3 photo (a realistic frame size for feature video)
and leaves room for dozens of 224 px windows per image. Upscaling small images
is intended: every image gets the same scale of objects relative to the window.
``meta["pixels"]`` is the *original* image's ``H * W``, so bits per pixel refer
to the input image as in the MPEG VCM/FCM conditions.

Task metric: ``kl_fidelity_db``, :class:`eval.tasks.classification.KLFidelity`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from eval.errors import FeatureError
from eval.models import MODELS
from eval.models.base import ModelAdapter
from eval.tasks.classification import KLFidelity

__all__ = ["MobileNetV2Adapter", "build_mobilenet_v2", "window_positions", "IMAGENET_MEAN", "IMAGENET_STD"]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_STRIDE = 4  # feature stride of features[4].conv[0]
#: hand-made orders for this layer shipped with the package (see ModelAdapter.bundled_orders)
BUNDLED_ORDERS = {"subjective": Path(__file__).with_name("orders") / "mobilenet_v2-subjective.json"}


def window_positions(size: int, window: int, stride: int) -> list[int]:
    """Start offsets of windows of length ``window`` covering ``[0, size)``, ``stride`` apart.

    The last window is aligned to the end so the whole extent is covered; when
    ``size <= window`` there is one window at 0 (the tail then sees the whole extent).
    """
    if window <= 0 or stride <= 0:
        raise ValueError(f"window ({window}) and stride ({stride}) must be positive")
    if size <= window:
        return [0]
    pos = list(range(0, size - window + 1, stride))
    if pos[-1] != size - window:
        pos.append(size - window)
    return pos


def _conv_bn_relu6(nn, inp: int, oup: int, kernel: int = 3, stride: int = 1, groups: int = 1):
    """torchvision's ``Conv2dNormActivation`` as MobileNetV2 uses it: conv (no bias), BN, in-place ReLU6."""
    return nn.Sequential(nn.Conv2d(inp, oup, kernel, stride, (kernel - 1) // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(oup), nn.ReLU6(inplace=True))


def build_mobilenet_v2():
    """torchvision's ``mobilenet_v2(weights=None)`` (ImageNet classes, width 1.0), built without importing torchvision.

    The same modules under the same names (``features.<i>.conv.<j>``, ``classifier.1``), so
    torchvision's state dict loads with ``strict=True``, and the same forward (inverted
    residual blocks adding their input where stride is 1 and the width stays, global average
    pooling, dropout and the linear classifier): the same operations, so the same logits, bit
    for bit (tested against torchvision). Why not torchvision itself: importing it costs each
    worker process ~1.7 CPU seconds (``torchvision.ops`` imports ``torch._dynamo``), as much as
    a small cell, and every worker pays it before its first cell.
    """
    import torch
    from torch import nn

    class InvertedResidual(nn.Module):
        def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
            super().__init__()
            hidden = int(round(inp * expand_ratio))
            self.stride = stride
            self.use_res_connect = stride == 1 and inp == oup
            layers = [_conv_bn_relu6(nn, inp, hidden, kernel=1)] if expand_ratio != 1 else []
            layers += [_conv_bn_relu6(nn, hidden, hidden, stride=stride, groups=hidden),
                       nn.Conv2d(hidden, oup, 1, 1, 0, bias=False), nn.BatchNorm2d(oup)]
            self.conv = nn.Sequential(*layers)
            self.out_channels = oup

        def forward(self, x):
            return x + self.conv(x) if self.use_res_connect else self.conv(x)

    class MobileNetV2(nn.Module):
        def __init__(self):
            super().__init__()
            channels, features = 32, [_conv_bn_relu6(nn, 3, 32, stride=2)]
            for t, c, n, s in ((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
                               (6, 160, 3, 2), (6, 320, 1, 1)):
                for i in range(n):
                    features.append(InvertedResidual(channels, c, s if i == 0 else 1, t))
                    channels = c
            features.append(_conv_bn_relu6(nn, channels, 1280, kernel=1))
            self.features = nn.Sequential(*features)
            self.classifier = nn.Sequential(nn.Dropout(p=0.2), nn.Linear(1280, 1000))

        def forward(self, x):
            x = nn.functional.adaptive_avg_pool2d(self.features(x), (1, 1))
            return self.classifier(torch.flatten(x, 1))

    return MobileNetV2()


@MODELS.register("mobilenet_v2", "mobilenetv2")
class MobileNetV2Adapter(ModelAdapter):
    """torchvision MobileNetV2 (ImageNet weights) split after ``features[4].conv[0]`` (144 channels, stride 4).

    Parameters
    ----------
    weights : path of ``mobilenet_v2-b0353104.pth`` (default: found by
        :func:`eval.models.weights.mobilenet_v2_weights_path`; install with
        ``python -m eval.install``). Loaded with ``torch.load(weights_only=True)``
        and ``load_state_dict(strict=True)``.
    device : torch device for head and tail ("cpu" default; outputs are numpy on the CPU).
    short_side : the image's short side after resizing, in pixels (512).
    window : tail window size in input pixels (224, the network's training size; a multiple of 4).
    window_stride : distance between tail windows in input pixels (64 = 16 feature pixels; a multiple of 4).
    batch_size : windows per tail forward pass.
    num_threads : if given, ``torch.set_num_threads(num_threads)`` (process-wide) at construction;
        leave ``None`` when the caller manages threads (the runner uses 1 per worker process).
    """

    name = "mobilenet_v2"
    layer = "features.4.conv.0"
    n_channels = 144
    stride = _STRIDE
    min_image_side = 32  # the network's total stride (see ModelAdapter.min_image_side), also short_side's minimum
    task_distribution = "each window's softmax over the 1000 ImageNet classes"

    def __init__(self, weights: str | None = None, device: str = "cpu", short_side: int = 512,
                 window: int = 224, window_stride: int = 64, batch_size: int = 16, num_threads: int | None = None):
        import torch

        from eval.models.weights import mobilenet_v2_weights_path, weights_file_sha256

        for label, v in (("window", window), ("window_stride", window_stride)):
            if int(v) <= 0 or int(v) % _STRIDE:
                raise ValueError(f"{label}={v} must be a positive multiple of {_STRIDE} px (the feature stride)")
        if int(short_side) < 32:
            raise ValueError(f"short_side={short_side} is too small; use >= 32 px (512 is the default)")
        if int(batch_size) < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        self.short_side = int(short_side)
        self.window = int(window)
        self.window_stride = int(window_stride)
        self.batch_size = int(batch_size)
        self.device = torch.device(device)
        if num_threads is not None:
            torch.set_num_threads(int(num_threads))

        path = mobilenet_v2_weights_path() if weights is None else weights
        self.weights_sha256 = weights_file_sha256(path)
        self.weights_path = str(path)
        state = torch.load(path, map_location="cpu", weights_only=True)
        model = build_mobilenet_v2()  # torchvision's network, without importing torchvision
        try:
            model.load_state_dict(state, strict=True)
        except RuntimeError as exc:
            first = str(exc).splitlines()[0]
            raise ValueError(f"{path} is not a torchvision MobileNetV2 state dict ({first}); run: python -m eval.install") from None
        model.eval().to(self.device)
        self.model = model
        block = model.features[4]
        self._head = torch.nn.Sequential(*model.features[:4], block.conv[0]).eval()
        self._tail_blocks = torch.nn.Sequential(*block.conv[1:], *model.features[5:]).eval()
        self._mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32).view(1, 3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD, dtype=torch.float32).view(1, 3, 1, 1)
        self.task = KLFidelity()

    # -- identity ---------------------------------------------------------------------------------
    def bundled_orders(self) -> dict:
        """``subjective``: groups of look-alike channels picked by eye (see ``orders/mobilenet_v2-subjective.groups.txt``)."""
        return dict(BUNDLED_ORDERS)

    def identity(self) -> str:
        import torch

        return (f"{self.name}|layer={self.layer}|weights=sha256:{self.weights_sha256[:16]}"
                f"|pre=short{self.short_side}-pil-bilinear-imagenet-norm|torch={torch.__version__}|v1")

    def tail_identity(self) -> str:
        """:meth:`identity` plus the tail's window settings (what a cached tail output depends on)."""
        return f"{self.identity()}|tail=windows{self.window}s{self.window_stride}"

    def get_params(self) -> dict:
        return {"weights": self.weights_path, "device": str(self.device), "short_side": self.short_side,
                "window": self.window, "window_stride": self.window_stride, "batch_size": self.batch_size}

    # -- preprocessing ----------------------------------------------------------------------------
    def input_size(self, height: int, width: int) -> tuple[int, int]:
        """Network input size ``(h, w)`` for an image of ``height x width``: short side = ``short_side``."""
        s = self.short_side / min(height, width)
        return max(1, round(height * s)), max(1, round(width * s))

    def preprocess(self, image: np.ndarray):
        """Resized, normalized ``[1, 3, h, w]`` float32 tensor of an ``H x W x 3`` uint8 image."""
        import torch
        from PIL import Image

        a = np.asarray(image)
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3 or a.shape[0] < 1 or a.shape[1] < 1:
            raise ValueError(f"image must be an H x W x 3 uint8 RGB array, got shape {a.shape} dtype {a.dtype}; "
                             "use eval.data.images.load_image")
        h, w = self.input_size(a.shape[0], a.shape[1])
        if (h, w) != a.shape[:2]:
            a = np.asarray(Image.fromarray(a).resize((w, h), Image.Resampling.BILINEAR))
        x = torch.tensor(a).permute(2, 0, 1).unsqueeze(0).float().div_(255.0)  # copies: PIL arrays are read-only
        return ((x - self._mean) / self._std).to(self.device)

    # -- network parts ----------------------------------------------------------------------------
    def head_tensor(self, x):
        """Head on a preprocessed batch ``[N, 3, h, w]`` -> ``[N, 144, h/4, w/4]`` (ceil)."""
        import torch

        with torch.inference_mode():
            return self._head(x)

    def tail_tensor(self, f, grad: bool = False):
        """Tail on a feature batch ``[N, 144, fh, fw]`` -> logits ``[N, 1000]`` (same ops as the full network).

        ``grad=True`` runs it with autograd (gradients of the task with respect to the features,
        :mod:`eval.pipeline.importance`); the default runs in inference mode."""
        import torch

        with torch.inference_mode(not grad):
            y = self._tail_blocks(f)
            y = torch.nn.functional.adaptive_avg_pool2d(y, (1, 1))
            return self.model.classifier(torch.flatten(y, 1))

    def classify(self, image: np.ndarray) -> np.ndarray:
        """Logits ``[1000]`` of the *unsplit* network on the whole preprocessed image (reference for tests)."""
        import torch

        with torch.inference_mode():
            return self.model(self.preprocess(image))[0].cpu().numpy()

    # -- adapter interface ------------------------------------------------------------------------
    def head(self, image: np.ndarray) -> tuple[np.ndarray, dict]:
        a = np.asarray(image)
        x = self.preprocess(a)
        f = self.head_tensor(x)[0].cpu().numpy().astype(np.float32, copy=False)
        f = np.ascontiguousarray(f)
        if not np.isfinite(f).all():
            raise FeatureError("MobileNetV2 head produced NaN/Inf features; check the image and the weights file")
        meta = {
            "pixels": int(a.shape[0] * a.shape[1]),
            "image_size": [int(a.shape[0]), int(a.shape[1])],
            "input_size": [int(x.shape[2]), int(x.shape[3])],
            "shape": [int(s) for s in f.shape],
            "stride": _STRIDE,
            "model": self.name,
            "layer": self.layer,
        }
        return f, meta

    def windows(self, height: int, width: int) -> list[tuple[int, int]]:
        """``(top, left)`` feature-map offsets of the tail's windows for a ``height x width`` feature map."""
        win, step = self.window // _STRIDE, self.window_stride // _STRIDE
        return [(t, l) for t in window_positions(height, win, step) for l in window_positions(width, win, step)]

    def tail(self, features: np.ndarray, meta: dict | None = None) -> np.ndarray:
        """Logits ``[n_windows, 1000]`` (float32) of the tail on overlapping windows of ``features``."""
        import torch

        f = self.check_tail_features(features, meta)
        crops = self.window_batch(f)
        out = []
        for i in range(0, len(crops), self.batch_size):
            out.append(self.tail_tensor(crops[i:i + self.batch_size]).cpu())
        return torch.cat(out).numpy().astype(np.float32, copy=False)

    def task_log_probs(self, features: np.ndarray, meta: dict | None = None) -> np.ndarray:
        """``[n_windows, 1000]``: each window's log-softmax (what :class:`eval.tasks.classification.KLFidelity` compares)."""
        from eval.tasks.classification import log_softmax

        return log_softmax(self.tail(features, meta).astype(np.float64))

    def window_batch(self, features: np.ndarray):
        """The tail's windows of a ``[144, H, W]`` feature map as one tensor ``[n_windows, 144, win, win]``
        (:meth:`windows` order, on the adapter's device)."""
        import torch

        f = np.asarray(features)
        t = torch.from_numpy(np.ascontiguousarray(f, dtype=np.float32)).to(self.device)
        win = self.window // _STRIDE
        return torch.stack([t[:, r:r + win, c:c + win] for r, c in self.windows(f.shape[1], f.shape[2])])
