"""The dataset registry: the dataset types, specifications, loading (see :mod:`latentbridge.data`).

The package registers its built-in datasets on first use of the registry through
:data:`load_builtins`, which it sets: this module imports none of the dataset modules, and they
import it, so the registry and the loaders form no import cycle.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from .._validation import check_choice

__all__ = [
    "Dataset",
    "DatasetSpec",
    "GraphDataset",
    "SourceMissingError",
    "available",
    "get",
    "load",
    "register",
]

MODALITIES = ("vision", "text", "graph")


class SourceMissingError(RuntimeError):
    """A dataset's source (package, system package or files) is not present here."""


@dataclass(frozen=True)
class Dataset:
    """One split of a labelled dataset.

    ``inputs``: images as ``uint8`` arrays ``(N, H, W)`` / ``(N, H, W, 3)``, or texts
    as a list of strings; ``labels``: ``int64 (N,)`` indices into ``classes``.
    """

    name: str
    split: str
    modality: str
    inputs: Any
    labels: np.ndarray
    classes: tuple[str, ...]
    options: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


@dataclass(frozen=True)
class GraphDataset:
    """A node-classification graph (Cora-style).

    ``features``: ``float32 (num_nodes, F)``; ``edge_index``: ``int64 (2, E)``, both directions
    listed for undirected edges; ``labels``: ``int64 (num_nodes,)``; boolean masks
    ``train_mask``, ``val_mask``, ``test_mask`` (disjoint).
    """

    name: str
    features: np.ndarray
    edge_index: np.ndarray
    labels: np.ndarray
    classes: tuple[str, ...]
    train_mask: np.ndarray
    val_mask: np.ndarray
    test_mask: np.ndarray
    options: dict[str, Any] = field(default_factory=dict)
    modality: str = "graph"

    @property
    def num_nodes(self) -> int:
        return int(self.labels.shape[0])

    @property
    def num_edges(self) -> int:
        return int(self.edge_index.shape[1])

    @property
    def num_classes(self) -> int:
        return len(self.classes)


LoadResult = Union[Dataset, GraphDataset]  # noqa: UP007 (a runtime alias on 3.10)


@dataclass(frozen=True)
class DatasetSpec:
    """A registered dataset: metadata, an availability probe and a loader.

    ``loader(split, **options)`` returns a :class:`Dataset` or :class:`GraphDataset`;
    ``is_available()`` says whether the source is present without loading it; ``install_hint``
    says what to do when it is not. ``size`` maps a split to its number of samples (as loaded
    with default options), ``source`` and ``license`` document the data.
    """

    name: str
    modality: str
    splits: tuple[str, ...]
    num_classes: int
    size: dict[str, int]
    loader: Callable[..., LoadResult]
    is_available: Callable[[], bool]
    install_hint: str
    source: str
    license: str
    description: str = ""


_REGISTRY: dict[str, DatasetSpec] = {}


def _no_builtins() -> None:
    """The default of :data:`load_builtins` (the package replaces it)."""


#: Registers the built-in datasets; set by the package, called once on first use.
load_builtins: Callable[[], None] = _no_builtins
_BUILTINS_LOADED = False


def _load_builtins() -> None:
    global _BUILTINS_LOADED
    if not _BUILTINS_LOADED:
        _BUILTINS_LOADED = True
        load_builtins()


def register(spec: DatasetSpec, *, overwrite: bool = False) -> DatasetSpec:
    """Register a dataset specification."""
    check_choice(spec.modality, "modality", MODALITIES)
    if spec.name in _REGISTRY and not overwrite:
        raise ValueError(f"a dataset named {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def get(name: str) -> DatasetSpec:
    """The specification registered as ``name``."""
    _load_builtins()
    return _REGISTRY[check_choice(name, "dataset", sorted(_REGISTRY))]


def available(modality: str | None = None) -> list[DatasetSpec]:
    """Every registered dataset (optionally of one modality), in registration order."""
    _load_builtins()
    if modality is not None:
        check_choice(modality, "modality", MODALITIES)
    return [s for s in _REGISTRY.values() if modality is None or s.modality == modality]


def option_names(name: str) -> list[str] | None:
    """The options the loader of dataset ``name`` accepts (None: it takes any keyword)."""
    import inspect

    loader = get(name).loader
    try:
        parameters = list(inspect.signature(loader).parameters.values())[1:]  # after split
    except (TypeError, ValueError):  # a loader without a signature: nothing to check
        return None
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return sorted(p.name for p in parameters if p.kind not in (p.VAR_POSITIONAL, p.POSITIONAL_ONLY))


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` naming the first of ``options`` that dataset ``name`` does not take."""
    accepted = option_names(name)
    if accepted is None:
        return
    for option in options:
        if option not in accepted:
            takes = f"its options are {accepted}" if accepted else "it takes no options"
            raise ValueError(f"{option!r} is not an option of dataset {name!r}; {takes}")


def load(name: str, split: str = "train", **options: Any) -> LoadResult:
    """Load ``split`` of the dataset ``name``; options are the dataset's own (documented there).

    Raises :class:`SourceMissingError`, with what to install or where to put the files, when the
    source is not present.
    """
    spec = get(name)
    check_choice(split, f"split for {name!r}", spec.splits)
    # A root or a download request points the loader elsewhere; it reports a missing source.
    check_options(name, options)
    check_available(name, options)
    return spec.loader(split, **options)


def check_available(name: str, options: Mapping[str, Any]) -> None:
    """Raise :class:`SourceMissingError` if dataset ``name``'s source is not here.

    A ``root`` or ``download`` option points the loader elsewhere: the loader reports a missing
    source then.
    """
    spec = get(name)
    redirected = options.get("root") is not None or bool(options.get("download"))
    if not redirected and not spec.is_available():
        raise SourceMissingError(f"dataset {name!r} is not available here: {spec.install_hint}")


def split_indices(
    n: int, test_fraction: float, seed: int, labels: Sequence[int] | np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic (stratified when ``labels`` is given) train/test index split."""
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    if labels is None:
        order = rng.permutation(n)
        n_test = round(n * test_fraction)
        return np.sort(order[n_test:]), np.sort(order[:n_test])
    labels = np.asarray(labels)
    train, test = [], []
    for c in np.unique(labels):
        members = rng.permutation(np.flatnonzero(labels == c))
        n_test = round(len(members) * test_fraction)
        test.append(members[:n_test])
        train.append(members[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
