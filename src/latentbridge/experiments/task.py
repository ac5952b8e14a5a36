"""The task plug-in protocol of ``latentbridge run``.

A task (classification, reconstruction, graph, similarity) turns one dataset of a config into
*cells*: small units of work that each produce the result rows of one (variant, seed, source)
and are stored, resumed and consolidated by the runner (:mod:`.runner`). A task never runs the
loop itself, never writes ``results.csv`` and never imports another task. Adding a task means
writing one module under ``tasks/`` that implements :class:`Task` and adding it to
:data:`~latentbridge.experiments.tasks.TASKS`.

``plan`` must be cheap: it lists the cells and returns. Loading data and training happen inside
a cell's ``compute`` (shared between the cells of a dataset through lazily built state), so a
resumed run whose cells are all finished loads and trains nothing.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

from .._ray import connected
from .config import DatasetConfig, RunConfig
from .results import CellStore, MetricInfo, ResultRow
from .tables import Section

__all__ = ["Cell", "MetricInfo", "Plan", "RunContext", "Shared", "Task"]

T = TypeVar("T")


@dataclass(frozen=True)
class Cell:
    """One unit of work: the rows of (``dataset``, ``variant``, ``seed``, ``source``).

    ``compute()`` returns every row of the cell (each target, each metric).
    """

    dataset: str
    variant: str
    seed: int
    source: str
    compute: Callable[[], list[ResultRow]]
    #: Cells with the same key (not None) compute together, in one process (e.g. heads that
    #: train as one stack); None: on their own. Only a distributed executor reads it.
    batch: Hashable = None
    #: A cell of stage ``s`` may read what the cells of earlier stages of its plan wrote
    #: (e.g. a selection reads its candidates' outputs); the plan lists them in stage order.
    stage: int = 0


@dataclass
class Plan:
    """The cells of one dataset, and what to do once they are all stored (e.g. image grids)."""

    cells: list[Cell]
    finish: Callable[[], None] | None = None


@dataclass
class RunContext:
    """What a task may use of the run: its folder and cell store, the embedding cache,
    whether to draw progress bars, and a logger."""

    out: Path
    store: CellStore
    cache: Any = None
    progress: bool = True
    log: Callable[[str], None] = field(default=lambda message: None)
    #: How the run computes (``local`` or ``ray``): a task may encode missing latents with it.
    executor: str = "local"

    def done(self, cell: Cell) -> bool:
        """Whether ``cell`` is already stored (a resumed run skips it)."""
        return self.store.done(self.store.path(cell.dataset, cell.variant, cell.seed, cell.source))


class Shared(Generic[T]):
    """A value built on first use and shared by the cells of a dataset (its loaded latents,
    say): ``shared()`` builds it once per process.

    Picklable, so cells that use it can run in other processes. Pickled while a Ray instance
    is connected (a distributed run's driver), the built value goes to Ray's object store once
    and only its reference travels with each cell; each worker process reads it from there once.
    Elsewhere it travels as its recipe and is built again where it is used.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._built = False
        self._value: T | None = None
        self._ref: Any = None

    def __call__(self) -> T:
        with self._lock:
            if not self._built:
                self._value = self._build()
                self._built = True
        return self._value  # type: ignore[return-value]

    def __reduce__(self) -> tuple[Any, ...]:
        ray = connected()
        if ray is None:
            return (Shared, (self._build,))
        if self._ref is None:
            self._ref = ray.put(self())
        return (_shared_from_store, (self._ref,))


_FROM_STORE: dict[Any, Shared[Any]] = {}


def _shared_from_store(ref: Any) -> Shared[Any]:
    """In a worker: the shared value of ``ref``, read from Ray's object store once per process."""
    key = ref.hex()
    if key not in _FROM_STORE:
        import ray

        _FROM_STORE[key] = Shared(lambda: ray.get(ref))
    return _FROM_STORE[key]


class Task(Protocol):
    """A family of experiments: its metrics, the cells of a dataset, its report sections."""

    name: str
    metrics: tuple[MetricInfo, ...]
    #: What the ``source`` and ``target`` columns hold, e.g. ("train encoder", "test encoder").
    roles: tuple[str, str]
    #: How to read the results, shown at the top of the report.
    note: str

    def plan(self, dataset: DatasetConfig, config: RunConfig, context: RunContext) -> Plan:
        """The cells of ``dataset`` (cheap: nothing is loaded until a cell computes)."""
        ...

    def sections(self, rows: Sequence[ResultRow], metric: MetricInfo) -> list[Section]:
        """What the report shows of ``metric`` for this task's rows (tables and figures)."""
        ...
