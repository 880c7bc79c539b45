"""The codec interface: :class:`Codec`, :class:`Bitstream` and typed options.

A backend declares its options in ``OPTIONS`` (name -> :class:`Option`); the
base class validates and converts them (so values typed by
:func:`codec.registry.parse_spec` from a spec string and Python keyword values
behave the same) and builds the canonical :meth:`Codec.spec` string that every
result row records (it is part of stored cell keys, so it must not change).

Every backend class joins :data:`CODECS` with ``@CODECS.register("name")``
where it is defined; the registry imports every module of
:mod:`codec.backends` on first lookup, so a new backend is one new file there.
"""
from __future__ import annotations

import abc
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ..errors import BitstreamError
from ..registry import Registry

__all__ = ["Bitstream", "CODECS", "Codec", "Option", "format_value"]

#: Codec backends by name; filled by ``@CODECS.register(...)`` in each module of :mod:`codec.backends`.
CODECS = Registry("codec", package="codec.backends")


@dataclass
class Bitstream:
    """An encoded stream of luma frames.

    ``data`` is exactly what would be transmitted/stored (see each backend for
    what it contains); ``bits`` counts it. ``codec`` is the encoder's
    :meth:`Codec.spec`; ``log`` the encoder's own log.
    """

    data: bytes
    n_frames: int
    height: int
    width: int
    bit_depth: int
    codec: str
    log: str = field(default="", repr=False)

    @property
    def bits(self) -> int:
        """Size of ``data`` in bits."""
        return 8 * len(self.data)

    @property
    def codec_name(self) -> str:
        """Registry name of the codec that made the stream (``codec`` up to the first ':')."""
        return self.codec.partition(":")[0]


