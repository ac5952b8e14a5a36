"""The resumable cell store every task of ``latentbridge run`` writes into.

A run is a list of *cells*; each cell is a small CSV of result rows (:data:`COLUMNS`) written
atomically to ``DIR/cells/`` when it finishes. ``DIR/results.csv`` is rebuilt from the finished
cells, in plan order, after every cell, so an interruption loses at most the cell in progress
and a restarted run skips every cell whose file exists. Model weights a task trains (the
reconstruction and graph tasks) are stored the same way under ``DIR/models/`` by
:func:`save_state` / :func:`load_state` (``torch.save`` of plain tensors, written atomically and
read back with ``weights_only=True``: nothing is unpickled), so a restart does not retrain them.

Opening a :class:`CellStore` (the start of every run) deletes the temporary files that writers
killed mid-write left anywhere in ``DIR`` (:func:`latentbridge._files.remove_stale_temps`
states which temporaries count as stale; those of a writer still running are kept).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from torch import Tensor

from .._files import remove_stale_temps, write_bytes_atomic

__all__ = [
    "COLUMNS",
    "RUN_SUBFOLDERS",
    "CellStore",
    "cell_path",
    "consolidate",
    "csv_text",
    "load_state",
    "model_path",
    "remove_run_temps",
    "save_state",
]

COLUMNS = ("dataset", "train_encoder", "test_encoder", "variant", "seed", "metric", "value")


def csv_text(rows: Sequence[Sequence[object]]) -> str:
    """``rows`` as CSV text with the :data:`COLUMNS` header."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(rows)
    return buffer.getvalue()


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def cell_path(out: Path, dataset: str, variant: str, seed: int, encoder: str) -> Path:
    """Where the cell (dataset, variant, seed, train encoder) is stored."""
    ident = json.dumps([dataset, variant, seed, encoder])
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return out / "cells" / f"{_safe(f'{dataset}__{variant}')}__s{seed}__{digest}.csv"


def consolidate(out: Path, order: Sequence[Path]) -> Path:
    """Rebuild ``out/results.csv`` from the finished cells of ``order``; returns its path."""
    rows: list[list[str]] = []
    for path in order:
        if path.is_file():
            with path.open(encoding="utf-8", newline="") as handle:
                reader = csv.reader(handle)
                next(reader, None)
                rows.extend(reader)
    target = out / "results.csv"
    write_bytes_atomic(target, csv_text(rows).encode("utf-8"))
    return target


#: The sub-folders a run writes (besides files at its top level).
RUN_SUBFOLDERS = ("cells", "models", "heatmaps", "charts", "grids")


def remove_run_temps(out: Path) -> list[Path]:
    """Delete what killed writers left in the run folder ``out`` (tagged temporaries only).

    Searched: ``out`` itself and the sub-folders a run writes, never the rest of a folder the
    user chose, and never a file the library did not name.
    """
    removed = remove_stale_temps(out)
    for sub in RUN_SUBFOLDERS:
        removed += remove_stale_temps(out / sub, recursive=True)
    return removed


class CellStore:
    """The cells of one run, in plan order: ``store.compute(path, make_rows)`` runs a cell once."""

    def __init__(self, out: Path) -> None:
        self.out = out
        self.order: list[Path] = []
        remove_run_temps(out)

    def path(self, dataset: str, variant: str, seed: int, encoder: str) -> Path:
        return cell_path(self.out, dataset, variant, seed, encoder)

    def done(self, path: Path) -> bool:
        return path.is_file()

    def compute(self, path: Path, make_rows: Callable[[], list[list[object]]]) -> bool:
        """Add ``path`` to the plan; compute and store its rows unless finished. True if run."""
        self.order.append(path)
        if path.is_file():
            return False
        rows = make_rows()
        write_bytes_atomic(path, csv_text(rows).encode("utf-8"))
        consolidate(self.out, self.order)
        return True

    def consolidate(self) -> Path:
        return consolidate(self.out, self.order)


def model_path(out: Path, dataset: str, variant: str, model: str) -> Path:
    """Where a task stores the weights of ``model`` trained for ``variant`` on ``dataset``."""
    ident = json.dumps([dataset, variant, model])
    digest = hashlib.sha256(ident.encode()).hexdigest()[:12]
    return out / "models" / _safe(dataset) / f"{_safe(f'{variant}__{model}')}__{digest}.pt"


def save_state(path: Path, state: dict[str, Tensor]) -> None:
    """Store a state_dict atomically (plain tensors only)."""
    buffer = io.BytesIO()
    torch.save({k: v.detach().cpu().contiguous() for k, v in state.items()}, buffer)
    write_bytes_atomic(path, buffer.getvalue())


def load_state(path: Path) -> dict[str, Tensor] | None:
    """The state_dict stored at ``path``, or None when absent or unreadable (then retrained)."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # a truncated or foreign file: the caller retrains
        return None
    if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
        return None
    return state
