"""Packing channel codes [C, H, W] into video frames [N, Hp, Wp] and back.

Video codecs need frame sizes that are multiples of a small block size (the
codec's ``grid``), so frames are padded at the bottom/right by repeating the
last row/column (edge replication costs almost no bits, unlike a constant
border that would create an artificial edge). ``unpack`` crops the padding.

* :class:`TemporalPacking`: one channel per frame (the paper's layout); the
  channel order becomes the frame order, which is what inter prediction sees.
* :class:`TiledPacking`: channels tiled row-major into a near-square mosaic
  (FCM's layout), all channels in one frame or ``per_frame`` channels in each.
  Unused tile slots of the last mosaic are filled with the rounded mean code
  of the mosaic's channels (flat and cheap to code). ``grid="mpeg"`` takes the
  MPEG anchors' grid (:func:`mpeg_grid`, exact factors of the channel count, no
  unused tiles); ``flip`` mirrors alternate tiles (ETRI's packing) so that
  neighbouring tiles meet as mirror images along their shared border.

Each packing class joins :data:`PACKINGS` with ``@PACKINGS.register("name")``;
:func:`make_packing` builds one from a spec string (``"tiled:cols=12"``) through
that registry and :func:`codec.registry.parse_spec`.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np

from .registry import Registry, format_spec

__all__ = ["Packing", "TemporalPacking", "TiledPacking", "PACKINGS", "PACKING_NAMES", "make_packing", "pad_to_grid",
           "mpeg_grid", "square_grid", "GRID_RULES", "FLIPS"]

#: Channel packings by name; filled by ``@PACKINGS.register(...)`` below (and by any module that adds one).
PACKINGS = Registry("packing")


def _check_codes(codes: np.ndarray) -> np.ndarray:
    a = np.asarray(codes)
    if a.ndim != 3 or min(a.shape) < 1:
        raise ValueError(f"codes must be a non-empty [C, H, W] array, got shape {a.shape}")
    return a


def _check_grid(grid: int) -> int:
    if isinstance(grid, bool) or not isinstance(grid, (int, np.integer)) or grid < 1:
        raise ValueError(f"grid={grid!r}; pass a positive integer (the codec's .grid)")
    return int(grid)


def pad_to_grid(frames: np.ndarray, grid: int) -> np.ndarray:
    """Pad [N, H, W] frames at the bottom/right by edge replication to multiples of ``grid``."""
    grid = _check_grid(grid)
    n, h, w = frames.shape
    ph, pw = -h % grid, -w % grid
    if ph == 0 and pw == 0:
        return np.ascontiguousarray(frames)
    return np.pad(frames, ((0, 0), (0, ph), (0, pw)), mode="edge")


class Packing:
    """Base class: ``pack(codes, grid) -> frames`` and ``unpack(frames, shape) -> codes``."""

    name = "base"

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {}

    def spec(self) -> str:
        """Canonical ``"name:key=value"`` string (inverse of :func:`make_packing`)."""
        return format_spec(self.name, self.get_params())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_params().items())
        return f"{type(self).__name__}({args})"

    def frame_shape(self, shape: tuple[int, int, int], grid: int) -> tuple[int, int, int]:
        """(N, Hp, Wp) of the frames ``pack`` makes for codes of ``shape``."""
        raise NotImplementedError

    def pack(self, codes: np.ndarray, grid: int) -> np.ndarray:
        raise NotImplementedError

    def unpack(self, frames: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        raise NotImplementedError

    def _check_frames(self, frames: np.ndarray, shape) -> tuple[np.ndarray, tuple[int, int, int]]:
        f = np.asarray(frames)
        try:
            c, h, w = (int(v) for v in shape)
        except (TypeError, ValueError):
            raise ValueError(f"shape must be (C, H, W), got {shape!r}") from None
        if min(c, h, w) < 1:
            raise ValueError(f"shape must be positive (C, H, W), got {shape!r}")
        exp_n, exp_h, exp_w = self.frame_shape((c, h, w), 1)
        if f.ndim != 3 or f.shape[0] != exp_n or f.shape[1] < exp_h or f.shape[2] < exp_w:
            raise ValueError(
                f"{self.name} packing of codes {(c, h, w)} needs [{exp_n}, >={exp_h}, >={exp_w}] frames, "
                f"got {f.shape}; unpack with the shape and packing used for pack"
            )
        return f, (c, h, w)


@PACKINGS.register("temporal")
class TemporalPacking(Packing):
    """One channel per frame: [C, H, W] -> [C, Hp, Wp]."""

    name = "temporal"

    def frame_shape(self, shape, grid):
        c, h, w = shape
        grid = _check_grid(grid)
        return c, -(-h // grid) * grid, -(-w // grid) * grid

    def pack(self, codes: np.ndarray, grid: int) -> np.ndarray:
        return pad_to_grid(_check_codes(codes), grid)

    def unpack(self, frames: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        f, (c, h, w) = self._check_frames(frames, shape)
        return np.ascontiguousarray(f[:, :h, :w])


#: How :class:`TiledPacking` chooses its grid when ``cols`` is not given
GRID_RULES = ("square", "mpeg")
#: Which tiles :class:`TiledPacking` mirrors: odd columns left-right (``h``), odd rows upside down (``v``), both
FLIPS = ("none", "h", "v", "hv")


def square_grid(k: int, h: int, w: int) -> tuple[int, int]:
    """(rows, cols) of a mosaic of ``k`` tiles of ``h`` x ``w`` that is near-square in pixels: ``cols =
    ceil(sqrt(k * h / w))`` (at most ``k``), rows as many as needed (the last row may have unused tiles)."""
    cols = min(max(1, math.ceil(math.sqrt(k * h / w))), k)
    return -(-k // cols), cols


def mpeg_grid(k: int, h: int = 1, w: int = 1) -> tuple[int, int]:
    """(rows, cols) of the MPEG anchors' mosaic of ``k`` tiles of ``h`` x ``w`` (CompressAI-Vision's and FCTM's
    ``compute_frame_resolution``).

    ``short`` is the largest divisor of ``k`` not above ``floor(sqrt(k))`` and ``long = k / short``, so every
    tile slot holds a channel (a prime ``k`` gives one row or column). Tall tiles (``h > w``) get ``short``
    rows and ``long`` columns; square and wide tiles (``h <= w``) ``long`` rows and ``short`` columns. The grid
    follows from ``k`` alone for ``h <= w``; only its orientation depends on the tile shape.
    """
    k = int(k)
    if k < 1:
        raise ValueError(f"mpeg grid of {k} tiles; need at least one channel")
    short = math.isqrt(k)
    while k % short:
        short -= 1
    long = k // short
    return (short, long) if h > w else (long, short)


@PACKINGS.register("tiled")
class TiledPacking(Packing):
    """Channels tiled row-major into mosaics.

    Args:
        cols: tiles per mosaic row; default from ``grid``.
        per_frame: channels per mosaic frame; default all channels in one frame.
        grid: the rule for the grid when ``cols`` is not given: ``square`` (default; near-square in
            pixels, :func:`square_grid`) or ``mpeg`` (the MPEG anchors' exact factorisation, :func:`mpeg_grid`).
        flip: mirror alternate tiles, ETRI's layout: ``h`` flips the tiles of odd columns left-right,
            ``v`` those of odd rows upside down, ``hv`` both (default ``none``); unpack undoes it.
    """

    name = "tiled"

    def __init__(self, cols: int | None = None, per_frame: int | None = None, grid: str | None = None,
                 flip: str | None = None):
        for key, v in (("cols", cols), ("per_frame", per_frame)):
            if v is not None and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1):
                raise ValueError(f"tiled packing: {key}={v!r}; use a positive integer or None")
        if grid is not None and grid not in GRID_RULES:
            raise ValueError(f"tiled packing: grid={grid!r}; use one of {', '.join(GRID_RULES)}")
        if grid is not None and cols is not None:
            raise ValueError("tiled packing: give cols or grid, not both (cols fixes the grid)")
        if flip is not None and flip not in FLIPS:
            raise ValueError(f"tiled packing: flip={flip!r}; use one of {', '.join(FLIPS)}")
        self.cols = cols
        self.per_frame = per_frame
        self.grid = grid
        self.flip = flip

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        # grid and flip at their defaults are left out, so existing specs ("tiled:cols=12") stay as they were
        out = {"cols": self.cols, "per_frame": self.per_frame}
        if self.grid not in (None, "square"):
            out["grid"] = self.grid
        if self.flip not in (None, "none"):
            out["flip"] = self.flip
        return out

    def layout(self, shape: tuple[int, int, int]) -> tuple[int, int, int]:
        """(frames, rows, cols) of the mosaic for codes of ``shape``."""
        c, h, w = shape
        k = min(self.per_frame or c, c)
        if self.cols is not None:
            cols = min(self.cols, k)
            rows = -(-k // cols)
        elif self.grid == "mpeg":
            rows, cols = mpeg_grid(k, h, w)
        else:
            rows, cols = square_grid(k, h, w)
        return -(-c // k), rows, cols

    def frame_shape(self, shape, grid):
        c, h, w = shape
        grid = _check_grid(grid)
        n, rows, cols = self.layout((c, h, w))
        return n, -(-rows * h // grid) * grid, -(-cols * w // grid) * grid

    def _flip(self, tiles: np.ndarray) -> np.ndarray:
        """Mirror alternate tiles of ``tiles`` [n, rows, cols, h, w] (an involution: pack and unpack both call it)."""
        flip = self.flip or "none"
        if "h" in flip:
            tiles[:, :, 1::2] = tiles[:, :, 1::2, :, ::-1]
        if "v" in flip:
            tiles[:, 1::2] = tiles[:, 1::2, :, ::-1, :]
        return tiles

    def pack(self, codes: np.ndarray, grid: int) -> np.ndarray:
        a = _check_codes(codes)
        c, h, w = a.shape
        n, rows, cols = self.layout(a.shape)
        per = rows * cols
        k = min(self.per_frame or c, c)
        tiles = np.empty((n, per, h, w), dtype=a.dtype)
        for f in range(n):
            chans = a[f * k:(f + 1) * k]
            tiles[f, :len(chans)] = chans
            if len(chans) < per:
                tiles[f, len(chans):] = np.rint(chans.mean()).astype(a.dtype)
        tiles = self._flip(tiles.reshape(n, rows, cols, h, w))
        frames = tiles.transpose(0, 1, 3, 2, 4).reshape(n, rows * h, cols * w)
        return pad_to_grid(frames, grid)

    def unpack(self, frames: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
        f, (c, h, w) = self._check_frames(frames, shape)
        n, rows, cols = self.layout((c, h, w))
        k = min(self.per_frame or c, c)
        mosaic = f[:, :rows * h, :cols * w]
        tiles = self._flip(mosaic.reshape(n, rows, h, cols, w).transpose(0, 1, 3, 2, 4).copy())
        tiles = tiles.reshape(n, rows * cols, h, w)
        out = np.concatenate([tiles[i, :min(k, c - i * k)] for i in range(n)])
        return np.ascontiguousarray(out)


#: Names of the registered packings (a snapshot at import; ``PACKINGS.names()`` is live).
PACKING_NAMES: tuple[str, ...] = PACKINGS.names()


def make_packing(spec: "str | Packing" = "temporal", **kwargs: Any) -> Packing:
    """Packing from ``"temporal"``, ``"tiled"``, ``"tiled:cols=12,per_frame=16"`` (or an instance).

    Keyword options override the string's; unknown names or options raise ValueError naming the valid ones.
    """
    if isinstance(spec, Packing):
        return spec
    return PACKINGS.make(spec, **kwargs)
