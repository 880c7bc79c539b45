"""Crash-safe files: the package's one atomic writer, one JSON encoder and one CSV writer.

Every file the package writes (orders, quantizer parameters, bitstreams, results.csv,
summary.json, figures, weights) goes through :func:`atomic_write_bytes`: the data goes to a
temporary file in the target folder, is flushed to disk (``fsync``) and then renamed over
the target, so a reader (or a re-run after a crash) sees the old file or the whole new
one, never half of it.

It lives in :mod:`codec` for the same reason as :mod:`codec.registry`: codec is the base
layer that :mod:`reorder` and :mod:`eval` both build on.
"""
from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

__all__ = ["atomic_write_bytes", "atomic_save_npy", "atomic_write_text", "atomic_write_json", "write_csv", "to_jsonable", "dumps", "safe_name"]


def _read_umask() -> int:
    mask = os.umask(0)  # the only way to read it; done once at import, before any threads write files
    os.umask(mask)
    return mask


_UMASK = _read_umask()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old file or the whole new one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes the file private; give it a normal file's mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_save_npy(path: str | os.PathLike, array: Any) -> Path:
    """One array as ``.npy`` (no pickling), written through :func:`atomic_write_bytes`."""
    import numpy as np  # here, so that importing this module stays light

    buf = io.BytesIO()
    np.save(buf, np.asarray(array), allow_pickle=False)
    return atomic_write_bytes(path, buf.getvalue())


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def to_jsonable(value: Any) -> Any:
    """``json.dumps(default=...)`` for what numpy and pathlib hand us; anything else is a TypeError."""
    import numpy as np  # here, so that importing this module stays light

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (set, frozenset)):
        return sorted(value)
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def dumps(obj: Any, indent: int | None = 2, sort_keys: bool = False) -> str:
    """JSON text with the package's encoder (NaN and Inf as Python's json writes and reads them)."""
    return json.dumps(obj, indent=indent, sort_keys=sort_keys, default=to_jsonable)


def atomic_write_json(path: str | os.PathLike, obj: Any, sort_keys: bool = False) -> Path:
    return atomic_write_text(path, dumps(obj, sort_keys=sort_keys) + "\n")


def _cell(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, default=to_jsonable)
    return value


def write_csv(path: str | os.PathLike, rows: Iterable[dict], columns: list[str] | None = None) -> Path:
    """Rows as CSV (atomically); ``columns`` default to every key in first-seen order; dicts/lists as JSON."""
    rows = list(rows)
    if columns is None:
        columns = []
        for r in rows:
            columns.extend(k for k in r if k not in columns)
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _cell(r.get(k)) for k in columns})
    return atomic_write_text(path, buf.getvalue())


def safe_name(name: str) -> str:
    """A name as a file name: characters other than letters, digits, ``-_.`` become ``_``."""
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in str(name))
