"""Codec backends: one small module per codec family, all behind :class:`Codec`, and ``make_codec``.

Each backend registers itself in :data:`CODECS` (``@CODECS.register("vvenc")`` in its
module); the registry imports every module of this package on first lookup, so a new
backend is one new file here and no list is edited. The imports below only re-export
the classes; their order (vvenc first) is the order :data:`CODEC_NAMES` and error
messages list the names in.

Spec strings are ``"name"`` or ``"name:key=value,key=value"``, e.g.
``"vvenc:preset=faster,intra_period=32"`` (parsed by :func:`codec.registry.parse_spec`);
dicts are ``{"name": ..., key: value}``. Option values may themselves contain ``=``
and ``:`` (``vvenc_params=MCTF=1:BIM=1``) but not ``,``. :meth:`Codec.spec` writes the
canonical string back, so ``make_codec(c.spec()).spec() == c.spec()``.
"""
from __future__ import annotations

from typing import Any

from ..registry import parse_spec
from .base import CODECS, Bitstream, Codec, Option
from .vvenc import VVenCCodec  # noqa: I001  (vvenc first: registration order is listing order)
from .x265 import X265Codec
from .av1 import AomCodec, SvtAv1Codec
from .kvazaar import KvazaarCodec
from .ffv1 import FFV1Codec
from .vtm import VTMCodec, vtm_decoder_command, vtm_encoder_command
from .ffmpeg_base import FFmpegCodec

__all__ = [
    "AomCodec", "Bitstream", "Codec", "FFV1Codec", "FFmpegCodec", "KvazaarCodec", "Option", "SvtAv1Codec",
    "VTMCodec", "VVenCCodec", "X265Codec", "vtm_decoder_command", "vtm_encoder_command",
    "CODECS", "CODEC_NAMES", "DEFAULT_CODEC", "make_codec",
]

#: Names of the registered backends (a read-only snapshot of ``CODECS.names()`` at import).
CODEC_NAMES: tuple[str, ...] = CODECS.names()
DEFAULT_CODEC = "vvenc"


def make_codec(spec: "str | dict[str, Any] | Codec | None" = None) -> Codec:
    """Codec from a spec string, a dict with ``name`` or an instance (returned as is).

    ``None`` gives the default codec (VVenC, random access, intra period 32).
    Unknown names or options raise ValueError listing the valid ones.
    """
    if spec is None:
        spec = DEFAULT_CODEC
    if isinstance(spec, Codec):
        return spec
    if isinstance(spec, dict):
        opts = dict(spec)
        name = opts.pop("name", None)
        if not isinstance(name, str):
            raise ValueError(f"codec dict {spec!r} needs a 'name' (one of {', '.join(CODECS.names())})")
    elif isinstance(spec, str):
        name, opts = parse_spec(spec, "codec")
    else:
        raise TypeError(f"codec spec must be a str, dict or Codec, got {type(spec).__name__}")
    # Codec.__init__ checks the options against the backend's OPTIONS (and names the valid ones).
    return CODECS.get(name)(**opts)
