"""Install python-tsp into the running interpreter without its ``networkx < 3`` pin.

Usage::

    python -m eval.install.python_tsp            # skip what is already installed at the pinned version
    python -m eval.install.python_tsp --force    # reinstall the pinned versions

(``python -m eval.install`` runs this step too, unless ``--no-python-tsp``.)

Why an installer of its own: python-tsp 0.5.0 needs tsplib95 (``>= 0.7.1, < 0.8``), whose
metadata pins ``networkx ~= 2.1`` while scikit-image needs ``networkx >= 3``; a plain
``pip install python-tsp`` then backtracks for minutes or downgrades networkx. Both packages
import and solve with networkx 3.6 and numpy 2.4 (checked by hand, and by the import check
below), so they are installed with ``pip install --no-deps`` at pinned versions
(:data:`PINNED`), and the dependencies that do not clash (:data:`RUNTIME_DEPENDENCIES`: tsplib95's
Click, Deprecated and tabulate, python-tsp's requests) are installed normally when missing.
numpy and networkx are never touched. After installing, ``import python_tsp`` (and its
heuristics, exact and distances modules) is checked in a fresh interpreter.

Only the standard library is imported here; pip runs as a subprocess of ``sys.executable``.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys

__all__ = ["PINNED", "RUNTIME_DEPENDENCIES", "CHECK_SCRIPT", "installed_version", "install_python_tsp",
           "check_import", "main"]

#: Installed with ``--no-deps`` at exactly these versions (their metadata pins networkx < 3).
PINNED: dict[str, str] = {"python-tsp": "0.5.0", "tsplib95": "0.7.1"}

#: (distribution name, requirement) installed normally, with the packages' own specifiers, when the
#: distribution is missing: tsplib95's Click, Deprecated and tabulate and python-tsp's requests. One
#: already installed at another version is left alone (tabulate 0.10 and Deprecated 1.3 work too).
RUNTIME_DEPENDENCIES: list[tuple[str, str]] = [
    ("click", "Click>=6.0"),
    ("deprecated", "Deprecated~=1.2.9"),
    ("tabulate", "tabulate~=0.8.7"),
    ("requests", "requests>=2.28,<3"),
]

#: Run in a fresh interpreter after installing: imports every python-tsp module the package uses.
CHECK_SCRIPT = (
    "import numpy as np, python_tsp, python_tsp.exact, python_tsp.heuristics, python_tsp.distances\n"
    "from python_tsp.exact import solve_tsp_dynamic_programming\n"
    "D = np.array([[0., 1., 2.], [1., 0., 1.], [2., 1., 0.]])\n"
    "assert solve_tsp_dynamic_programming(D)[1] == 4.0\n"
)

_REINSTALL_HINT = ("run `python -m eval.install.python_tsp --force`, or skip python-tsp with "
                   "`python -m eval.install --no-python-tsp` (its solvers then report unavailable)")


def installed_version(dist: str) -> str | None:
    """The installed version of distribution ``dist``, or None when it is not installed."""
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _pip(args: list[str], what: str) -> None:
    from eval.install import InstallError

    cmd = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check", *args]
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if proc.returncode != 0:
        tail = " | ".join((proc.stdout or "").strip().splitlines()[-3:])
        raise InstallError(f"pip install of {what} failed (exit {proc.returncode}): {tail}; "
                           "check that PyPI is reachable, then " + _REINSTALL_HINT)


def check_import() -> str | None:
    """Run :data:`CHECK_SCRIPT` in a fresh interpreter; None when it works, else its last error line."""
    proc = subprocess.run([sys.executable, "-c", CHECK_SCRIPT], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True)
    if proc.returncode == 0:
        return None
    lines = (proc.stdout or "").strip().splitlines()
    return lines[-1] if lines else f"exit status {proc.returncode}"


def install_python_tsp(force: bool = False, log=print) -> list[str]:
    """Install the :data:`PINNED` packages ``--no-deps`` and the missing :data:`RUNTIME_DEPENDENCIES`.

    A pinned package already installed at its version is skipped unless ``force``. Returns
    the requirements pip was asked to install (empty when everything was in place). Raises
    :class:`eval.install.InstallError` with a one-line message when pip fails or when
    ``import python_tsp`` then fails in a fresh interpreter.
    """
    from eval.install import InstallError

    pinned = [f"{dist}=={ver}" for dist, ver in PINNED.items() if force or installed_version(dist) != ver]
    deps = [req for dist, req in RUNTIME_DEPENDENCIES if installed_version(dist) is None]
    if deps:
        log(f"installing python-tsp's dependencies: {' '.join(deps)}")
        _pip(deps, " ".join(deps))
    if pinned:
        log(f"installing {' '.join(pinned)} (--no-deps: tsplib95's networkx<3 pin is not applied)")
        _pip(["--no-deps", *(["--force-reinstall"] if force else []), *pinned], " ".join(pinned))
    else:
        log(" and ".join(f"{d}=={v}" for d, v in PINNED.items()) + " already installed")
    error = check_import()
    if error is not None:
        raise InstallError(f"`import python_tsp` fails in a fresh interpreter ({error}); {_REINSTALL_HINT}")
    if deps or pinned:
        log(f"installed python-tsp {PINNED['python-tsp']}; `import python_tsp` works")
    return deps + pinned


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(prog="python -m eval.install.python_tsp", description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="reinstall the pinned versions")
    args = parser.parse_args(argv)
    from eval.install import run_install_steps

    return run_install_steps(lambda: install_python_tsp(force=args.force))


if __name__ == "__main__":
    sys.exit(main())
