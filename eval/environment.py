"""What a result was measured with: versions, the codec binaries as they report themselves, CPU and threads.

:func:`environment` returns the ``"environment"`` block of a study's ``summary.json``::

    package      {"name", "version", "git_commit", "git_dirty"}   (git commit "unknown" outside a checkout)
    python       {"version", "implementation", "executable", "platform"}
    libraries    {"torch", "torchvision", "numpy", "scipy", "scikit-learn"}
    ffmpeg       {"path", "version"}                                first line of ``ffmpeg -version``
    encoder      {"codec", "version", "line"}                       e.g. libvvenc's own "libvvenc version: 1.15.0-dev",
                                                                    read from the log of a 2-frame encode
    vtm          {"encoder", "version", "banner"}                   only when the codec is ``vtm`` (EncoderApp's banner)
    cpu          {"model", "logical_cores", "machine"}              model name from /proc/cpuinfo
    threads      {"torch", "torch_interop", "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                  "workers", "codec_threads"}

The probes never fail the study: a probe that raises or whose binary is missing records
``{"error": "<one line>"}`` in its place. Everything except the thread settings is probed
once per process (cached); the thread settings are read at each call, since a study sets them.
Subprocesses run from argument lists (no shell), each with a timeout.
"""

from __future__ import annotations

import functools
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

__all__ = ["environment", "package_info", "codec_versions", "cpu_info", "thread_settings", "PACKAGE"]

PACKAGE = "fcm-reorder"
_ROOT = Path(__file__).resolve().parents[1]
_TIMEOUT = 30.0


def _error(exc: BaseException) -> dict:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return {"error": f"{type(exc).__name__}: {text}"[:500]}


def _probe(fn, *args):
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - an environment probe never stops a study
        return _error(exc)


def _run(argv: list[str], cwd: str | os.PathLike | None = None, timeout: float = _TIMEOUT) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, errors="replace", timeout=timeout, check=False)


