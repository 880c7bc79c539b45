"""Install detectron2 (v0.5, pure Python) into the running interpreter from the package registry.

Usage::

    python -m eval.install.detectron2            # skip if detectron2 already imports and works
    python -m eval.install.detectron2 --force    # rebuild and reinstall

Why an installer of its own: detectron2 publishes no wheels on PyPI. The registry does hold
``detectron2-cdo==0.5``, an sdist of detectron2 v0.5, but as shipped it cannot be installed here:

* its ``setup.py`` declares the C++/CUDA extension ``detectron2._C`` whose sources are not in the sdist,
  and it collects the model-zoo configs from a top-level ``configs/`` folder the sdist lacks (they sit
  in ``detectron2/model_zoo/configs``), so a plain build would fail or ship no configs;
* its metadata carries a direct-URL dependency (extra ``all``), which pip >= 26 refuses for anything
  downloaded from PyPI, even with ``--no-deps``: the sdist is then fetched with pip 25.3 run from its
  own wheel (still the ordinary client, just an older release of it);
* pip has to run the original setup.py to read its metadata, and it imports torch: the download and
  the build run with ``--no-build-isolation`` (setuptools/wheel come from a temporary folder when the
  interpreter lacks them);
* at import time it needs ``detectron2._C`` to exist and uses Pillow's ``Image.LINEAR`` (removed in
  Pillow 10), and ``detectron2.model_zoo`` imports ``pkg_resources`` (gone from setuptools >= 81).

All of these are fixed in the unpacked source *before* the wheel is built (``patch_source``), so the
installed package imports cleanly from any code, in any order, without runtime monkey-patching:
``detectron2/_C.py`` becomes a stub whose attributes raise a clear error (only rotated-box ops,
deformable convolution and the fast COCO evaluator use it; Faster R-CNN inference does not),
``Image.LINEAR`` becomes ``Image.BILINEAR`` (the same resampling filter, value 2), and the model zoo
resolves config paths next to its own module file.

Runtime dependencies are installed from a curated list (what inference, config loading and
checkpoint loading import), with a pip constraints file that pins the torch, torchvision, numpy and
Pillow already installed so that pip can never upgrade or downgrade them; detectron2 itself is
installed ``--no-deps``. Only the standard library is imported at module level. A full install takes about 25 s on a 2-core
machine (a no-op check of a working install about 6 s).
"""
from __future__ import annotations

import argparse
import glob
import importlib.metadata
import os
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

SDIST_REQUIREMENT = "detectron2-cdo==0.5"
#: pip release used when the running pip refuses the sdist's direct-URL metadata (pip >= 26).
FALLBACK_PIP = "pip==25.3"

#: Runtime dependencies of detectron2 v0.5 that its inference/config/checkpoint code imports
#: (versions follow its setup.py; hydra-core, black, tensorboard, pydot and future are only used by
#: training tools / LazyConfig.save and are left out).
RUNTIME_DEPENDENCIES = [
    "fvcore>=0.1.5,<0.1.6",
    "iopath>=0.1.7,<0.1.10",
    "portalocker",
    "yacs>=0.1.6",
    "termcolor>=1.1",
    "tabulate",
    "cloudpickle",
    "tqdm>4.29.0",
    "omegaconf>=2.1",
    "PyYAML",
    "pycocotools>=2.0.2",
    "matplotlib",
    "Pillow>=7.1",
]

#: Packages pip must leave exactly as they are (pinned through a constraints file when installed).
PROTECTED = ["torch", "torchvision", "numpy", "Pillow"]

