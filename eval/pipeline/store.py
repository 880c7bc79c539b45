"""Crash-safe results store: one row per coded cell, keyed so finished work is never redone.

Why SQLite: every row is committed in its own transaction, so a study killed at any moment
(Ctrl-C, SIGKILL, a crashed worker, a power cut) keeps every row it had finished, and a
re-run asks :meth:`ResultStore.finished_keys` which cells to skip. Only the driver writes
(workers return rows to it), so there is a single writer even on a Dask cluster; WAL mode
lets readers (a notebook, ``results.csv`` export) look at the file while a study runs.

A row is a flat dict of JSON-serialisable values. ``status`` is ``"ok"`` or ``"error"``;
error rows carry the message and are retried on the next run (up to ``max_attempts``
in total), they never stop the other cells.

Every SQLite failure (not a database, damaged pages, a table of another program, a locked
or read-only file) surfaces as :class:`StoreError` with one line naming the file and what
to do; a damaged store is never silently replaced, since its finished rows are the study.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from pathlib import Path
from typing import Iterable, Iterator

from codec.files import to_jsonable
from eval.pipeline.faults import is_machinery_error

__all__ = ["ResultStore", "StoreError", "iter_rows"]


class StoreError(RuntimeError):
    """The results file cannot be opened or read."""


def _row_error(text: str) -> str:
    try:
        return str(json.loads(text).get("error") or "")
    except (json.JSONDecodeError, TypeError, AttributeError):
        return ""


_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 1,
    row TEXT NOT NULL
)
"""


class ResultStore:
    """Rows of a study in an SQLite file (``results.sqlite`` inside the study folder)."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if self.path.is_dir():
            raise StoreError(f"results store {self.path} is a directory; give the path of a .sqlite file (or another output folder)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the folder of results store {self.path} ({exc.strerror or exc}); "
                             "choose a writable output folder (out)") from exc
        self._db = None
        try:
            with self._guard("open"):
                self._db = sqlite3.connect(str(self.path), timeout=60, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=NORMAL")
                self._db.execute(_SCHEMA)
                columns = {row[1] for row in self._db.execute("PRAGMA table_info(results)")}
            if not {"key", "status", "attempts", "row"} <= columns:
                raise StoreError(
                    f"results store {self.path} has a 'results' table of another program (columns {sorted(columns)}); "
                    "move the file aside or choose another output folder (out)"
                )
        except StoreError:
            self.close()
            raise

    @contextlib.contextmanager
    def _guard(self, what: str):
        """Turn SQLite failures into one-line :class:`StoreError` messages that say what to do."""
        try:
            yield
        except sqlite3.OperationalError as exc:
            text = str(exc)
            if "locked" in text or "busy" in text:
                hint = "another process holds it (a second study writing the same output folder?); wait for it or use another one"
            elif "readonly" in text or "disk" in text or "full" in text or "unable to open" in text:
                hint = "check free space and write permission there, or choose another output folder (out)"
            else:
                hint = "move it aside (finished rows in it are lost for reuse) or choose another output folder (out)"
            raise StoreError(f"results store {self.path}: cannot {what} ({text}); {hint}") from exc
        except sqlite3.DatabaseError as exc:  # not a database, malformed pages, truncated file
            raise StoreError(
                f"results store {self.path} is not a readable SQLite file ({exc}); move it aside (its rows cannot be "
                "reused; `sqlite3 FILE .recover` may rescue some) or choose another output folder (out)"
            ) from exc

    def close(self) -> None:
        if self._db is not None:
            self._db.close()

    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def put(self, row: dict) -> None:
        """Store ``row`` (must contain ``key`` and ``status``) in one committed transaction.

        An ``ok`` row replaces an earlier error row for the same key; the attempt count
        keeps growing so bounded retries survive restarts.
        """
        key, status = row["key"], row["status"]
        if status not in ("ok", "error"):
            raise ValueError(f"row {key}: status {status!r} must be 'ok' or 'error'")
        try:
            text = json.dumps(row, sort_keys=True, allow_nan=True, default=to_jsonable)
        except TypeError as exc:
            raise ValueError(f"row {key} cannot be stored as JSON ({exc}); return plain numbers, strings, lists and dicts") from exc
        with self._guard("write a row"), self._db:
            prev = self._db.execute("SELECT attempts, status, row FROM results WHERE key=?", (key,)).fetchone()
            if prev is not None and prev[1] == "ok":
                return  # never overwrite a finished cell
            # an earlier "attempt" that the cluster cancelled (see is_machinery_error) was no try of the cell
            attempts = 1 if prev is None or is_machinery_error(_row_error(prev[2])) else prev[0] + 1
            self._db.execute(
                "INSERT OR REPLACE INTO results(key, status, attempts, row) VALUES (?, ?, ?, ?)",
                (key, status, attempts, text),
            )

    def finished_keys(self) -> set[str]:
        """Keys of cells that completed successfully."""
        with self._guard("read finished cells"):
            return {k for (k,) in self._db.execute("SELECT key FROM results WHERE status='ok'")}

    def attempts(self) -> dict[str, int]:
        """How often each failed cell has been tried so far.

        Cells whose last error came from the machinery (a future cancelled because the Dask
        scheduler was lost, a closed connection: :func:`is_machinery_error`), as stored by
        earlier versions, are left out: they count as never tried and are retried.
        """
        with self._guard("read failed cells"):
            rows = self._db.execute("SELECT key, attempts, row FROM results WHERE status!='ok'").fetchall()
        return {key: n for key, n, text in rows if not is_machinery_error(_row_error(text))}

    def rows(self, status: str | None = "ok") -> list[dict]:
        """All stored rows (only finished ones by default), in insertion order."""
        query = "SELECT row FROM results" + ("" if status is None else " WHERE status=?") + " ORDER BY rowid"
        args = () if status is None else (status,)
        with self._guard("read rows"):
            texts = [t for (t,) in self._db.execute(query, args)]
        out = []
        for text in texts:
            try:
                out.append(json.loads(text))
            except (json.JSONDecodeError, TypeError) as exc:
                raise StoreError(
                    f"results store {self.path}: a stored row is not valid JSON ({exc}); the file was changed by "
                    "another program: move it aside or choose another output folder (out)"
                ) from exc
        return out

    def __len__(self) -> int:
        with self._guard("count rows"):
            return self._db.execute("SELECT COUNT(*) FROM results").fetchone()[0]


def iter_rows(paths: Iterable[str | os.PathLike]) -> Iterator[dict]:
    """Rows of several stores in turn (for merging studies)."""
    for p in paths:
        with ResultStore(p) as store:
            yield from store.rows()
