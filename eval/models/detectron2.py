"""detectron2 Faster R-CNN (default X101-FPN, COCO) split after ``res2``: the head sends C2, the tail detects.

The paper's split: C2 = ``bottom_up.res2(bottom_up.stem(images.tensor))`` after the model's own
``preprocess_image`` (normalization and padding to the backbone's size divisibility), i.e. 256 channels
at stride 4 of the resized, padded image. The tail runs res3..res5, the FPN body (mirroring
``FPN.forward`` with C2 given from outside), the RPN, the ROI heads and ``detector_postprocess``; head
then tail is bitwise equal to ``model([inputs])`` in eval mode.

Preprocessing is detectron2's ``DefaultPredictor``'s: RGB uint8 -> the config's INPUT.FORMAT (BGR for
the model zoo), ResizeShortestEdge to INPUT.MIN_SIZE_TEST / MAX_SIZE_TEST (800 / 1333 by default).

detectron2 itself is installed by ``python -m eval.install.detectron2`` (the registry's pure-Python
v0.5 sdist, patched at build time: see that module) and imported only when an adapter is built, so
this module imports without it.
"""
from __future__ import annotations

import hashlib
import logging
import os
import warnings
from pathlib import Path

import numpy as np

from eval.tasks.detection import DetectionMAP50
from eval.models import MODELS
from eval.models.base import ModelAdapter

__all__ = ["Detectron2Adapter", "detectron2_available", "model_zoo_config_path", "save_model_zoo_pkl"]

logger = logging.getLogger(__name__)

DEFAULT_CONFIG = "COCO-Detection/faster_rcnn_X_101_32x8d_FPN_3x.yaml"
INSTALL_HINT = "run: python -m eval.install --detectron2"


def _import_detectron2():
    """Import detectron2, turning a missing or unpatched install into one clear ImportError."""
    try:
        with warnings.catch_warnings():  # detectron2 0.5 scripts a few helpers: torch warns it is deprecated
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"torch\.jit")
            import detectron2  # noqa: F401
            from detectron2.modeling import build_model  # noqa: F401
            from detectron2.config import get_cfg  # noqa: F401
            import detectron2.data.transforms  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"detectron2 is not importable ({exc}); {INSTALL_HINT}") from exc
    except AttributeError as exc:  # e.g. Pillow's removed Image.LINEAR in an unpatched install
        raise ImportError(f"detectron2 is installed but fails at import ({exc}); {INSTALL_HINT} --force") from exc
    return detectron2


def detectron2_available() -> bool:
    """True when detectron2 imports (used by tests to skip cleanly)."""
    try:
        _import_detectron2()
        return True
    except ImportError:
        return False


def model_zoo_config_path(config: str | os.PathLike) -> Path:
    """A yaml path as given, or a model-zoo name (e.g. ``COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml``)
    resolved inside the installed package (no ``pkg_resources`` needed)."""
    p = Path(config)
    if p.is_file():
        return p
    d2 = _import_detectron2()
    root = Path(d2.__file__).resolve().parent / "model_zoo" / "configs"
    q = root / str(config)
    if q.suffix != ".yaml":
        q = q.with_suffix(".yaml")
    if q.is_file():
        return q
    raise FileNotFoundError(f"config {str(config)!r} is neither a file nor a model-zoo config under {root} "
                            "(e.g. 'COCO-Detection/faster_rcnn_X_101_32x8d_FPN_3x.yaml')")


def _file_digest(path: Path) -> str:
    from eval.models.weights import sha256_file

    return sha256_file(path)[:16]


def save_model_zoo_pkl(model, path: str | os.PathLike, author: str = "fcm-reorder") -> None:
    """Save ``model``'s state dict in detectron2's model-zoo ``.pkl`` format (numpy arrays), atomically."""
    import pickle

    from codec.files import atomic_write_bytes

    state = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    atomic_write_bytes(path, pickle.dumps({"model": state, "__author__": author}))


