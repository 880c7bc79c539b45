"""Channel mosaics of a few images: the pictures a hand-made ("subjective") order is made from.

For each image: one mosaic of every channel in identity order (``NAME.png``) and sheets of
``per_sheet`` channels at a size where the structure of each channel can be judged
(``NAME-sheet1.png`` ...), each tile labelled with its channel index. Look at them, write
channels that look alike as groups, one group per line, and turn the groups into an order
file with :func:`eval.experiments.make_order.make_order` (README, "A hand-made order").
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from eval.experiments.config import ConfigError, convert_fields, option

__all__ = ["MosaicsConfig", "MosaicsResult", "channel_mosaics"]


@dataclass
class MosaicsConfig:
    """Parameters of :func:`channel_mosaics`."""

    out: str = option(help="folder for the PNG files")
    image: list[str] = option(factory=list, repeat=True, metavar="NAME_OR_PATH",
                              help="a bundled sample photo by name (e.g. camera, motorcycle_left) or an image file; repeatable")
    per_sheet: int = option(36, minimum=0, help="channels per zoomed sheet (0: no sheets)")
    model: str = option("mobilenet_v2", help="model adapter: mobilenet_v2 (embedded default), ssdlite-person or detectron2")
    config: str | None = option(None, help="detectron2: model-zoo config name or yaml path")
    weights: str | None = option(None, help="model weights file")
    device: str = option("cpu", help="torch device for the model")
    model_args: dict = option(factory=dict, flag="--model-arg", repeat=True, metavar="KEY=VALUE", renamed_from=("model_arg",),
                              help="extra keyword for the model adapter (repeatable)")
    cache_dir: str = option(".cache/features", help="feature cache")
    verbose: bool = option(False, short="-v", help="debug logging")

    def __post_init__(self):
        convert_fields(self)
        if not self.image:
            raise ConfigError("image", "give at least one image (a bundled photo's name or a file)")


def _sample(spec: str):
    from eval.data import images

    if Path(spec).is_file():
        return images.Sample(id=Path(spec).stem, path=str(spec))
    bundled = {s.id: s for s in images.sample_photos(include_grey=True)}
    if spec not in bundled:
        raise ConfigError("image", f"{spec!r} is neither a file nor a bundled photo; bundled: {', '.join(sorted(bundled))}")
    return bundled[spec]


@dataclass
class MosaicsResult:
    config: MosaicsConfig
    paths: list = field(default_factory=list)
    files: dict = field(default_factory=dict)
    exit_code: int = 0

    def text(self) -> str:
        return "\n".join(map(str, self.paths))

    def notes(self) -> list[str]:
        return []


def channel_mosaics(config: MosaicsConfig, *, command: str | None = None, source: str | None = None) -> MosaicsResult:
    """Draw the mosaics of ``config.image`` (features from the feature cache, computed when missing)."""
    from eval.experiments.session import study_session

    samples = [_sample(spec) for spec in config.image]  # a bad name fails before the model loads
    with study_session(config, "channel_mosaics", run=config, command=command, source=source):
        return MosaicsResult(config, _draw(config, samples))


def _draw(config: MosaicsConfig, samples) -> list:
    import numpy as np

    from eval.experiments.config import DataConfig
    from eval.models import make_model
    from eval.pipeline.cache import FeatureCache
    from eval.plots import channel_mosaic

    spec = DataConfig(model=config.model, config=config.config, weights=config.weights, device=config.device,
                      model_args=config.model_args).model_spec()
    adapter = make_model(spec["name"], **spec["kwargs"])
    cache, out, made = FeatureCache(config.cache_dir), Path(config.out), []
    for sample in samples:
        features, _ = cache.get_or_compute(adapter, sample)
        c = features.shape[0]
        made.append(channel_mosaic(features, out / f"{sample.id}.png", annotate=True,
                                   title=f"{sample.id}: {c} channels of {adapter.layer}, identity order"))
        for k, start in enumerate(range(0, c, config.per_sheet) if config.per_sheet else []):
            idx = np.arange(start, min(c, start + config.per_sheet))
            made.append(channel_mosaic(features[idx], out / f"{sample.id}-sheet{k + 1}.png", annotate=True,
                                       title=f"{sample.id}: channels {idx[0]}-{idx[-1]} (tile number + {start} = channel index)"))
    return made
