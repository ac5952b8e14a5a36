"""What the dataset modules share: where their files are, the split names, balanced subsets.

File-based datasets look for their files in, in this order: the ``root=`` option, then
``$LATENTBRIDGE_DATA/<folder>`` when that folder exists, then a system location where there is
one (Debian's ``wordnet-base`` and ``dataset-fashion-mnist``), else
``latentbridge.cache.cache_dir()/<folder>`` (where downloads go).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .._validation import check_positive_int
from ..cache import cache_dir

__all__ = [
    "DATA_ENV",
    "TRAIN_TEST",
    "WORDNET_FILES",
    "WORDNET_SYSTEM_ROOT",
    "balanced_subset",
    "data_root",
    "wordnet_root",
]

DATA_ENV = "LATENTBRIDGE_DATA"
#: The splits of the vision and text datasets.
TRAIN_TEST = ("train", "test")
#: Where Debian's ``wordnet-base`` installs the WordNet 3.0 database.
WORDNET_SYSTEM_ROOT = Path("/usr/share/wordnet")
#: The WordNet database files the datasets read (``data.noun`` alone for ``wordnet-graph``).
WORDNET_FILES = ("data.noun", "data.verb")


def data_root(root: str | os.PathLike[str] | None, folder: str, system: Path | None = None) -> Path:
    """The folder of a dataset's files: ``root`` if given, else ``$LATENTBRIDGE_DATA/folder``
    if it exists, else ``system`` if given, else ``cache_dir()/folder``.

    Nothing is created; the loader reports the files missing there.
    """
    if root is not None:
        if not isinstance(root, (str, os.PathLike)):
            raise TypeError(f"root must be a path or None, got {type(root).__name__}")
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    if env:
        candidate = Path(env).expanduser() / folder
        if candidate.exists():
            return candidate
    if system is not None:
        return system
    return cache_dir() / folder


def wordnet_root(root: str | os.PathLike[str] | None = None) -> Path:
    """The folder of the WordNet 3.0 database (``data.noun``, ``data.verb``, ``index.noun``, ...):
    ``root`` if given, else ``$LATENTBRIDGE_DATA/wordnet`` if it exists, else
    :data:`WORDNET_SYSTEM_ROOT` (see :func:`data_root`)."""
    return data_root(root, "wordnet", WORDNET_SYSTEM_ROOT)


def balanced_subset(labels: np.ndarray, subset: int, seed: int, num_classes: int) -> np.ndarray:
    """Sorted indices of a deterministic class-balanced subset of ``subset`` samples.

    Each of the ``num_classes`` classes gets ``subset // num_classes`` samples, and the first
    ``subset % num_classes`` classes (by label index) one more; members are drawn without
    replacement by ``numpy.random.default_rng(seed)``. Raises ``ValueError`` naming ``subset``
    when it is not a positive int or when a class has too few samples.
    """
    subset = check_positive_int(subset, "subset")
    labels = np.asarray(labels)
    base, extra = divmod(subset, num_classes)
    rng = np.random.default_rng(seed)
    chosen = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        want = base + (1 if c < extra else 0)
        if want > len(members):
            raise ValueError(
                f"subset={subset} needs {want} samples of class {c} but only {len(members)} exist"
            )
        chosen.append(rng.choice(members, size=want, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int64)
