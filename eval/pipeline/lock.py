"""One study at a time in a folder: the lock a study holds on its output folder while it runs."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

from eval.pipeline.store import StoreError

__all__ = ["StudyLock", "StudyBusyError"]


class StudyBusyError(StoreError):
    """Another live process runs a study in the same folder."""


_HELD: dict[str, list] = {}  # lock file (real path) -> [fd, depth]: the locks this process holds
_HELD_GUARD = threading.Lock()


class StudyLock:
    """One study at a time in a folder: an exclusive ``flock`` on ``FOLDER/.study.lock`` while it runs.

    Why a lock on the folder rather than claims on cells: a study needs *every* cell of its
    grid for its report and also writes ``results.csv``, ``summary.json``, ``orders/`` and
    ``config.toml`` there, so a second study on the same folder could only wait for the
    first one's cells or report a partial grid over the other's files; refusing it at once
    is the clear answer. The kernel drops the lock when its process ends in any way (exit,
    Ctrl-C, SIGTERM, SIGKILL, a crash), so it never goes stale and nothing has to be taken
    over. The file holds the owner (pid, host, start time) for the second study's message
    and stays in place (removing a lock file races with a process about to lock it).

    Re-entrant within a process (the study's entry point and :func:`~eval.pipeline.runner.run_grid`
    both take it); not inherited by spawned or exec'd children. Where the file system cannot
    lock (``ENOLCK``, some network mounts) the study runs unlocked with a warning.
    """

    FILENAME = ".study.lock"

    def __init__(self, folder: str | os.PathLike):
        self.folder = Path(folder)
        self.path = self.folder / self.FILENAME
        self._key: str | None = None

    def owner(self) -> dict:
        """What the lock file says about the study holding it ({} when unknown)."""
        try:
            return json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}

    def acquire(self) -> "StudyLock":
        import errno
        import fcntl

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the study folder {self.folder} ({exc.strerror or exc}); "
                             "choose a writable output folder (out)") from exc
        key = os.path.realpath(self.path)
        with _HELD_GUARD:
            if key in _HELD:
                _HELD[key][1] += 1
                self._key = key
                return self
            try:
                fd = os.open(key, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as exc:
                raise StoreError(f"cannot open the study lock {self.path} ({exc.strerror or exc}); "
                                 "check write permission there or choose another output folder (out)") from exc
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                os.close(fd)
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise StudyBusyError(self._busy_message()) from exc
                logging.getLogger(__name__).warning("cannot lock %s (%s): nothing stops a second study on this folder",
                                                    self.path, exc.strerror or exc)
                fd = None
            if fd is not None:
                info = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}
                os.ftruncate(fd, 0)
                os.pwrite(fd, json.dumps(info).encode(), 0)
            _HELD[key] = [fd, 1]
            self._key = key
        return self

    def _busy_message(self) -> str:
        info = self.owner()
        who = f"pid {info.get('pid', '?')} on {info.get('host', '?')}" if info else "its owner not yet recorded"
        since = f", since {info['started']}" if info.get("started") else ""
        return f"another study ({who}{since}) is running in {self.folder}; wait for it or use another output folder (out)"

    def release(self) -> None:
        import fcntl

        if self._key is None:
            return
        key, self._key = self._key, None
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is None:
                return
            held[1] -= 1
            if held[1] > 0:
                return
            del _HELD[key]
            fd = held[0]
            if fd is not None:
                try:
                    os.ftruncate(fd, 0)  # no owner any more
                    fcntl.flock(fd, fcntl.LOCK_UN)
                finally:
                    os.close(fd)

    def __enter__(self) -> "StudyLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
