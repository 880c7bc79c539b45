"""Coding channel feature maps as video: quantizers, frame packing, codec backends.

Typical use::

    from codec import make_codec, make_quantizer, TemporalPacking
    q = make_quantizer("log:bits=8").fit(calibration_features)
    codec = make_codec("vvenc")                       # VVenC faster, RA, intra period 32
    packing = TemporalPacking()
    frames = packing.pack(q.quantize(x), codec.grid)  # [C, Hp, Wp]
    bs = codec.encode(frames, qp=32, bit_depth=q.bits)
    x_hat = q.dequantize(packing.unpack(codec.decode(bs), x.shape))
    bits = bs.bits

Every component kind has a :class:`codec.registry.Registry` (``CODECS``,
``QUANTIZERS``, ``PACKINGS``) that its classes join with a decorator where they
are defined, and ``make_*`` builds one from a ``"name:key=value,..."`` spec.
"""
from . import errors
from .backends import (
    CODEC_NAMES,
    CODECS,
    DEFAULT_CODEC,
    Bitstream,
    Codec,
    make_codec,
    vtm_decoder_command,
    vtm_encoder_command,
)
from .backends.ffmpeg_base import frame_types
from .errors import BitstreamError, CodecError, CodecNotFoundError
from .ffmpeg import ffmpeg_exe
from .packing import PACKING_NAMES, PACKINGS, Packing, TemporalPacking, TiledPacking, make_packing
from .quantize import (
    QUANTIZER_NAMES,
    QUANTIZERS,
    LogQuantizer,
    MuLawQuantizer,
    PowerQuantizer,
    Quantizer,
    UniformQuantizer,
    make_quantizer,
    quantizer_from_dict,
)

__all__ = [
    "errors", "CodecError", "CodecNotFoundError", "BitstreamError",
    "Bitstream", "Codec", "CODECS", "CODEC_NAMES", "DEFAULT_CODEC", "make_codec", "ffmpeg_exe",
    "vtm_encoder_command", "vtm_decoder_command", "frame_types",
    "Quantizer", "UniformQuantizer", "LogQuantizer", "PowerQuantizer", "MuLawQuantizer",
    "QUANTIZERS", "QUANTIZER_NAMES", "make_quantizer", "quantizer_from_dict",
    "Packing", "TemporalPacking", "TiledPacking", "PACKINGS", "PACKING_NAMES", "make_packing",
]
