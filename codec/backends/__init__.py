"""Codec backends: one small module per codec family, all behind :class:`Codec`."""
from .av1 import AomCodec, SvtAv1Codec
from .base import Bitstream, Codec, Option
from .ffmpeg_base import FFmpegCodec
from .ffv1 import FFV1Codec
from .kvazaar import KvazaarCodec
from .vtm import VTMCodec, vtm_decoder_command, vtm_encoder_command
from .vvenc import VVenCCodec
from .x265 import X265Codec

BACKENDS = {cls.name: cls for cls in (VVenCCodec, X265Codec, SvtAv1Codec, AomCodec, KvazaarCodec, FFV1Codec, VTMCodec)}

__all__ = [
    "AomCodec", "Bitstream", "Codec", "FFV1Codec", "FFmpegCodec", "KvazaarCodec", "Option", "SvtAv1Codec",
    "VTMCodec", "VVenCCodec", "X265Codec", "BACKENDS", "vtm_decoder_command", "vtm_encoder_command",
]
