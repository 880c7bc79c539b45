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

The names below are imported on first use (PEP 562), so ``codec.registry`` and
``codec.files``, which every package builds on, load without the backends, numpy or
scikit-learn.
"""

from importlib import import_module

#: public name -> submodule that defines it
_WHERE = {
    "errors": None, "CodecError": "errors", "CodecNotFoundError": "errors", "BitstreamError": "errors",
    "Bitstream": "backends", "Codec": "backends", "CODECS": "backends", "CODEC_NAMES": "backends",
    "DEFAULT_CODEC": "backends", "make_codec": "backends", "vtm_encoder_command": "backends",
    "vtm_decoder_command": "backends", "frame_types": "backends.ffmpeg_base", "ffmpeg_exe": "ffmpeg",
    "Quantizer": "quantize", "UniformQuantizer": "quantize", "LogQuantizer": "quantize_curves", "PowerQuantizer": "quantize_curves",
    "MuLawQuantizer": "quantize_curves", "QUANTIZERS": "quantize", "QUANTIZER_NAMES": "quantizers", "CURVE_NAMES": "quantizers", "make_quantizer": "quantizers",
    "quantizer_from_dict": "quantizers", "ChannelQuantizer": "normalize", "channel_stats": "normalize",
    "Packing": "packing", "TemporalPacking": "packing", "TiledPacking": "packing",
    "PACKINGS": "packing", "PACKING_NAMES": "packing", "make_packing": "packing",
}

__all__ = [
    "errors", "CodecError", "CodecNotFoundError", "BitstreamError",
    "Bitstream", "Codec", "CODECS", "CODEC_NAMES", "DEFAULT_CODEC", "make_codec", "ffmpeg_exe",
    "vtm_encoder_command", "vtm_decoder_command", "frame_types",
    "Quantizer", "UniformQuantizer", "LogQuantizer", "PowerQuantizer", "MuLawQuantizer",
    "QUANTIZERS", "QUANTIZER_NAMES", "CURVE_NAMES", "make_quantizer", "quantizer_from_dict", "ChannelQuantizer", "channel_stats",
    "Packing", "TemporalPacking", "TiledPacking", "PACKINGS", "PACKING_NAMES", "make_packing",
]


def __getattr__(name: str):
    if name not in _WHERE:
        raise AttributeError(f"module 'codec' has no attribute {name!r}")
    module = import_module(f".{_WHERE[name] or name}", __name__)
    value = module if _WHERE[name] is None else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(list(globals()) + list(_WHERE))