#: Python run in a fresh interpreter to decide whether the installed detectron2 works.
_CHECK_SCRIPT = r"""
import os, sys
import detectron2
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling.postprocessing import detector_postprocess
import detectron2.data.transforms
root = os.path.join(os.path.dirname(detectron2.__file__), "model_zoo", "configs")
cfg_file = os.path.join(root, "COCO-Detection", "faster_rcnn_X_101_32x8d_FPN_3x.yaml")
if not os.path.isfile(cfg_file):
    sys.exit("model-zoo configs missing: " + cfg_file)
cfg = get_cfg()
cfg.merge_from_file(cfg_file)
print("detectron2", detectron2.__version__, "at", os.path.dirname(detectron2.__file__))
"""

_C_STUB = '''"""Stand-in for detectron2's compiled extension, written by eval.install.detectron2.

The registry's detectron2 sdist ships no C++/CUDA sources, so the extension cannot be built. Only
rotated-box ops, deformable convolution and the fast COCO evaluator call into it; Faster R-CNN
inference does not. Any attribute access raises an AttributeError that says so.
"""


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    raise AttributeError(
        "detectron2._C.%s is unavailable: this detectron2 was installed by eval.install.detectron2 "
        "without its compiled extension (rotated boxes, deformable conv and the fast COCO evaluator "
        "need it); use an op that does not need it, or install a full detectron2 build" % name
    )
'''

_SETUP_PY = '''"""setup.py written by eval.install.detectron2: pure Python, no C extension, model-zoo configs as data."""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "detectron2", "__init__.py")) as f:
    VERSION = re.search(r"^__version__\\s*=\\s*[\\"']([^\\"']+)", f.read(), re.M).group(1)

PROJECTS = {
    "detectron2.projects.point_rend": "projects/PointRend/point_rend",
    "detectron2.projects.deeplab": "projects/DeepLab/deeplab",
    "detectron2.projects.panoptic_deeplab": "projects/Panoptic-DeepLab/panoptic_deeplab",
}
PROJECTS = {k: v for k, v in PROJECTS.items() if os.path.isdir(os.path.join(HERE, v))}

setup(
    name="detectron2_cdo",
    version=VERSION,
    author="FAIR",
    url="https://github.com/facebookresearch/detectron2",
    description="detectron2 v0.5 (pure-Python build without the C extension)",
    packages=find_packages(exclude=("configs", "tests*")) + list(PROJECTS),
    package_dir=PROJECTS,
    package_data={"detectron2.model_zoo": ["configs/**/*.yaml", "configs/**/*.py"]},
    include_package_data=False,
    python_requires=">=3.6",
)
'''


class Detectron2InstallError(RuntimeError):
    """A step of the detectron2 installation failed; the message names the step and what to do."""


def _log(msg: str) -> None:
    print(f"[detectron2_install] {msg}", flush=True)


def _pip(args: list[str], *, pip_cmd: list[str] | None = None, check: bool = True,
         what: str = "pip", env: dict | None = None) -> subprocess.CompletedProcess:
    """Run pip (``sys.executable -m pip`` unless ``pip_cmd`` is given) with an argument list."""
    cmd = (pip_cmd or [sys.executable, "-m", "pip"]) + args
    _log("running: " + " ".join(cmd))
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    if check and proc.returncode != 0:
        tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
        raise Detectron2InstallError(
            f"{what} failed (exit {proc.returncode}); last output:\n{tail}\n"
            "Check network access to PyPI and rerun: python -m eval.install.detectron2 --force"
        )
    return proc


def check_installed() -> tuple[bool, str]:
    """Return (works, message): import detectron2 and load the X101-FPN config in a fresh interpreter."""
    proc = subprocess.run([sys.executable, "-c", _CHECK_SCRIPT], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.strip()
    return proc.returncode == 0, (out.splitlines()[-1] if out else f"exit {proc.returncode}")


def build_env(tmp: Path) -> dict:
    """Environment for pip's ``--no-build-isolation`` steps: setuptools and wheel must be importable.

    When this interpreter lacks them they are installed into a temporary ``--target`` folder put on
    PYTHONPATH for those steps only, so the environment itself is not changed.
    """
    env = dict(os.environ)
    if _has_build_backend():
        return env
    target = tmp / "_buildtools"
    _pip(["install", "--no-deps", "--target", str(target), "setuptools<81", "wheel"],
         what="installing setuptools/wheel for the build (temporary)")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(target), env.get("PYTHONPATH", "")) if p)
    return env


