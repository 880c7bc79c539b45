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
"""
from . import errors
from .backends import BACKENDS, Bitstream, Codec, vtm_decoder_command, vtm_encoder_command
from .backends.ffmpeg_base import frame_types
from .errors import BitstreamError, CodecError, CodecNotFoundError
from .ffmpeg import ffmpeg_exe
from .packing import PACKING_NAMES, Packing, TemporalPacking, TiledPacking, make_packing
from .quantize import (
    QUANTIZER_NAMES,
    LogQuantizer,
    MuLawQuantizer,
    PowerQuantizer,
    Quantizer,
    UniformQuantizer,
    make_quantizer,
    quantizer_from_dict,
)
from .registry import CODEC_NAMES, DEFAULT_CODEC, make_codec

__all__ = [
    "errors", "CodecError", "CodecNotFoundError", "BitstreamError",
    "Bitstream", "Codec", "BACKENDS", "CODEC_NAMES", "DEFAULT_CODEC", "make_codec", "ffmpeg_exe",
    "vtm_encoder_command", "vtm_decoder_command", "frame_types",
    "Quantizer", "UniformQuantizer", "LogQuantizer", "PowerQuantizer", "MuLawQuantizer",
    "QUANTIZER_NAMES", "make_quantizer", "quantizer_from_dict",
    "Packing", "TemporalPacking", "TiledPacking", "PACKING_NAMES", "make_packing",
]