def _git(*args: str) -> str | None:
    try:
        proc = _run(["git", *args], cwd=_ROOT, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return proc.stdout.strip() if proc.returncode == 0 else None


@functools.lru_cache(maxsize=None)
def package_info() -> dict:
    """The package's installed version and the git commit of the checkout it runs from ("unknown" outside one)."""
    from codec.version import package_version  # the one version lookup (also in order provenance)

    version = package_version()
    commit = _git("rev-parse", "HEAD") or "unknown"
    status = _git("status", "--porcelain", "--untracked-files=no") if commit != "unknown" else None
    return {"name": PACKAGE, "version": version, "git_commit": commit,
            "git_dirty": None if status is None else bool(status)}


def _python() -> dict:
    return {"version": platform.python_version(), "implementation": platform.python_implementation(),
            "executable": sys.executable, "platform": platform.platform()}


def _version(module: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(module)
    except metadata.PackageNotFoundError:
        mod = __import__(module)
        return str(getattr(mod, "__version__", "unknown"))


@functools.lru_cache(maxsize=None)
def _libraries() -> dict:
    out = {}
    for name, dist in (("torch", "torch"), ("torchvision", "torchvision"), ("numpy", "numpy"), ("scipy", "scipy"),
                       ("scikit-learn", "scikit-learn")):
        out[name] = _probe(_version, dist)
    try:
        import torch

        out["torch_config"] = {"mkldnn": bool(torch.backends.mkldnn.is_available()),
                               "cuda": torch.version.cuda,
                               "parallel_backend": next((ln.split(":", 1)[1].strip() for ln in torch.__config__.parallel_info().splitlines()
                                                         if "parallel backend" in ln.lower()), None)}
    except Exception as exc:  # noqa: BLE001
        out["torch_config"] = _error(exc)
    return out


@functools.lru_cache(maxsize=None)
def _ffmpeg() -> dict:
    from codec.ffmpeg import ffmpeg_exe

    exe = ffmpeg_exe()
    proc = _run([exe, "-version"])
    first = (proc.stdout or proc.stderr).strip().splitlines()
    if proc.returncode != 0 or not first:
        raise RuntimeError(f"{exe} -version exited with {proc.returncode}: {(proc.stderr or '').strip()[:200]}")
    return {"path": exe, "version": first[0]}


_VERSION_LINE = re.compile(r"version[:\s]+v?([0-9][\w.\-+]*)", re.IGNORECASE)


def _encoder_version(codec_spec: str) -> dict:
    """The encoder's version as its own log reports it, from the setup's 2-frame codec check."""
    from codec import make_codec

    codec = make_codec(codec_spec)
    name = codec.name
    bs = codec.smoke_test()
    lines = [ln.strip() for ln in (bs.log or "").splitlines() if "version" in ln.lower()]
    own = [ln for ln in lines if name.lower() in ln.lower() or "encoder" in ln.lower()]
    for line in own + lines:
        m = _VERSION_LINE.search(line)
        if m and "lavc" not in line.lower():
            return {"codec": name, "version": m.group(1), "line": line}
    return {"codec": name, "version": "unknown", "line": lines[0] if lines else "",
            "note": "the encoder's log names no version"}


def _vtm_version(codec_spec: str) -> dict:
    from codec import make_codec

    codec = make_codec(codec_spec)
    encoder = codec._path("encoder", True)
    proc = _run([encoder, "--version"], timeout=20)
    text = (proc.stdout or "") + "\n" + (proc.stderr or "")
    banner = next((ln.strip() for ln in text.splitlines() if "version" in ln.lower()), "")
    m = re.search(r"Version\s+([0-9][\w.\-]*)", banner, re.IGNORECASE)
    return {"encoder": encoder, "version": m.group(1) if m else "unknown", "banner": banner}


@functools.lru_cache(maxsize=None)
def codec_versions(codec_spec: str | None) -> dict:
    """``{"ffmpeg", "encoder"[, "vtm"]}`` for ``codec_spec`` (each probe's error recorded in its place)."""
    out = {"ffmpeg": _probe(_ffmpeg)}
    if not codec_spec:
        return out
    name = codec_spec.partition(":")[0].strip().lower()
    if name == "vtm":
        out["vtm"] = _probe(_vtm_version, codec_spec)
    else:
        out["encoder"] = _probe(_encoder_version, codec_spec)
    return out


@functools.lru_cache(maxsize=None)
def cpu_info() -> dict:
    """CPU model (``model name`` in /proc/cpuinfo, else ``platform.processor()``), logical cores, machine."""
    model = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.lower().startswith(("model name", "hardware", "cpu model")):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {"model": model or platform.processor() or "unknown", "logical_cores": os.cpu_count(),
            "usable_cores": affinity, "machine": platform.machine()}


def thread_settings(workers: int | None = None, codec_spec: str | None = None) -> dict:
    """torch's thread counts now, the BLAS/OpenMP variables, the study's workers and the codec's threads option."""
    out: dict = {}
    try:
        import torch

        out["torch"] = torch.get_num_threads()
        out["torch_interop"] = torch.get_num_interop_threads()
    except Exception as exc:  # noqa: BLE001
        out["torch"] = _error(exc)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        out[var] = os.environ.get(var)
    out["workers"] = workers
    out["cell_torch_threads"] = 1  # eval.pipeline.cell runs every cell single-threaded
    if codec_spec:
        m = re.search(r"(?:^|[:,])threads=(\d+)", codec_spec)
        out["codec_threads"] = int(m.group(1)) if m else None
    return out


def environment(codec_spec: str | None = None, workers: int | None = None) -> dict:
    """The ``"environment"`` block (see the module docstring); never raises."""
    block: dict = {}
    for key, fn, args in (("package", package_info, ()), ("python", _python, ()), ("libraries", _libraries, ()),
                          ("cpu", cpu_info, ()), ("threads", thread_settings, (workers, codec_spec))):
        block[key] = _probe(fn, *args)
    versions = _probe(codec_versions, codec_spec)
    if "error" in versions and len(versions) == 1:
        block["ffmpeg"] = versions
    else:
        block.update(versions)
    return block