def download_sdist(dest: Path, env: dict | None = None) -> Path:
    """Download the detectron2-cdo sdist into ``dest`` and return its path.

    pip prepares the sdist's metadata before saving it, which runs the original setup.py (it imports
    torch: hence ``--no-build-isolation``). pip >= 26 then rejects the direct-URL extra; in that case
    pip 25.3 is fetched as a wheel and run from it to do the download.
    """
    args = ["download", "--no-deps", "--no-binary", ":all:", "--no-build-isolation",
            SDIST_REQUIREMENT, "-d", str(dest)]
    proc = _pip(args, check=False, env=env)
    if proc.returncode != 0:
        if "direct URL" not in proc.stdout:
            tail = "\n".join(proc.stdout.strip().splitlines()[-25:])
            raise Detectron2InstallError(f"downloading {SDIST_REQUIREMENT} failed:\n{tail}")
        _log("this pip refuses the sdist's direct-URL metadata; using " + FALLBACK_PIP)
        pipdir = dest / "_pip"
        _pip(["download", "--no-deps", "--only-binary", ":all:", FALLBACK_PIP, "-d", str(pipdir)],
             what=f"downloading {FALLBACK_PIP}")
        wheels = sorted(pipdir.glob("pip-*.whl"))
        if not wheels:
            raise Detectron2InstallError(f"no pip wheel found in {pipdir} after downloading {FALLBACK_PIP}")
        _pip(args, pip_cmd=[sys.executable, str(wheels[0] / "pip")], env=env,
             what=f"downloading {SDIST_REQUIREMENT} with {FALLBACK_PIP}")
    found = sorted(dest.glob("detectron2*cdo*.tar.gz"))
    if not found:
        raise Detectron2InstallError(f"pip reported success but no detectron2-cdo sdist is in {dest}")
    return found[0]


def unpack_sdist(sdist: Path, dest: Path) -> Path:
    """Unpack the sdist safely and return the source root (the folder holding setup.py)."""
    with tarfile.open(sdist) as tar:
        try:
            tar.extractall(dest, filter="data")
        except TypeError:  # Python without extraction filters
            for member in tar.getmembers():
                target = (dest / member.name).resolve()
                if not str(target).startswith(str(dest.resolve())):
                    raise Detectron2InstallError(f"unsafe path {member.name!r} in {sdist}")
            tar.extractall(dest)
    roots = [Path(p).parent for p in glob.glob(str(dest / "*" / "setup.py"))]
    if len(roots) != 1:
        raise Detectron2InstallError(f"expected one setup.py at the top of {sdist}, found {len(roots)}")
    return roots[0]


def _replace_in_file(path: Path, old: str, new: str, what: str) -> None:
    text = path.read_text()
    if old not in text:
        if new in text:
            return  # already patched
        raise Detectron2InstallError(
            f"cannot patch {path} ({what}): expected text {old!r} not found; "
            f"the sdist differs from {SDIST_REQUIREMENT}"
        )
    path.write_text(text.replace(old, new))