_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def format_value(value: Any) -> str:
    """Option value as written in a spec string."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


@dataclass(frozen=True)
class Option:
    """A typed codec option.

    ``kind`` is int, float, bool or str; ``choices`` limits the values;
    ``check`` returns an error text (or None) for further constraints.
    ``default=None`` means "not set" (the option is left out of the spec);
    a value of None means the default. Values may arrive as text or already
    typed (spec strings are typed by :func:`codec.registry.coerce_value`):
    a ``str`` option writes them back as the spec would (``true``/``false``
    for booleans), so ``make_codec(c.spec()).spec() == c.spec()``.
    """

    default: Any
    kind: type
    help: str
    choices: tuple | None = None
    check: Callable[[Any], str | None] | None = None

    def convert(self, codec: str, key: str, value: Any) -> Any:
        if value is None:
            return None
        kind = self.kind
        try:
            if kind is bool:
                if isinstance(value, str):
                    low = value.strip().lower()
                    if low not in _TRUE | _FALSE:
                        raise ValueError
                    value = low in _TRUE
                elif isinstance(value, (bool, np.bool_, int)) and value in (0, 1):
                    value = bool(value)
                else:
                    raise ValueError
            elif kind is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                value = int(str(value).strip()) if isinstance(value, str) else int(value)
            elif kind is float:
                if isinstance(value, bool):
                    raise ValueError
                value = float(value)
            else:
                value = format_value(value)
        except (TypeError, ValueError):
            raise ValueError(f"codec {codec!r}: option {key}={value!r} is not a valid {kind.__name__}") from None
        if kind is str and "," in value:
            raise ValueError(f"codec {codec!r}: option {key}={value!r} must not contain ','; use ':' between entries")
        if self.choices is not None and value not in self.choices:
            raise ValueError(f"codec {codec!r}: {key}={format_value(value)!r} is not one of "
                             f"{', '.join(map(format_value, self.choices))}")
        if self.check is not None:
            problem = self.check(value)
            if problem:
                raise ValueError(f"codec {codec!r}: {key}={format_value(value)}: {problem}")
        return value


def int_range(lo: int, hi: int) -> Callable[[int], str | None]:
    """Option check: integer within [lo, hi]."""
    return lambda v: None if lo <= v <= hi else f"must be in [{lo}, {hi}]"


class Codec(abc.ABC):
    """A video codec for luma frames.

    Subclasses set ``name``, ``grid`` (frame height and width must be
    multiples of it), ``qp_range`` (inclusive), ``bit_depths`` and ``OPTIONS``,
    and implement :meth:`_encode` / :meth:`_decode`, and join the registry with
    ``@CODECS.register(name)`` (the same ``name``). The base class validates
    inputs and outputs so every backend fails the same way.
    """

    name: ClassVar[str] = "codec"
    grid: int = 8
    qp_range: tuple[int, int] = (0, 63)
    bit_depths: tuple[int, ...] = (8, 10)
    OPTIONS: ClassVar[dict[str, Option]] = {}

    def __init__(self, **options: Any):
        unknown = sorted(set(options) - set(self.OPTIONS))
        if unknown:
            raise ValueError(
                f"codec {self.name!r} has no option {unknown[0]!r}; valid options: "
                f"{', '.join(sorted(self.OPTIONS)) or 'none'}"
            )
        self.options: dict[str, Any] = {}
        for key, opt in self.OPTIONS.items():
            value = options.get(key)
            self.options[key] = opt.convert(self.name, key, opt.default if value is None else value)
        self._check_options()

    def _check_options(self) -> None:
        """Cross-option constraints (override)."""

    # ------------------------------------------------------------ description
    def get_params(self, deep: bool = True) -> dict[str, Any]:
        """Current options (all of them, defaults included)."""
        return dict(self.options)

    def spec(self) -> str:
        """Canonical registry string: ``name:key=value,...`` with every option (None/empty left out), keys sorted.

        ``make_codec(c.spec()).spec() == c.spec()``.
        """
        items = [f"{k}={format_value(v)}" for k, v in sorted(self.options.items()) if v is not None and v != ""]
        return f"{self.name}:{','.join(items)}" if items else self.name

    def __repr__(self) -> str:
        return f"make_codec({self.spec()!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Codec) and other.spec() == self.spec()

    def __hash__(self) -> int:
        return hash(self.spec())

    def check_available(self) -> None:
        """Raise CodecNotFoundError when the tools this codec needs are missing (override)."""

    def smoke_test(self) -> Bitstream:
        """Encode and decode two tiny flat frames; raises the codec's own clear error if that fails.

        Studies call it before any model work, so a missing or broken encoder is reported in
        seconds. Returns the bitstream: its ``log`` is the encoder's own and names its version
        (what :mod:`eval.environment` records).
        """
        side = max(32, self.grid)  # libvvenc rejects 16x16 pictures (its per-picture byte limit is below the parameter sets)
        frames = np.full((2, side, side), 100, dtype=np.uint8)
        bitstream = self.encode(frames, 37, bit_depth=8)
        self.decode(bitstream)
        return bitstream

    # ------------------------------------------------------------ validation
    def _validate_frames(self, frames: np.ndarray, qp: int, bit_depth: int) -> np.ndarray:
        a = np.asarray(frames)
        if bit_depth not in self.bit_depths or isinstance(bit_depth, bool):
            raise ValueError(f"codec {self.name!r}: bit_depth={bit_depth!r} is not supported; "
                             f"use one of {', '.join(map(str, self.bit_depths))}")
        if a.dtype not in (np.uint8, np.uint16):
            raise ValueError(f"frames have dtype {a.dtype}; pass uint8 or uint16 codes (quantize the features first)")
        if a.ndim != 3 or min(a.shape) < 1:
            raise ValueError(f"frames must be a non-empty [N, H, W] array, got shape {a.shape}")
        n, h, w = a.shape
        if h % self.grid or w % self.grid:
            raise ValueError(f"codec {self.name!r} needs frame sizes that are multiples of {self.grid}, got {h}x{w}; "
                             f"pack with codec.packing (pack(codes, grid=codec.grid))")
        vmax = int(a.max())
        if vmax >= 1 << bit_depth:
            raise ValueError(f"frames hold value {vmax} which does not fit in bit_depth={bit_depth}; "
                             f"pass bit_depth matching the quantizer bits")
        if isinstance(qp, bool) or not isinstance(qp, (int, np.integer)):
            raise ValueError(f"qp={qp!r} must be an integer")
        lo, hi = self.qp_range
        if not lo <= int(qp) <= hi:
            raise ValueError(f"codec {self.name!r}: qp={qp} is outside its range [{lo}, {hi}]")
        return a

    def _check_bitstream(self, bitstream: Bitstream) -> None:
        if not isinstance(bitstream, Bitstream):
            raise TypeError(f"decode needs a Bitstream, got {type(bitstream).__name__}")
        if bitstream.codec_name != self.name:
            raise ValueError(f"bitstream was made by {bitstream.codec_name!r}; decode it with "
                             f"make_codec({bitstream.codec!r}), not {self.name!r}")
        if bitstream.n_frames < 1 or bitstream.height < 1 or bitstream.width < 1:
            raise ValueError(f"bitstream header is invalid ({bitstream.n_frames} frames of "
                             f"{bitstream.height}x{bitstream.width})")

    # ------------------------------------------------------------ public API
    def encode(self, frames: np.ndarray, qp: int, bit_depth: int = 8) -> Bitstream:
        """Encode [N, H, W] uint8/uint16 luma frames at ``qp`` into a :class:`Bitstream`."""
        a = self._validate_frames(frames, qp, bit_depth)
        self.check_available()
        return self._encode(a, int(qp), int(bit_depth))

    def decode(self, bitstream: Bitstream) -> np.ndarray:
        """Decode to [N, H, W] frames: uint8 for 8-bit streams, uint16 for 10-bit.

        Raises BitstreamError when the stream is corrupt or yields another
        number of frames than were encoded.
        """
        self._check_bitstream(bitstream)
        self.check_available()
        out = self._decode(bitstream)
        expected = (bitstream.n_frames, bitstream.height, bitstream.width)
        if out.shape != expected:  # backends check sizes too; this is the last guard
            raise BitstreamError(f"{self.name} decode returned {out.shape}, expected {expected}")
        return out

    @abc.abstractmethod
    def _encode(self, frames: np.ndarray, qp: int, bit_depth: int) -> Bitstream: ...

    @abc.abstractmethod
    def _decode(self, bitstream: Bitstream) -> np.ndarray: ...
