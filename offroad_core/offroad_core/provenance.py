"""What produced an artifact: git revision, time, versions. Written next to every artifact."""

from __future__ import annotations

import datetime as _dt
import importlib.metadata
import platform
import subprocess
from pathlib import Path
from typing import Any

import offroad_core


def git_revision(cwd: str | Path | None = None) -> str:
    """Return the current git revision (with ``-dirty`` if the tree has changes) or "unknown"."""
    cwd = Path(cwd) if cwd else Path(__file__).resolve().parent
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True,
                             text=True, check=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=cwd,
                               capture_output=True, text=True, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return f"{rev}-dirty" if dirty else rev


def package_version() -> str:
    """Return the runtime core's version.

    Falls back to the installed distribution's metadata when ``offroad_core`` resolves to a
    namespace package (Python started in the repository root shadows the editable install).
    """
    version = getattr(offroad_core, "__version__", None)
    if version:
        return version
    try:
        return importlib.metadata.version("offroad_core")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def provenance(**extra: Any) -> dict[str, Any]:
    """Return a provenance record: package version, git revision, UTC time, host, ``extra``."""
    return {
        "offroad_core": package_version(),
        "git_revision": git_revision(),
        "created_utc": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "host": platform.node(),
        **extra,
    }
