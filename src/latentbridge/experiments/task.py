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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from .config import DatasetConfig, RunConfig
from .results import CellStore, MetricInfo, ResultRow
from .tables import Section

__all__ = ["Cell", "MetricInfo", "Plan", "RunContext", "Task"]


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

    def done(self, cell: Cell) -> bool:
        """Whether ``cell`` is already stored (a resumed run skips it)."""
        return self.store.done(self.store.path(cell.dataset, cell.variant, cell.seed, cell.source))


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
