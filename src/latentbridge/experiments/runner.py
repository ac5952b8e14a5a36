"""``latentbridge run``: check a config, claim its folder, run every cell of its task, resume.

The runner owns the loop every task shares: the config is checked before anything is written
(:func:`~.config.check_runnable`), the output folder is claimed (:func:`claim_folder`), the task
plug-in (:data:`~.tasks.TASKS`) plans the cells of each dataset, and each cell that is not
finished is computed and stored atomically (:class:`~.results.CellStore`), with one progress
bar over all the cells of the run. ``results.csv`` is rebuilt after every cell, so an
interruption loses at most the cell in progress; running again resumes.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from .._files import write_bytes_atomic
from .._progress import progress_bar
from .._ray import import_ray, session
from ..stitching import ENSEMBLE_TEMPERATURE
from .config import TASKS as TASK_NAMES
from .config import RunConfig, check_runnable, parse_seeds
from .report import write_report
from .results import CellStore, ResultRow
from .task import Cell, Plan, RunContext
from .tasks import TASKS

__all__ = ["claim_folder", "folder_config", "run"]

if set(TASKS) != set(TASK_NAMES):  # the config's schema and the plug-ins name the same tasks
    raise ImportError(f"task plug-ins {sorted(TASKS)} differ from the config's {TASK_NAMES}")


def _same_config(stored: dict[str, Any], current: dict[str, Any]) -> bool:
    """Whether a run folder's config.json describes ``current``.

    Keys a newer version added (absent from ``stored``) match when ``current`` holds their
    default, so folders written before a field existed still resume.
    """
    defaults = RunConfig(name="", datasets=()).to_dict()
    for key, value in current.items():
        if key in stored:
            if stored[key] != value:
                return False
        elif value != defaults.get(key, object()):
            return False
    return set(stored) <= set(current)


def folder_config(config: RunConfig) -> dict[str, Any]:
    """What a run folder's ``config.json`` stores: ``config.to_dict()`` without ``device``
    (a run may resume on another device; its values then differ by rounding) and, for a run with
    ``variants.selection``, the library's ensemble temperature
    (``variants.ensemble_temperature``, :data:`latentbridge.stitching.ENSEMBLE_TEMPERATURE`),
    so that a folder whose ensemble cells were computed with another temperature is refused
    rather than resumed with them."""
    stored = json.loads(json.dumps(config.to_dict()))
    stored.pop("device", None)  # where it ran is not what it computes: a run may move
    if config.variants.selection:
        stored["variants"]["ensemble_temperature"] = ENSEMBLE_TEMPERATURE
    return stored


def _finished_work(out: Path) -> list[Path]:
    """Finished cells and stored model weights in ``out``: a run's results, worth keeping."""
    found = sorted((out / "cells").glob("*.csv"))
    return found or sorted((out / "models").glob("**/*.pt"))


def claim_folder(out: Path, current: dict[str, Any]) -> None:
    """Make ``out`` the folder of the config ``current``, or refuse another config's results.

    The same config resumes. A folder without finished work (say, left by a run that failed
    before its first cell) takes the new config; one holding another config's cells or models,
    or finished work and no readable ``config.json``, is refused rather than mixed in.
    """
    if out.exists() and not out.is_dir():
        raise ValueError(f"out_dir {str(out)!r} is a file, not a folder")
    config_file = out / "config.json"
    if config_file.is_file():
        try:
            stored = json.loads(config_file.read_text(encoding="utf-8"))
        except ValueError:
            stored = None  # unreadable: it describes no config
        if isinstance(stored, dict) and _same_config(stored, current):
            return
    finished = _finished_work(out) if out.is_dir() else []
    if finished:
        if config_file.is_file():
            where = f"see {config_file}"
        else:
            where = f"e.g. {finished[0]}, and no {config_file.name} to say which"
        raise ValueError(
            f"{out} holds the results of a different config ({where}); resume with the same "
            "config and seeds, or choose another --out"
        )
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(current, indent=2, sort_keys=True)
    write_bytes_atomic(config_file, text.encode("utf-8"))


EXECUTORS = ("local", "ray")


