"""Channel permutations: validation, application, and files with provenance.

A permutation ``order`` is an int64 array of length C where ``order[k]`` is the
original channel placed at position k. ``x[..., order, :, :]`` reorders the
channels (axis -3) and ``np.argsort(order)`` undoes it.

Orders are saved as JSON (``{"format": "fcm-channel-order", "version": 1,
"n_channels": C, "order": [...], "provenance": {...}}``) so that a learned order
carries how it was made: model, layer, metric, normalization, solver, tour cost,
calibration set digest and package version. :meth:`Permutation.load` also reads a
bare JSON list or a text file of integers (a hand-made order) and validates every
file: a wrong order silently scrambles features, so every problem is an error that
says what is wrong and where.
"""

from __future__ import annotations

import hashlib
import json
import numbers
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from codec.files import atomic_write_text, dumps

FORMAT = "fcm-channel-order"
FORMAT_VERSION = 1


class PermutationError(ValueError):
    """A channel order is not a bijection of 0..C-1 of the expected length, or its file is unreadable."""


def _span(n: int) -> str:
    return f"0..{n - 1}" if n > 0 else "(none)"


def _list_head(values: np.ndarray, k: int = 5) -> str:
    head = ", ".join(str(int(v)) for v in values[:k])
    return head + (f", ... ({values.size} in all)" if values.size > k else "")


def validate_order(order: Any, n_channels: int | None = None, source: str = "order") -> np.ndarray:
    """Check that ``order`` is a bijection of ``0..C-1`` and return it as an int64 array.

    ``n_channels`` (if given) is the expected length. ``source`` names the order in
    messages (e.g. ``"order file perm.json"``). Raises :class:`PermutationError`
    naming the first problem: non-integers, wrong shape or length, out-of-range
    indices, duplicates (with their positions) or missing indices.
    """
    if isinstance(order, (str, bytes)):
        raise PermutationError(f"{source}: expected a sequence of channel indices, got a string; pass a list or array of integers")
    try:
        arr = np.asarray(order)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise PermutationError(f"{source}: cannot read it as a flat list of channel indices ({exc})") from None
    if arr.ndim != 1:
        raise PermutationError(
            f"{source}: expected a flat list of channel indices, got an array of shape {arr.shape}"
        )
    n = arr.shape[0]
    if arr.dtype == bool or not (np.issubdtype(arr.dtype, np.integer) or np.issubdtype(arr.dtype, np.floating)
                                 or arr.dtype == object):
        raise PermutationError(f"{source}: channel indices must be integers, got dtype {arr.dtype}")
    if arr.dtype == object or np.issubdtype(arr.dtype, np.floating):
        for pos, v in enumerate(arr.tolist()):
            ok = isinstance(v, numbers.Integral) and not isinstance(v, bool)
            if not ok and isinstance(v, float) and np.isfinite(v) and float(v).is_integer():
                ok = np.issubdtype(arr.dtype, np.floating)  # 3.0 read from a float array is accepted
            if not ok:
                raise PermutationError(
                    f"{source}: position {pos} holds {v!r}, which is not an integer channel index; "
                    f"use whole numbers {_span(n)}"
                )
    arr = arr.astype(np.int64)
    if n_channels is not None and n != int(n_channels):
        c = int(n_channels)
        inside = arr[(arr >= 0) & (arr < c)]
        missing = np.setdiff1d(np.arange(c), inside)
        hint = f" (missing: {_list_head(missing)})" if 0 < missing.size else ""
        raise PermutationError(
            f"{source}: has {n} entries but the features have {c} channels{hint}; "
            f"an order must list every channel {_span(c)} exactly once"
        )
    if n == 0:
        raise PermutationError(f"{source}: is empty; an order must list every channel exactly once")
    bad = np.flatnonzero((arr < 0) | (arr >= n))
    if bad.size and n_channels is None and np.all(arr >= 0) and np.unique(arr).size == n:
        missing = np.setdiff1d(np.arange(n), arr)
        raise PermutationError(
            f"{source}: {'index' if missing.size == 1 else 'indices'} {_list_head(missing)} missing (it lists {n} channels but mentions channel "
            f"{int(arr.max())}); each channel {_span(n)} must appear exactly once"
        )
    if bad.size:
        pos = int(bad[0])
        raise PermutationError(
            f"{source}: index {int(arr[pos])} at position {pos} is out of range; "
            f"channel indices must lie in {_span(n)}"
        )
    counts = np.bincount(arr, minlength=n)
    if np.any(counts > 1):
        dup = int(np.flatnonzero(counts > 1)[0])
        where = np.flatnonzero(arr == dup)
        pos_text = " and ".join(str(int(p)) for p in where[:2]) + (" ..." if where.size > 2 else "")
        missing = np.flatnonzero(counts == 0)
        miss_text = f" and {missing.size} missing (first: {int(missing[0])})" if missing.size else ""
        raise PermutationError(
            f"{source}: index {dup} appears {where.size} times (positions {pos_text}){miss_text}; "
            f"each channel {_span(n)} must appear exactly once"
        )
    # no duplicates and all in range with length n => nothing missing; kept for clarity
    return arr


