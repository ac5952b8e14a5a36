"""Datasets: a registry of vision, text and graph datasets, offline-first.

``latentbridge.data.load(name, split="train", **options)`` returns a :class:`Dataset` (inputs and
labels) or, for graphs, a :class:`GraphDataset`. ``latentbridge.data.available()`` lists every
registered dataset with whether its source is present on this machine; a missing source raises
:class:`SourceMissingError` saying what to install or where to put the files.

Built-ins register themselves from :mod:`.vision`, :mod:`.text` and :mod:`.graph` on first use of
the registry (nothing heavy is imported before a dataset is loaded).
"""

from __future__ import annotations

from . import _registry
from ._registry import (
    _REGISTRY,  # noqa: F401  (the tests inspect it)
    MODALITIES,
    Dataset,
    DatasetSpec,
    GraphDataset,
    LoadResult,
    SourceMissingError,
    available,
    check_available,
    check_options,
    get,
    load,
    option_names,
    register,
    split_indices,
)

__all__ = [
    "MODALITIES",
    "Dataset",
    "DatasetSpec",
    "GraphDataset",
    "LoadResult",
    "SourceMissingError",
    "available",
    "check_available",
    "check_options",
    "get",
    "load",
    "option_names",
    "register",
    "split_indices",
]


def _register_builtins() -> None:
    from . import vision, text, graph  # noqa: F401, I001  (they register themselves, in this order)


_registry.load_builtins = _register_builtins
