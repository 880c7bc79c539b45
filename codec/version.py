"""The installed package's version: what order provenance, config files and summary.json record.

Here, in the base layer every other layer imports, so that ``reorder`` (order provenance) and
``eval`` (environment, study configurations) read it from one place.
"""
from __future__ import annotations

import re
from pathlib import Path

__all__ = ["package_version"]


def package_version() -> str:
    """The installed fcm-reorder version (recorded in provenance), or ``"unknown"``."""
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version("fcm-reorder")
    except (ImportError, PackageNotFoundError):
        pass
    try:  # running from a source checkout: read pyproject.toml next to the package
        text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text(encoding="utf-8")
        m = re.search(r'^version\s*=\s*"([^"]+)"', text, re.M)
        if m:
            return m.group(1) + "+source"
    except OSError:
        pass
    return "unknown"
