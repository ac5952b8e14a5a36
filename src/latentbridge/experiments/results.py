"""Result rows, their columns, and the resumable cell store every task writes into.

A result is one :class:`ResultRow`: which ``dataset``, which ``source`` and ``target`` (the
encoder or model a head was trained on and the one it was evaluated with; for the similarity
study the two encoders compared), which ``variant`` (the space, see :mod:`.variants`; for the
similarity study the invariance class), which ``seed``, which ``metric``, and its ``value``, a
float or None where the metric does not apply. A row is *stitched* when source and target
differ. Computing produces rows; writing formats them (six decimals, empty for None), once,
here.

A run is a list of *cells*; each cell is a small CSV of result rows (:data:`COLUMNS`) written
atomically to ``DIR/cells/`` when it finishes. ``DIR/results.csv`` is rebuilt from the finished
cells, in plan order, after every cell, so an interruption loses at most the cell in progress
and a restarted run skips every cell whose file exists. Model weights a task trains (the
reconstruction and graph tasks) are stored the same way under ``DIR/models/`` by
:func:`save_state` / :func:`load_state` (``torch.save`` of plain tensors, written atomically and
read back with ``weights_only=True``: nothing is unpickled), so a restart does not retrain them.

Opening a :class:`CellStore` (the start of every run) deletes the temporary files that writers
killed mid-write left in ``DIR`` (:func:`remove_run_temps`; those of a writer still running are
kept). Files written by versions that named the encoder columns ``train_encoder`` and
``test_encoder`` are read as ``source`` and ``target``.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from .._files import remove_stale_temps, write_bytes_atomic

__all__ = [
    "COLUMNS",
    "CONSISTENCY",
    "CONSISTENCY_METRIC",
    "RUN_SUBFOLDERS",
    "CellStore",
    "MetricInfo",
    "ResultRow",
    "cell_path",
    "consolidate",
    "csv_text",
    "format_value",
    "load_state",
    "model_path",
    "read_results",
    "remove_run_temps",
    "save_state",
]

#: The columns of ``results.csv`` and of every cell, in order.
COLUMNS: tuple[str, ...] = ("dataset", "source", "target", "variant", "seed", "metric", "value")
# Older files' names for source and target.
_ALIASES = {"train_encoder": "source", "test_encoder": "target"}


@dataclass(frozen=True)
class ResultRow:
    """One tidy result: ``value`` is ``None`` where the metric does not apply."""

    dataset: str
    source: str
    target: str
    variant: str
    seed: int
    metric: str
    value: float | None

    @property
    def stitched(self) -> bool:
        """True when the source (trained on) and the target (evaluated with) differ."""
        return self.source != self.target

    @property
    def key(self) -> tuple[str, str, str, str, int, str]:
        return (self.dataset, self.source, self.target, self.variant, self.seed, self.metric)


@dataclass(frozen=True)
class MetricInfo:
    """A metric a task reports: its name in ``results.csv``, its title, its range and order."""

    name: str
    title: str
    low: float = -math.inf
    high: float = math.inf
    higher_is_better: bool = True


#: The label-free anchor consistency every task records for its stitched pairs
#: (:mod:`latentbridge.stitching`): how far the stitched model agrees, on the parallel anchors,
#: with the model it came from.
CONSISTENCY = "anchor_consistency"
CONSISTENCY_METRIC = MetricInfo(CONSISTENCY, "Anchor consistency", 0.0, 1.0)


def format_value(value: float | None) -> str:
    """A value as written to a CSV file: six decimals (no negative zero), empty for None."""
    if value is None:
        return ""
    text = f"{value:.6f}"
    return "0.000000" if text == "-0.000000" else text


def csv_text(rows: Sequence[ResultRow]) -> str:
    """``rows`` as CSV text with the :data:`COLUMNS` header."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows([*r.key, format_value(r.value)] for r in rows)
    return buffer.getvalue()


def _bad(path: Path, line: int, message: str) -> ValueError:
    return ValueError(f"{path}, line {line}: {message}")


def _header_index(file: Path, header: list[str]) -> dict[str, int]:
    names = [_ALIASES.get(name.strip(), name.strip()) for name in header]
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise _bad(file, 1, f"missing column(s) {', '.join(missing)}; expected {COLUMNS}")
    return {c: names.index(c) for c in COLUMNS}


