"""The two interfaces every model plugs into the evaluation through.

A :class:`ModelAdapter` splits a network at one layer: :meth:`~ModelAdapter.head`
turns an image into the feature map that gets coded, :meth:`~ModelAdapter.tail`
turns (decoded) features into the task output, and ``task`` is the
:class:`eval.tasks.base.TaskMetric` that scores it. Models know which task metric they
feed; the metrics themselves live in :mod:`eval.tasks` and know no model.
"""

from __future__ import annotations

import abc
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # annotations only: importing the adapters' interface loads no numpy
    import numpy as np

    from eval.tasks.base import TaskMetric

__all__ = ["ModelAdapter"]


class ModelAdapter(abc.ABC):
    """A network split at one layer into ``head`` (image -> features) and ``tail`` (features -> task output).

    Attributes: ``name`` (registry name), ``layer`` (where the split is),
    ``n_channels`` (C of the feature map), ``task`` (a :class:`TaskMetric`).
    """

    name: str
    layer: str
    n_channels: int
    task: TaskMetric
    #: the smallest short side (px) of an input image the model makes meaningful features of. Models
    #: scale every image to their input size, so a 1 x 1 image would be blown up into a full feature
    #: map of one colour and its bits divided by one pixel; a model whose deepest stage has stride 32
    #: needs at least 32 px (one cell of that stage) of real picture. Checked before the head runs,
    #: where the image is named (:meth:`check_image_size`, :class:`eval.pipeline.cache.FeatureCache`).
    min_image_side: int = 1

    @abc.abstractmethod
    def identity(self) -> str:
        """A stable string that changes whenever the features would: model, layer, weights digest, preprocessing.

        Used as (part of) the feature-cache key.
        """

    @abc.abstractmethod
    def head(self, image: np.ndarray) -> tuple[np.ndarray, dict]:
        """Features of one ``H x W x 3`` uint8 RGB image: ``(float32 [C, h, w], meta)``.

        ``meta`` is JSON-serialisable and holds at least ``"pixels"``, the input
        image's ``H * W`` (the denominator of bits per pixel), plus whatever the
        tail needs to run on the features alone.
        """

    @abc.abstractmethod
    def tail(self, features: np.ndarray, meta: dict) -> Any:
        """Task output from (possibly decoded) float32 ``[C, h, w]`` features and the head's ``meta``."""

    def check_image_size(self, height: int, width: int, where: str = "image") -> None:
        """Refuse an image whose short side is below :attr:`min_image_side` with one line naming ``where``."""
        need = int(getattr(self, "min_image_side", 1) or 1)
        if min(int(height), int(width)) < need:
            from eval.errors import ImageReadError

            raise ImageReadError(
                f"{where}: {int(width)}x{int(height)} px image is too small for {getattr(self, 'name', type(self).__name__)}, "
                f"which needs a short side of at least {need} px (smaller images are mostly invented by upscaling); "
                "use a larger image or remove it from the image set")

    def check_tail_features(self, features, meta: dict | None = None):
        """``features`` as the tail may take them: ``[n_channels, H, W]``, the head's shape (when ``meta`` says it), finite.

        Every adapter's tail starts here, so a decoded map that was not unpacked, cropped or
        un-permuted is refused with the same one-line error whatever the model.
        """
        import numpy as np

        from eval.errors import FeatureError

        f = np.asarray(features)
        if f.ndim != 3 or f.shape[0] != self.n_channels:
            raise FeatureError(f"features must be [{self.n_channels}, H, W], got shape {f.shape}; "
                               "undo packing/padding and the channel permutation first")
        if meta and "shape" in meta and list(f.shape) != list(meta["shape"]):
            raise FeatureError(f"features shape {list(f.shape)} differs from the head's {list(meta['shape'])}; "
                               "crop the decoded frames back to the original feature size")
        if not np.isfinite(f).all():
            raise FeatureError("features contain NaN/Inf; check the decoder and dequantizer output")
        return f

    #: what :meth:`task_log_probs` describes, for the provenance of a channel importance (None: not offered)
    task_distribution: str | None = None

    def task_log_probs(self, features: np.ndarray, meta: dict):
        """``[units, K]`` float64 log-probabilities of the task's prediction on (possibly decoded) ``features``.

        One categorical distribution per unit (a window's classes, an anchor's object/background);
        the KL divergence of a coded map's distributions from the uncoded map's, summed over units,
        is the task loss that :mod:`eval.pipeline.importance` measures each channel's importance by.
        A model that offers it sets :attr:`task_distribution`; the default refuses with one line.
        """
        raise NotImplementedError(f"{getattr(self, 'name', type(self).__name__)} gives no per-unit task distribution "
                                  "(task_log_probs), so channel importance cannot be measured for it")

    def bundled_orders(self) -> dict:
        """Channel orders shipped with the package for this model and layer, ``{name: order file path}``.

        Hand-made orders (``subjective``, made by eye from channel mosaics) live beside the
        adapters in ``eval/models/orders/``; studies compare them with the learned ones by default.
        """
        return {}

    def valid_region(self, meta: dict) -> tuple[int, int] | None:
        """``(h, w)``: the top-left part of the ``[C, h_map, w_map]`` feature map that holds the image, or
        None when all of it does (the default).

        A model that pads its input (detectron2 pads to a multiple of 32) has padding at the
        bottom and right of its map; feature PSNR is measured on this part only
        (:func:`eval.pipeline.cell.run_job`), while bits count the whole coded map.
        """
        return None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={getattr(self, 'name', '?')!r}, layer={getattr(self, 'layer', '?')!r})"