def run(
    config: RunConfig,
    out_dir: str | os.PathLike[str],
    *,
    seeds: Sequence[int] | None = None,
    cache: Any = None,
    progress: bool = True,
    report: bool = True,
    log: Callable[[str], None] | None = None,
    executor: str = "local",
    address: str | None = None,
    max_parallel: int | None = None,
) -> Path:
    """Run (or resume) ``config`` into ``out_dir``; returns the path of ``results.csv``.

    ``seeds`` replaces ``config.seeds``. Everything that can be checked without loading data
    is checked before ``out_dir`` is touched (:func:`~.config.check_runnable`): a bad config
    raises ``ConfigError`` (a ``ValueError``) and writes nothing. ``out_dir`` resumes the run
    of the same config; it takes a new config while it holds no finished cells or models, and
    refuses (``ValueError``) a config other than the one its results come from.

    ``executor="local"`` computes the cells one after another in this process; ``"ray"``
    computes them as Ray tasks (:func:`_run_on_ray`: on the cluster at ``address``, else on a
    Ray instance started here and stopped at the end; at most ``max_parallel`` at once), with
    the same bytes in ``results.csv``.
    """
    if executor not in EXECUTORS:
        raise ValueError(f"executor must be one of {list(EXECUTORS)}, got {executor!r}")
    if max_parallel is not None and (
        isinstance(max_parallel, bool) or not isinstance(max_parallel, int) or max_parallel < 1
    ):
        raise ValueError(f"max_parallel must be an integer >= 1, got {max_parallel!r}")
    if seeds is not None:
        config = replace(config, seeds=parse_seeds(seeds, "seeds"))
    check_runnable(config)
    if executor == "ray":
        import_ray()  # before the folder is touched: without Ray, a clear error
    out = Path(out_dir)
    claim_folder(out, folder_config(config))
    store = CellStore(out)
    context = RunContext(out, store, cache, progress, log or (lambda message: None), executor)
    task = TASKS[config.task]
    plans = [task.plan(ds, config, context) for ds in config.datasets]
    bar = progress_bar(sum(len(p.cells) for p in plans), "cells", enabled=progress)
    try:
        if executor == "local":
            for plan in plans:
                for cell in plan.cells:
                    store.compute(_path(store, cell), cell.compute)
                    bar.update(1)
                if plan.finish is not None:
                    plan.finish()
        else:
            _run_on_ray(plans, store, bar, address, max_parallel, config.device)
    finally:
        bar.close()
    results = store.consolidate()
    if report:
        write_report(out)
    return results


def _path(store: CellStore, cell: Cell) -> Path:
    return store.path(cell.dataset, cell.variant, cell.seed, cell.source)


def _compute_batch(computes: list[Callable[[], list[ResultRow]]], threads: int) -> list[Any]:
    """A Ray task: the rows of each cell of a batch, computed with the driver's torch thread
    count (so that every result is the bytes a local run computes)."""
    import torch

    torch.set_num_threads(threads)
    return [compute() for compute in computes]


def _batches(cells: Sequence[Cell]) -> list[list[Cell]]:
    """``cells`` grouped by their ``batch`` key (None: alone), in the order they come."""
    keyed: dict[Any, list[Cell]] = {}
    alone: list[list[Cell]] = []
    order: list[list[Cell]] = []
    for cell in cells:
        if cell.batch is None:
            alone.append([cell])
            order.append(alone[-1])
        elif cell.batch in keyed:
            keyed[cell.batch].append(cell)
        else:
            keyed[cell.batch] = [cell]
            order.append(keyed[cell.batch])
    return order


def _run_on_ray(
    plans: Sequence[Plan],
    store: CellStore,
    bar: Any,
    address: str | None,
    max_parallel: int | None,
    device: str,
) -> None:
    """The unfinished cells of ``plans`` as Ray tasks, one per batch of cells (:class:`Cell`
    ``batch``), stage after stage, at most ``max_parallel`` at a time (default: as many as the
    cluster's CPUs hold, each task reserving the driver's torch thread count, or its GPUs with
    a CUDA device). The driver writes each finished cell atomically into the
    cell store, as a local run does, so an interrupted run resumes with either executor; a
    task whose worker fails or raises is retried by Ray (twice)."""
    import torch

    with session(address) as ray:
        # A task computes with the driver's torch thread count (the bytes of a local run) and
        # reserves as many CPUs (no oversubscription), at most a node's: OMP_NUM_THREADS=1 on
        # the driver gives the most tasks at once.
        largest = max(
            (n["Resources"].get("CPU", 1) for n in ray.nodes() if n.get("Alive")), default=1
        )
        threads = max(1, min(torch.get_num_threads(), int(largest)))
        gpu = device != "cpu" and torch.cuda.is_available()
        resources: dict[str, int] = {"num_cpus": threads}
        if gpu:
            resources["num_gpus"] = 1
        total = ray.cluster_resources()
        fit = int(total.get("GPU", 1)) if gpu else int(total.get("CPU", 1)) // threads
        limit = max_parallel or max(1, fit)
        remote = ray.remote(max_retries=2, retry_exceptions=True, **resources)(_compute_batch)
        for plan in plans:
            todo = []
            for cell in plan.cells:
                store.add(_path(store, cell))
                if store.done(_path(store, cell)):
                    bar.update(1)
                else:
                    todo.append(cell)
            for stage in sorted({c.stage for c in todo}):
                queue = _batches([c for c in todo if c.stage == stage])
                running: dict[Any, list[Cell]] = {}
                while queue or running:
                    while queue and len(running) < limit:
                        batch = queue.pop(0)
                        running[remote.remote([c.compute for c in batch], threads)] = batch
                    ready, _ = ray.wait(list(running), num_returns=1)
                    for ref in ready:
                        batch = running.pop(ref)
                        for cell, rows in zip(batch, ray.get(ref), strict=True):
                            store.write(_path(store, cell), rows)
                            bar.update(1)
            if plan.finish is not None:
                plan.finish()