def _parse_value(file: Path, line: int, raw: str, metric: str, ranges: Mapping) -> float | None:
    if raw == "":
        return None
    try:
        value = float(raw)
    except ValueError:
        raise _bad(file, line, f"value {raw!r} is not a number (or empty for n/a)") from None
    low, high = ranges.get(metric, (-math.inf, math.inf))
    if not math.isfinite(value) or not low <= value <= high:
        raise _bad(
            file,
            line,
            f"value {raw!r} of {metric} is not a finite number in [{low:g}, {high:g}] "
            "(empty for n/a)",
        )
    return value


def read_results(
    path: str | os.PathLike[str],
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> list[ResultRow]:
    """Read and validate a tidy ``results.csv``; rows keep the file's order.

    Raises :class:`ValueError` naming the file and line for a missing column, a row with the
    wrong number of fields, an empty name, a non-integer seed, a value that is not a finite
    number in its metric's range (``ranges``: metric -> (low, high), inclusive; any finite
    number for a metric not listed) or empty (not applicable), and a duplicated result key.
    Extra columns are ignored.
    """
    file = Path(path)
    ranges = ranges or {}
    rows: list[ResultRow] = []
    seen: dict[tuple[str, str, str, str, int, str], int] = {}
    with file.open(encoding="utf-8-sig", newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise _bad(file, 1, "empty file, expected a header row") from None
        index = _header_index(file, header)
        for record in reader:
            line = reader.line_num
            if not record or all(not cell.strip() for cell in record):
                continue  # blank line
            if len(record) != len(header):
                raise _bad(file, line, f"expected {len(header)} fields, found {len(record)}")
            raw = {c: record[i].strip() for c, i in index.items()}
            for c in ("dataset", "source", "target", "variant", "metric"):
                if not raw[c]:
                    raise _bad(file, line, f"empty {c}")
            try:
                seed = int(raw["seed"])
            except ValueError:
                raise _bad(file, line, f"seed {raw['seed']!r} is not an integer") from None
            row = ResultRow(
                raw["dataset"],
                raw["source"],
                raw["target"],
                raw["variant"],
                seed,
                raw["metric"],
                _parse_value(file, line, raw["value"], raw["metric"], ranges),
            )
            if row.key in seen:
                raise _bad(file, line, f"duplicate result, first given on line {seen[row.key]}")
            seen[row.key] = line
            rows.append(row)
    return rows


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text)


def cell_path(out: Path, dataset: str, variant: str, seed: int, encoder: str) -> Path:
    """Where the cell (dataset, variant, seed, train encoder) is stored."""
    ident = json.dumps([dataset, variant, seed, encoder])
    digest = hashlib.sha256(ident.encode()).hexdigest()[:16]
    return out / "cells" / f"{_safe(f'{dataset}__{variant}')}__s{seed}__{digest}.csv"


def consolidate(out: Path, order: Sequence[Path]) -> Path:
    """Rebuild ``out/results.csv`` from the finished cells of ``order``; returns its path."""
    records: list[list[str]] = []
    for path in order:
        if path.is_file():
            with path.open(encoding="utf-8", newline="") as handle:
                reader = csv.reader(handle)
                next(reader, None)
                records.extend(reader)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(records)  # cells hold formatted rows in the column order
    target = out / "results.csv"
    write_bytes_atomic(target, buffer.getvalue().encode("utf-8"))
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

    def compute(self, path: Path, make_rows: Callable[[], list[ResultRow]]) -> bool:
        """Add ``path`` to the plan; compute and store its rows unless finished. True if run."""
        self.add(path)
        if path.is_file():
            return False
        self.write(path, make_rows())
        return True

    def add(self, path: Path) -> None:
        """Add ``path`` to the plan (the order of ``results.csv``), computed or not."""
        self.order.append(path)

    def write(self, path: Path, rows: list[ResultRow]) -> None:
        """Store the rows of the cell ``path`` atomically and rebuild ``results.csv``."""
        write_bytes_atomic(path, csv_text(rows).encode("utf-8"))
        consolidate(self.out, self.order)

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
