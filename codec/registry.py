"""``make_codec``: codec instances from registry strings or dicts.

Spec strings are ``"name"`` or ``"name:key=value,key=value"``, e.g.
``"vvenc:preset=faster,intra_period=32"``; dicts are ``{"name": ..., key: value}``.
Option values may themselves contain ``=`` and ``:`` (``vvenc_params=MCTF=1:BIM=1``)
but not ``,``. :meth:`Codec.spec` writes the canonical string back, so
``make_codec(c.spec()).spec() == c.spec()``.
"""
from __future__ import annotations

from typing import Any

from .backends import BACKENDS
from .backends.base import Codec

__all__ = ["CODEC_NAMES", "DEFAULT_CODEC", "make_codec", "parse_codec_spec"]

CODEC_NAMES: tuple[str, ...] = tuple(BACKENDS)
DEFAULT_CODEC = "vvenc"


def parse_codec_spec(spec: str) -> tuple[str, dict[str, str]]:
    """``"name:k=v,k=v"`` -> ``(name, {k: v})`` with string values (typed later by the codec)."""
    if not isinstance(spec, str) or not spec.strip():
        raise ValueError(f"codec spec {spec!r} is empty; use e.g. 'vvenc' or 'vvenc:preset=faster'")
    name, _, rest = spec.strip().partition(":")
    opts: dict[str, str] = {}
    for item in filter(None, (s.strip() for s in rest.split(","))):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise ValueError(f"bad option {item!r} in codec spec {spec!r}; write name:key=value,key=value")
        if key.strip() in opts:
            raise ValueError(f"option {key.strip()!r} given twice in codec spec {spec!r}")
        opts[key.strip()] = value.strip()
    return name.strip().lower(), opts


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
            raise ValueError(f"codec dict {spec!r} needs a 'name' (one of {', '.join(CODEC_NAMES)})")
        name = name.strip().lower()
    elif isinstance(spec, str):
        name, opts = parse_codec_spec(spec)
    else:
        raise TypeError(f"codec spec must be a str, dict or Codec, got {type(spec).__name__}")
    if name not in BACKENDS:
        raise ValueError(f"unknown codec {name!r}; valid codecs: {', '.join(CODEC_NAMES)}")
    return BACKENDS[name](**opts)
