"""Named coding pipelines: which quantizer, which packing and which chroma format, as data.

A study compares orders *within* a pipeline and pipelines against each other; the field
reports against MPEG's anchor, this package's BD-rates against the seed paper's pipeline.
Each pipeline here is one :class:`CodingPipeline` (a quantizer spec fitted on the
calibration split, a packing spec, and the chroma format) registered in :data:`PIPELINES`:

* ``paper``: the seed paper's pipeline, what the package does by default: one global
  log-scale 8-bit curve, one channel per frame (temporal), 4:2:0 with flat chroma.
* ``mpeg-anchor``: CompressAI-Vision's conversion, MPEG FCM's evaluation platform
  (``compressai_vision/codecs/utils.py``, ``std_codecs.py``): one min/max pair for the
  dataset (here: the exact min/max of the calibration split), uniform 10-bit codes
  ``floor(clip((x - min) / (max - min), 0, 1) * 1023)``, all channels of an image tiled
  into ONE frame in their natural order on the anchor's grid (:func:`codec.packing.mpeg_grid`),
  monochrome (VTM ``--InputChromaFormat=400``).
* ``fctm``: FCTM v1's conversion: the same codes and grid, but min and max measured on
  each coded image and sent beside the stream as two float32 numbers (64 ``side_bits``).

Chroma ``"400"`` is applied where the codec can code monochrome (a backend with a
``chroma`` option: VTM, VVenC, x265, libaom); elsewhere (SVT-AV1, kvazaar, FFV1) frames stay
4:2:0 with flat mid-grey chroma, and :meth:`CodingPipeline.monochrome` says so.

    from codec.pipelines import make_pipeline
    p = make_pipeline("mpeg-anchor")
    q = make_quantizer(p.quantizer).fit(calib); packing = make_packing(p.packing)
    codec = make_codec(p.codec_spec("vvenc"))          # vvenc:...,chroma=400,...
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .registry import Registry

__all__ = ["CodingPipeline", "PIPELINES", "PIPELINE_NAMES", "make_pipeline", "CHROMAS"]

#: Coding pipelines by name; each entry is a factory returning a :class:`CodingPipeline`.
PIPELINES = Registry("pipeline")

#: ``"420"``: 4:2:0 with flat mid-grey chroma planes; ``"400"``: monochrome where the codec can.
CHROMAS = ("420", "400")


@dataclass(frozen=True)
class CodingPipeline:
    """A quantizer spec (fitted on the calibration split), a packing spec and a chroma format."""

    name: str
    quantizer: str
    packing: str
    chroma: str = "420"
    description: str = ""

    def __post_init__(self):
        if self.chroma not in CHROMAS:
            raise ValueError(f"pipeline {self.name!r}: chroma={self.chroma!r}; use one of {', '.join(CHROMAS)}")

    def monochrome(self, codec: Any) -> bool:
        """Whether ``codec`` (a spec or instance) codes this pipeline's frames as 4:0:0."""
        from .backends import make_codec

        return self.chroma == "400" and "chroma" in make_codec(codec).OPTIONS

    def codec_spec(self, codec: Any) -> str:
        """The canonical spec of ``codec`` set to this pipeline's chroma where it has a ``chroma`` option.

        A codec without one is returned unchanged (it codes 4:2:0 with flat chroma).
        """
        from .backends import make_codec

        c = make_codec(codec)
        if "chroma" not in c.OPTIONS:
            return c.spec()
        return make_codec({"name": c.name, **{k: v for k, v in c.options.items() if v is not None},
                           "chroma": self.chroma}).spec()

    def to_dict(self) -> dict[str, str]:
        return {"name": self.name, "quantizer": self.quantizer, "packing": self.packing, "chroma": self.chroma}


@PIPELINES.register("paper")
def paper() -> CodingPipeline:
    return CodingPipeline("paper", "log", "temporal", "420",
                          "the seed paper's: global log curve 8-bit, one channel per frame, 4:2:0 flat chroma")


@PIPELINES.register("mpeg-anchor", "compressai-vision")
def mpeg_anchor() -> CodingPipeline:
    return CodingPipeline("mpeg-anchor", "uniform:bits=10,rounding=floor", "tiled:grid=mpeg", "400",
                          "CompressAI-Vision: global min-max, uniform 10-bit (floor), natural-order tiles on the "
                          "anchor's grid, one frame per image, 4:0:0")


@PIPELINES.register("fctm")
def fctm() -> CodingPipeline:
    return CodingPipeline("fctm", "uniform:bits=10,rounding=floor,per_image=true", "tiled:grid=mpeg", "400",
                          "FCTM v1: per-image min-max (2 x float32 side information), uniform 10-bit (floor), "
                          "natural-order tiles, 4:0:0")


#: Names of the registered pipelines (a snapshot at import; ``PIPELINES.names()`` is live).
PIPELINE_NAMES: tuple[str, ...] = PIPELINES.names()


def make_pipeline(name: "str | CodingPipeline") -> CodingPipeline:
    """The pipeline registered as ``name`` (an instance is returned as is); unknown names list the valid ones."""
    if isinstance(name, CodingPipeline):
        return name
    return PIPELINES.make(name)