_TEXT_TOKEN = re.compile(r"[\s,;]+")


def _parse_text(text: str, source: str) -> list[int]:
    lines = [ln.split("#", 1)[0] for ln in text.splitlines()]
    tokens = [t for t in _TEXT_TOKEN.split(" ".join(lines).strip().strip("[]")) if t]
    values = []
    for pos, tok in enumerate(tokens):
        try:
            values.append(int(tok))
        except ValueError:
            raise PermutationError(
                f"{source}: entry {pos} is {tok!r}, not an integer; the file must be JSON written by this package, "
                "a JSON list, or channel indices separated by spaces, commas or newlines"
            ) from None
    return values


@dataclass
class Permutation:
    """A validated channel order plus the provenance of how it was made.

    ``order[k]`` is the original channel placed at position k. ``apply`` permutes
    the channel axis (-3) of numpy arrays or torch tensors; ``invert`` restores it.
    """

    order: np.ndarray
    provenance: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.order = validate_order(self.order)
        self.order.setflags(write=False)
        self.provenance = dict(self.provenance or {})

    @classmethod
    def identity(cls, n: int, **provenance: Any) -> "Permutation":
        """The order 0..n-1 (the anchor every learned order is compared against)."""
        if int(n) < 1:
            raise PermutationError(f"identity order needs at least 1 channel, got n={n}")
        return cls(np.arange(int(n), dtype=np.int64), {"orderer": "identity", **provenance})

    @property
    def n_channels(self) -> int:
        return int(self.order.shape[0])

    def inverse(self) -> np.ndarray:
        """``inv`` with ``permuted[..., inv, :, :] == x``."""
        return np.argsort(self.order).astype(np.int64)

    def _check(self, x: Any) -> None:
        shape = tuple(x.shape)
        if len(shape) < 3 or shape[-3] != self.n_channels:
            raise PermutationError(
                f"features of shape {shape} do not match a {self.n_channels}-channel order; "
                "expected [..., C, H, W] with C on axis -3: use an order learned for this model and layer"
            )

    def _index(self, x: Any, idx: np.ndarray) -> Any:
        self._check(x)
        if isinstance(x, np.ndarray):
            return np.take(x, idx, axis=-3)
        import torch  # only reached for tensors

        if isinstance(x, torch.Tensor):
            return torch.index_select(x, -3, torch.as_tensor(idx.copy(), device=x.device))
        return np.take(np.asarray(x), idx, axis=-3)

    def apply(self, x: Any) -> Any:
        """Reorder the channels: ``x[..., order, :, :]``."""
        return self._index(x, self.order)

    def invert(self, x: Any) -> Any:
        """Undo :meth:`apply`."""
        return self._index(x, self.inverse())

    def digest(self) -> str:
        """Short sha256 of the order (12 hex digits): identifies an order in result rows."""
        return hashlib.sha256(self.order.astype("<i8").tobytes()).hexdigest()[:12]

    def to_dict(self) -> dict:
        """The fields of the saved JSON (provenance as given; :meth:`save` writes numpy values and paths as JSON)."""
        return {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "n_channels": self.n_channels,
            "digest": self.digest(),
            "order": self.order.tolist(),
            "provenance": dict(self.provenance),
        }

    def save(self, path: str | os.PathLike) -> Path:
        """Write the order and its provenance as JSON atomically (temp file + rename)."""
        path = Path(path)
        d = self.to_dict()
        order = d["order"]
        d["order"] = "@ORDER@"  # keep the order on one line, the rest readable
        text = dumps(d, indent=1).replace('"@ORDER@"', json.dumps(order))
        atomic_write_text(path, text + "\n")
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, n_channels: int | None = None) -> "Permutation":
        """Read an order file: this package's JSON, a bare JSON list, or whitespace/comma separated integers.

        The order is validated (bijection of ``0..C-1``, length ``n_channels`` if given);
        every problem raises :class:`PermutationError` naming the file.
        """
        path = Path(path)
        source = f"order file {path}"
        if not path.exists():
            raise PermutationError(f"{source} does not exist; check the path")
        if path.is_dir():
            raise PermutationError(f"{source} is a directory; give the path of an order file")
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise PermutationError(f"{source} cannot be read ({exc.strerror or exc})") from None
        try:
            text = raw.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise PermutationError(
                f"{source} is not a text file (not UTF-8); save it as UTF-8 JSON or as channel indices in plain text"
            ) from None
        if not text.strip():
            raise PermutationError(f"{source} is empty; it must list every channel index exactly once")
        provenance: dict = {}
        stripped = text.lstrip()
        if stripped[:1] in "[{":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                raise PermutationError(
                    f"{source} is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}); fix the JSON, "
                    "or write the channel indices as plain text separated by spaces"
                ) from None
            if isinstance(data, dict):
                if data.get("format", FORMAT) != FORMAT:
                    raise PermutationError(
                        f"{source}: JSON format {data.get('format')!r} is not {FORMAT!r}; give an order file written "
                        "by this package or a plain JSON list of channel indices"
                    )
                if "order" not in data:
                    raise PermutationError(f"{source}: JSON object has no 'order' list; add \"order\": [channel indices]")
                order = data["order"]
                provenance = data.get("provenance") or {}
                if not isinstance(provenance, dict):
                    raise PermutationError(f"{source}: 'provenance' must be a JSON object; fix it or leave it out")
                declared = data.get("n_channels")
                if declared is not None and isinstance(order, list) and declared != len(order):
                    raise PermutationError(
                        f"{source}: declares n_channels={declared} but its order has {len(order)} entries; "
                        "fix whichever is wrong so they agree"
                    )
            else:
                order = data
            if not isinstance(order, list):
                raise PermutationError(f"{source}: 'order' must be a JSON list of channel indices, e.g. [2, 0, 1]")
            if any(isinstance(v, (list, dict)) for v in order):
                raise PermutationError(f"{source}: expected a flat list of channel indices, found a nested list; "
                                  "write one flat list, e.g. [2, 0, 1]")
            for pos, v in enumerate(order):
                if not isinstance(v, int) or isinstance(v, bool):
                    raise PermutationError(
                        f"{source}: position {pos} holds {v!r}, which is not an integer channel index; "
                        f"use whole numbers {_span(len(order))}"
                    )
        else:
            order = _parse_text(text, source)
        order = validate_order(np.asarray(order, dtype=np.int64), n_channels=n_channels, source=source)
        provenance = dict(provenance)
        provenance.setdefault("source_file", str(path))
        return cls(order, provenance)
