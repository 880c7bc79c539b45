"""Install OpenCV's pedestrian video and person photos from Debian's ``opencv-doc`` package.

    python -m eval.install.opencv_doc [--deb FILE] [--force]

(``python -m eval.install`` runs this step too, unless ``--no-opencv-doc``.)

``opencv-doc`` (Debian, 4.6.0, 96 MB) ships OpenCV's sample data; four of its files are taken
(:data:`eval.data.installed.OPENCV_DOC_FILES`): ``vtest.avi``, a 795-frame pedestrian surveillance
video, and ``basketball1.png``, ``basketball2.png`` and ``messi5.jpg``, photos with people. The
package is fetched with ``apt-get download`` (no root needed, nothing is installed; ``apt-get update``
is run once when apt does not know the package yet), unpacked with ``dpkg-deb -x`` in a temporary
folder, and each file is copied, SHA-256 checked, atomically into
:func:`eval.data.installed.opencv_doc_dir` (``$FCM_DATA_DIR/opencv-doc`` or
``~/.cache/fcm-reorder/data/opencv-doc``). Files already there with the right digest are kept
unless ``--force``.

A machine without ``apt-get`` gets :class:`AptUnavailableError`, which ``python -m eval.install``
reports in one line and goes on: the studies then take ``--video PATH`` / ``--test DIR`` instead.

Only the standard library is imported here.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from eval.data.installed import OPENCV_DOC_FILES, opencv_doc_dir
from eval.install import InstallError, _copy_verified, run_install_steps
from eval.models.weights import sha256_file

__all__ = ["DEB_PACKAGE", "DEB_DATA_DIR", "AptUnavailableError", "download_deb", "install_opencv_doc", "install_or_note", "main"]

DEB_PACKAGE = "opencv-doc"
DEB_DATA_DIR = "usr/share/doc/opencv-doc/examples/data"
"""Where the files lie inside the package."""

_ALTERNATIVE = "pass --video PATH / --test DIR to the study instead"


class AptUnavailableError(InstallError):
    """This machine has no ``apt-get``/``dpkg-deb``, so the Debian package cannot be fetched."""


def _run(cmd: list[str], cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)


def _tail(text: str) -> str:
    return " | ".join((text or "").strip().splitlines()[-2:])


def download_deb(dest_dir: str | os.PathLike, log=print) -> Path:
    """``apt-get download opencv-doc`` into ``dest_dir`` (after one ``apt-get update`` when apt does not know it)."""
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        raise AptUnavailableError(f"apt-get/dpkg-deb not found, so {DEB_PACKAGE}'s vtest.avi and photos cannot be "
                                  f"installed here; {_ALTERNATIVE}")
    log(f"downloading {DEB_PACKAGE} with apt-get download (about 96 MB, nothing is installed) ...")
    proc = _run(["apt-get", "download", DEB_PACKAGE], cwd=dest_dir)
    if proc.returncode != 0 and ("Unable to locate" in proc.stdout or "has no installation candidate" in proc.stdout):
        log(f"apt does not know {DEB_PACKAGE} yet; running apt-get update once ...")
        update = _run(["apt-get", "update"])
        if update.returncode != 0:
            raise InstallError(f"apt-get update failed (exit {update.returncode}): {_tail(update.stdout)}; run it as root "
                               f"(or `apt-get download {DEB_PACKAGE}` yourself and pass --opencv-doc-deb FILE), or {_ALTERNATIVE}")
        proc = _run(["apt-get", "download", DEB_PACKAGE], cwd=dest_dir)
    if proc.returncode != 0:
        raise InstallError(f"apt-get download {DEB_PACKAGE} failed (exit {proc.returncode}): {_tail(proc.stdout)}; "
                           f"check the apt sources (Debian/Ubuntu 'universe'), or {_ALTERNATIVE}")
    debs = sorted(Path(dest_dir).glob(f"{DEB_PACKAGE}_*.deb"))
    if not debs:
        raise InstallError(f"apt-get download {DEB_PACKAGE} left no .deb in {dest_dir}")
    return debs[0]


def install_opencv_doc(target_dir: str | os.PathLike | None = None, deb: str | os.PathLike | None = None,
                       force: bool = False, log=print, files: dict[str, str] | None = None) -> Path:
    """Ensure :data:`~eval.data.installed.OPENCV_DOC_FILES` are in ``target_dir`` (default
    :func:`~eval.data.installed.opencv_doc_dir`) with their SHA-256; return the folder.

    ``deb`` uses a downloaded ``opencv-doc_*.deb`` instead of ``apt-get download``. ``files``
    (name -> SHA-256) is for tests. Raises :class:`AptUnavailableError` without apt, and
    :class:`eval.install.InstallError` for any other failure (files already in place are left as they were).
    """
    files = dict(OPENCV_DOC_FILES if files is None else files)
    target = Path(target_dir) if target_dir is not None else opencv_doc_dir()
    todo = list(files) if force else [n for n, d in files.items()
                                      if not (target / n).is_file() or sha256_file(target / n) != d]
    if not todo:
        log(f"{DEB_PACKAGE} files already installed and valid: {target}")
        return target
    with tempfile.TemporaryDirectory(prefix="fcm-opencv-doc-") as tmp:
        if deb is None:
            deb = download_deb(tmp, log)
        elif not Path(deb).is_file():
            raise InstallError(f"{deb} does not exist; give the path of a downloaded {DEB_PACKAGE}_*.deb")
        if shutil.which("dpkg-deb") is None:
            raise AptUnavailableError(f"dpkg-deb not found, so {deb} cannot be unpacked here; {_ALTERNATIVE}")
        unpacked = Path(tmp) / "root"
        proc = _run(["dpkg-deb", "-x", str(deb), str(unpacked)])
        if proc.returncode != 0:
            raise InstallError(f"dpkg-deb -x {deb} failed (exit {proc.returncode}): {_tail(proc.stdout)}; "
                               "the file is not a Debian package: delete it and retry")
        for name in todo:
            src = unpacked / DEB_DATA_DIR / name
            if not src.is_file():
                raise InstallError(f"{Path(deb).name} has no {DEB_DATA_DIR}/{name}; it is not the expected "
                                   f"{DEB_PACKAGE} (4.6.0); {_ALTERNATIVE}")
            with open(src, "rb") as fh:
                _copy_verified(fh, target / name, files[name], f"{Path(deb).name}:{name}")
    log(f"installed {', '.join(todo)} from {DEB_PACKAGE}: {target}")
    return target


def install_or_note(deb: str | os.PathLike | None = None, force: bool = False) -> Path | None:
    """:func:`install_opencv_doc`, or, on a machine without apt, a one-line note on stderr and None: not a
    failure, since the studies then take ``--video PATH`` / ``--test DIR`` instead."""
    try:
        return install_opencv_doc(deb=deb, force=force)
    except AptUnavailableError as exc:
        print(f"note: {exc}", file=sys.stderr)
        return None


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status (0 with a note when apt is absent)."""
    parser = argparse.ArgumentParser(prog="python -m eval.install.opencv_doc", description=__doc__.split("\n\n")[0])
    parser.add_argument("--deb", default=None, help=f"use this downloaded {DEB_PACKAGE}_*.deb instead of apt-get download")
    parser.add_argument("--force", action="store_true", help="copy the files again even if valid ones are present")
    args = parser.parse_args(argv)
    return run_install_steps(lambda: install_or_note(deb=args.deb, force=args.force))


if __name__ == "__main__":
    sys.exit(main())
