"""Where the data sets put in place by ``python -m eval.install`` live, and which files they hold.

The package's own data folder is ``$FCM_DATA_DIR`` when set, else ``$XDG_CACHE_HOME/fcm-reorder/data``
(default ``~/.cache/fcm-reorder/data``). ``python -m eval.install`` fills ``<data>/opencv-doc/`` with
the pedestrian video and person photos of Debian's ``opencv-doc`` package (:mod:`eval.install.opencv_doc`);
nothing here downloads.

This module is stdlib-only so that the installer can import it before numpy is usable.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["DATA_ENV_VAR", "OPENCV_DOC_FILES", "OPENCV_DOC_INSTALL", "data_dir", "opencv_doc_dir", "opencv_doc_file"]

DATA_ENV_VAR = "FCM_DATA_DIR"
"""Environment variable naming the package's data folder (overrides the cache folder)."""

OPENCV_DOC_FILES: dict[str, str] = {
    "vtest.avi": "45cddc9490be69345cbdab64ca583be65987e864ca408038e648db99e10516cf",
    "basketball1.png": "ba06f6701f7260998b430c39b6557f775497e6ce7b1a74f0b7ea6af371bf54a6",
    "basketball2.png": "b3047772e0dc6c9d83c26f64894ca1a897f799f855c5574ac24b2ef934c2978e",
    "messi5.jpg": "1d570e49654e84c7a943918537bd9e5e1ef82920152e147c834006e235be97c9",
}
"""Files taken from Debian's ``opencv-doc`` 4.6.0 (``usr/share/doc/opencv-doc/examples/data/``) and their SHA-256:
OpenCV's pedestrian surveillance video (795 frames, 768x576, 10 fps, MS-MPEG4v3) and three photos of people."""

OPENCV_DOC_INSTALL = "python -m eval.install"
"""The command that puts :data:`OPENCV_DOC_FILES` in place (named in the errors below)."""


def data_dir() -> Path:
    """``$FCM_DATA_DIR``, else ``$XDG_CACHE_HOME/fcm-reorder/data``, else ``~/.cache/fcm-reorder/data``."""
    explicit = os.environ.get(DATA_ENV_VAR)
    if explicit:
        return Path(os.path.expanduser(explicit))
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(cache) / "fcm-reorder" / "data"


def opencv_doc_dir() -> Path:
    """``<data_dir()>/opencv-doc``: where the installer copies :data:`OPENCV_DOC_FILES`."""
    return data_dir() / "opencv-doc"


def opencv_doc_file(name: str) -> Path:
    """Path of the installed opencv-doc file ``name`` (a key of :data:`OPENCV_DOC_FILES`).

    Only existence is checked here (the installer verified the SHA-256 when it copied the file).
    Raises ``FileNotFoundError`` with one line naming the install command and the alternative.
    """
    if name not in OPENCV_DOC_FILES:
        raise ValueError(f"{name!r} is not one of the opencv-doc files {', '.join(OPENCV_DOC_FILES)}")
    p = opencv_doc_dir() / name
    if not p.is_file():
        raise FileNotFoundError(
            f"{name} is not installed at {p}; run `{OPENCV_DOC_INSTALL}` (it takes it from Debian's opencv-doc "
            f"package), set {DATA_ENV_VAR} to the folder that holds opencv-doc/{name}, or pass --video PATH / --test DIR")
    return p