def patch_source(root: Path) -> None:
    """Make the unpacked detectron2 v0.5 source build as pure Python and import on current Pillow/setuptools."""
    pkg = root / "detectron2"
    if not (pkg / "__init__.py").is_file():
        raise Detectron2InstallError(f"{root} holds no detectron2 package")
    configs = pkg / "model_zoo" / "configs"
    if not any(configs.rglob("*.yaml")):
        raise Detectron2InstallError(f"no model-zoo configs under {configs}; the sdist differs from {SDIST_REQUIREMENT}")
    # 1. setup.py without the C extension (its sources are not shipped) and with the configs as data.
    (root / "setup.py").write_text(_SETUP_PY)
    for name in ("pyproject.toml",):  # none in 0.5; a future sdist's build config must not override ours
        if (root / name).exists():
            (root / name).unlink()
    # 2. detectron2._C stub: imported at module level by layers/, evaluation/.
    (pkg / "_C.py").write_text(_C_STUB)
    # 3. Pillow >= 10 removed Image.LINEAR (an alias of BILINEAR); used as a default argument.
    _replace_in_file(pkg / "data" / "transforms" / "transform.py", "interp=Image.LINEAR",
                     "interp=Image.BILINEAR", "Pillow Image.LINEAR")
    # 4. model_zoo without pkg_resources (removed from setuptools >= 81).
    mz = pkg / "model_zoo" / "model_zoo.py"
    _replace_in_file(mz, "import pkg_resources\n", "", "pkg_resources import")
    _replace_in_file(
        mz,
        'pkg_resources.resource_filename(\n        "detectron2.model_zoo", os.path.join("configs", config_path)\n    )',
        'os.path.join(os.path.dirname(os.path.abspath(__file__)), "configs", config_path)',
        "pkg_resources config lookup",
    )


def _constraints_file(dest: Path) -> Path:
    """Write a pip constraints file pinning the installed versions of the protected packages."""
    lines = []
    for name in PROTECTED:
        try:
            lines.append(f"{name}=={importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            pass
    path = dest / "constraints.txt"
    path.write_text("\n".join(lines) + "\n")
    _log("protected versions: " + ", ".join(lines))
    return path


def _has_build_backend() -> bool:
    try:
        importlib.metadata.version("setuptools")
        importlib.metadata.version("wheel")
        return True
    except importlib.metadata.PackageNotFoundError:
        return False


def build_wheel(root: Path, dest: Path, env: dict | None = None) -> Path:
    """Build the patched source into a wheel in ``dest`` and return its path."""
    _pip(["wheel", "--no-deps", "--no-build-isolation", str(root), "-w", str(dest)], env=env,
         what="building the detectron2 wheel")
    wheels = sorted(dest.glob("detectron2*.whl"))
    if not wheels:
        raise Detectron2InstallError(f"pip wheel reported success but no wheel is in {dest}")
    return wheels[0]


def install(force: bool = False) -> float:
    """Install detectron2 unless it already works (or ``force``); return the seconds it took."""
    t0 = time.perf_counter()
    ok, msg = check_installed()
    if ok and not force:
        _log(f"already installed and working: {msg} (use --force to reinstall)")
        return time.perf_counter() - t0
    if not ok:
        _log(f"detectron2 not usable yet ({msg}); installing {SDIST_REQUIREMENT}")
    with tempfile.TemporaryDirectory(prefix="d2install-") as tmp:
        tmp = Path(tmp)
        env = build_env(tmp)
        sdist = download_sdist(tmp / "sdist", env)
        root = unpack_sdist(sdist, tmp / "src")
        patch_source(root)
        wheel = build_wheel(root, tmp / "wheel", env)
        constraints = _constraints_file(tmp)
        _pip(["install", "-c", str(constraints)] + RUNTIME_DEPENDENCIES,
             what="installing detectron2's runtime dependencies")
        _pip(["install", "--no-deps", "--force-reinstall", str(wheel)], what="installing the detectron2 wheel")
    ok, msg = check_installed()
    if not ok:
        raise Detectron2InstallError(f"detectron2 installed but does not import: {msg}")
    seconds = time.perf_counter() - t0
    _log(f"done in {seconds:.1f} s: {msg}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m eval.install.detectron2", description=__doc__.split("\n")[0])
    parser.add_argument("--force", action="store_true", help="reinstall even if detectron2 already works")
    args = parser.parse_args(argv)
    try:
        install(force=args.force)
    except Detectron2InstallError as exc:
        print(f"[detectron2_install] ERROR: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