@MODELS.register("detectron2")
class Detectron2Adapter(ModelAdapter):
    """detectron2 FPN detector split after res2 (C2: 256 channels, stride 4).

    Parameters: ``config`` model-zoo name or yaml path; ``weights`` a ``.pkl`` (model-zoo format) or
    ``.pth`` checkpoint loaded with ``DetectionCheckpointer`` (None: random initialisation seeded by
    ``seed``, only meaningful for tests and timing); ``device``; ``score_threshold`` overrides
    MODEL.ROI_HEADS.SCORE_THRESH_TEST; ``min_size`` / ``max_size`` override INPUT.MIN/MAX_SIZE_TEST;
    ``pseudo_gt_score`` is the task metric's pseudo ground-truth threshold for unannotated images;
    ``opts`` extra config overrides as detectron2's KEY VALUE list (e.g. fewer proposals for fast tests).
    ``.pkl`` files are unpickled: load only trusted ones.

    Feature PSNR of a coded cell is measured over :meth:`valid_region` (the C2 cells over the
    resized image), not over the padding to a multiple of 32 at the bottom/right; bits count the whole map.
    """

    name = "detectron2"
    layer = "res2"
    min_image_side = 32  # res5's stride and the padding's size divisibility (see ModelAdapter.min_image_side)

    def __init__(self, config: str | os.PathLike = DEFAULT_CONFIG, weights: str | os.PathLike | None = None,
                 device: str = "cpu", score_threshold: float | None = None, min_size: int | None = None,
                 max_size: int | None = None, seed: int = 0, pseudo_gt_score: float = 0.5,
                 opts: list | tuple | None = None):
        _import_detectron2()
        import torch
        from detectron2.config import get_cfg
        from detectron2.modeling import build_model
        from detectron2.modeling.backbone import FPN

        self.config = str(config)
        self.config_path_ = model_zoo_config_path(config)
        self.weights = None if weights is None else str(weights)
        self.device = str(device)
        self.score_threshold = score_threshold
        self.min_size, self.max_size, self.seed = min_size, max_size, int(seed)
        cfg = get_cfg()
        cfg.merge_from_file(str(self.config_path_))
        self.opts = list(opts or [])
        if self.opts:
            if len(self.opts) % 2:
                raise ValueError(f"opts must alternate config keys and values, e.g. ['MODEL.RPN.POST_NMS_TOPK_TEST', 100]; "
                                 f"got {len(self.opts)} items")
            cfg.merge_from_list(self.opts)
        cfg.MODEL.DEVICE = self.device
        cfg.MODEL.WEIGHTS = ""
        if score_threshold is not None:
            if not 0.0 <= float(score_threshold) <= 1.0:
                raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
            cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = float(score_threshold)
        for key, value in (("MIN_SIZE_TEST", min_size), ("MAX_SIZE_TEST", max_size)):
            if value is not None:
                if int(value) < 32:
                    raise ValueError(f"{key.lower()} must be an integer >= 32 pixels, got {value}")
                setattr(cfg.INPUT, key, int(value))
        if cfg.INPUT.FORMAT not in ("BGR", "RGB"):
            raise ValueError(f"config {self.config}: INPUT.FORMAT {cfg.INPUT.FORMAT!r} unsupported (BGR or RGB)")
        if cfg.MODEL.META_ARCHITECTURE != "GeneralizedRCNN":
            raise ValueError(f"config {self.config}: meta architecture {cfg.MODEL.META_ARCHITECTURE} is not supported; "
                             "the tail runs a GeneralizedRCNN (Faster/Mask R-CNN) RPN and ROI heads")
        backbone_name = str(cfg.MODEL.BACKBONE.NAME)
        if "fpn" not in backbone_name.lower() or "resnet" not in backbone_name.lower():
            raise ValueError(f"config {self.config}: backbone {backbone_name} is not a ResNet-FPN; the C2 split needs "
                             "an FPN config such as COCO-Detection/faster_rcnn_X_101_32x8d_FPN_3x.yaml")
        if weights is not None:
            wp = Path(weights)
            if not wp.is_file():
                raise FileNotFoundError(f"weights file {wp} not found; give a model-zoo .pkl or a .pth checkpoint")
            if wp.suffix not in (".pkl", ".pth", ".pt"):
                raise ValueError(f"weights file {wp}: expected a .pkl (model-zoo format) or .pth checkpoint")
        cfg.freeze()
        self.cfg = cfg
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = build_model(cfg)
        model.eval()
        backbone = model.backbone
        if not isinstance(backbone, FPN) or getattr(backbone.bottom_up, "stage_names", ("",))[0] != "res2":
            raise ValueError(f"config {self.config}: the C2 split needs an FPN over a ResNet whose first stage is "
                             f"res2; got backbone {type(backbone).__name__}")
        if weights is None:
            self.weights_digest_ = f"random-init-seed{self.seed}"
            msg = (f"Detectron2Adapter({self.config}): no weights given, the model is RANDOMLY INITIALISED: "
                   "its detections and mAP are meaningless except for tests and timing")
            warnings.warn(msg, RuntimeWarning, stacklevel=2)
            logger.warning(msg)
        else:
            self.weights_digest_ = self._load_weights(model, Path(weights))
        self.model_ = model
        self.n_channels = int(backbone.bottom_up._out_feature_channels["res2"])
        self.task = DetectionMAP50(pseudo_gt_score=pseudo_gt_score)

    # ------------------------------------------------------------------ weights and identity
    def _load_weights(self, model, path: Path) -> str:
        from detectron2.checkpoint import DetectionCheckpointer

        ckpt = DetectionCheckpointer(model)
        checkpoint = ckpt._load_file(str(path))
        incompatible = ckpt._load_model(checkpoint)
        missing = list(getattr(incompatible, "missing_keys", []) or [])
        shapes = list(getattr(incompatible, "incorrect_shapes", []) or [])
        if missing or shapes:
            raise ValueError(f"weights file {path} does not fit config {self.config}: {len(missing)} parameters missing "
                             f"(e.g. {missing[:3]}), {len(shapes)} with wrong shapes (e.g. {shapes[:2]}); "
                             "use the checkpoint trained with this config")
        return _file_digest(path)

    def identity(self) -> str:
        """Config (content digest, with device and score threshold left out: they do not change C2),
        weights digest, layer and input sizes."""
        cfg = self.cfg.clone()
        cfg.defrost()
        cfg.MODEL.DEVICE = "any"
        cfg.MODEL.ROI_HEADS.SCORE_THRESH_TEST = 0.0
        cfg_digest = hashlib.sha256(cfg.dump().encode()).hexdigest()[:12]
        return (f"detectron2:{self.config}:cfg={cfg_digest}:weights={self.weights_digest_}:layer={self.layer}:"
                f"format={self.cfg.INPUT.FORMAT}:min={self.cfg.INPUT.MIN_SIZE_TEST}:max={self.cfg.INPUT.MAX_SIZE_TEST}")

    def get_params(self) -> dict:
        return {"config": self.config, "weights": self.weights, "device": self.device,
                "score_threshold": self.score_threshold, "min_size": self.min_size, "max_size": self.max_size,
                "seed": self.seed, "pseudo_gt_score": self.task.pseudo_gt_score, "opts": list(self.opts)}

    # ------------------------------------------------------------------ preprocessing
    def preprocess(self, image: np.ndarray) -> dict:
        """detectron2's input dict for one RGB uint8 image, resized like ``DefaultPredictor``."""
        import torch
        import detectron2.data.transforms as T

        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be an H x W x 3 uint8 RGB array, got shape {image.shape} dtype {image.dtype}")
        if self.cfg.INPUT.FORMAT == "BGR":
            image = image[:, :, ::-1]
        h, w = image.shape[:2]
        aug = T.ResizeShortestEdge([self.cfg.INPUT.MIN_SIZE_TEST] * 2, self.cfg.INPUT.MAX_SIZE_TEST)
        resized = aug.get_transform(image).apply_image(np.ascontiguousarray(image))
        tensor = torch.as_tensor(np.ascontiguousarray(resized.astype("float32").transpose(2, 0, 1)))
        return {"image": tensor, "height": h, "width": w}

    # ------------------------------------------------------------------ split
    def head(self, image: np.ndarray) -> tuple[np.ndarray, dict]:
        import torch

        inputs = self.preprocess(image)
        model = self.model_
        with torch.no_grad():
            images = model.preprocess_image([inputs])
            bottom_up = model.backbone.bottom_up
            c2 = bottom_up.res2(bottom_up.stem(images.tensor))
        rh, rw = (int(v) for v in images.image_sizes[0])
        ph, pw = (int(v) for v in images.tensor.shape[-2:])
        meta = {
            "pixels": int(inputs["height"] * inputs["width"]),
            "orig_size": [int(inputs["height"]), int(inputs["width"])],
            "resized_size": [rh, rw],
            "padded_size": [ph, pw],
            "image_sizes": [[rh, rw]],
            "features_shape": [int(s) for s in c2.shape[1:]],
        }
        return c2[0].cpu().numpy().astype(np.float32, copy=False), meta

    def valid_region(self, meta: dict) -> tuple[int, int]:
        """The part of C2 over the resized image: ``ceil(resized / 4)`` rows and columns (stride 4);
        the rest of the map (bottom/right) lies over the padding to a multiple of 32."""
        for key in ("image_sizes", "padded_size"):
            if key not in meta:
                raise ValueError(f"meta lacks {key!r}: pass the meta dict that Detectron2Adapter.head returned")
        stride = 4
        rh, rw = (int(v) for v in meta["image_sizes"][0])
        ph, pw = (int(v) for v in meta["padded_size"])
        return min(-(-rh // stride), ph // stride), min(-(-rw // stride), pw // stride)

    def _fpn_from_c2(self, c2):
        """FPN outputs {p2..p6} from C2: the rest of the bottom-up ResNet, then FPN.forward's top-down body."""
        import torch.nn.functional as F

        fpn = self.model_.backbone
        bottom_up = fpn.bottom_up
        feats, x = {"res2": c2}, c2
        for name, stage in zip(bottom_up.stage_names, bottom_up.stages):
            if name == "res2":
                continue
            x = stage(x)
            feats[name] = x
        names = fpn.in_features  # low to high level, e.g. res2..res5; lateral/output convs are top-down
        prev = fpn.lateral_convs[0](feats[names[-1]])
        outs = [fpn.output_convs[0](prev)]
        for idx in range(1, len(names)):
            top_down = F.interpolate(prev, scale_factor=2.0, mode="nearest")
            prev = fpn.lateral_convs[idx](feats[names[-idx - 1]]) + top_down
            if fpn._fuse_type == "avg":
                prev = prev / 2
            outs.insert(0, fpn.output_convs[idx](prev))
        if fpn.top_block is not None:
            key = fpn.top_block.in_feature
            src = feats[key] if key in feats else outs[fpn._out_features.index(key)]
            outs.extend(fpn.top_block(src))
        if len(outs) != len(fpn._out_features):
            raise RuntimeError(f"FPN produced {len(outs)} levels, expected {fpn._out_features}")
        return dict(zip(fpn._out_features, outs))

    def tail(self, features: np.ndarray, meta: dict) -> dict:
        """Detections in input-image pixels: ``{"boxes": float32 [N, 4] xyxy, "scores": float32 [N],
        "classes": int64 [N], "image_size": [h, w]}``."""
        import torch
        from detectron2.modeling.postprocessing import detector_postprocess
        from detectron2.structures import ImageList

        for key in ("orig_size", "image_sizes", "padded_size"):
            if key not in meta:
                raise ValueError(f"meta lacks {key!r}: pass the meta dict that Detectron2Adapter.head returned")
        features = np.asarray(features)
        ph, pw = meta["padded_size"]
        stride = 4
        expected = (self.n_channels, ph // stride, pw // stride)
        if features.shape != expected:
            raise ValueError(f"features have shape {features.shape}, expected {expected} (C2 of a {ph}x{pw} padded "
                             "input); pass the features head() returned for this meta")
        if not np.isfinite(features).all():
            raise ValueError("features contain NaN/Inf; check the decoder/dequantiser output")
        model = self.model_
        device = model.device
        c2 = torch.from_numpy(np.ascontiguousarray(features, dtype=np.float32))[None].to(device)
        with torch.no_grad():
            fpn_feats = self._fpn_from_c2(c2)
            image_sizes = [tuple(int(v) for v in s) for s in meta["image_sizes"]]
            images = ImageList(torch.zeros((1, 0, ph, pw), device=device), image_sizes)
            proposals, _ = model.proposal_generator(images, fpn_feats, None)
            results, _ = model.roi_heads(images, fpn_feats, proposals, None)
            h, w = meta["orig_size"]
            inst = detector_postprocess(results[0], int(h), int(w))
        return {
            "boxes": inst.pred_boxes.tensor.cpu().numpy().astype(np.float32, copy=False),
            "scores": inst.scores.cpu().numpy().astype(np.float32, copy=False),
            "classes": inst.pred_classes.cpu().numpy().astype(np.int64, copy=False),
            "image_size": [int(h), int(w)],
        }

    def full(self, image: np.ndarray) -> dict:
        """The unsplit model on one image (``model([inputs])``), same output format as :meth:`tail`."""
        import torch

        with torch.no_grad():
            inst = self.model_([self.preprocess(image)])[0]["instances"]
        h, w = np.asarray(image).shape[:2]
        return {"boxes": inst.pred_boxes.tensor.cpu().numpy(), "scores": inst.scores.cpu().numpy(),
                "classes": inst.pred_classes.cpu().numpy().astype(np.int64), "image_size": [int(h), int(w)]}
