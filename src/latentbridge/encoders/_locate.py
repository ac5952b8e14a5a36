"""Finding installed packages and their files without importing them."""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
from pathlib import Path

__all__ = ["dist_file", "has_modules", "package_dir", "usable_cpus", "version"]


def package_dir(module: str) -> Path | None:
    """Directory of an installed top-level package, found without importing it."""
    spec = importlib.util.find_spec(module)
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def dist_file(distribution: str, suffix: str) -> Path | None:
    """The installed file of ``distribution`` whose path ends with ``suffix`` (or None)."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None
    for file in dist.files or ():
        if file.as_posix().endswith(suffix):
            path = Path(str(dist.locate_file(file)))
            return path if path.is_file() else None
    return None


def version(distribution: str) -> str:
    """Installed version of ``distribution`` (``"missing"`` if it is not installed)."""
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "missing"


def usable_cpus() -> int:
    """CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def has_modules(*modules: str) -> bool:
    """Whether every module in ``modules`` can be imported (none is imported)."""
    return all(importlib.util.find_spec(m) is not None for m in modules)
