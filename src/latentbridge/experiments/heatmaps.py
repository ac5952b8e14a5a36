"""Heatmaps of a run: every train (rows) × test (columns) pair of a dataset, per variant.

:func:`pair_matrix` averages one (dataset, variant, metric) over seeds into an E × E matrix
(``E`` encoders, NaN where n/a or not run). :func:`heatmap_grid` gathers the matrices of every
variant of a dataset with one colour scale shared by all of them, ``[vmin, vmax]`` = the
smallest and the largest finite value over all the panels, so that one colour means one value
across the variants; :func:`grid_png` draws them as small multiples with one colour bar, and
:func:`heatmap_png` one of them alone. The colour map is reversed where lower is better, so the
better cells are always the light ones; n/a cells are grey and hatched.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._plotting import figure, plain_text, png_bytes
from .results import MetricInfo, ResultRow
from .tables import NA, unique

__all__ = ["HeatmapGrid", "grid_png", "heatmap_grid", "heatmap_png", "pair_matrix", "shared_scale"]

#: Panels per row of a grid.
GRID_COLUMNS = 4
#: A grid writes the values in its cells up to this many encoders (matplotlib's text is slow:
#: 11 panels of 6 x 6 values take a second); a heatmap alone always writes them.
GRID_MAX_ANNOTATED = 5


def pair_matrix(
    rows: Sequence[ResultRow], dataset: str, variant: str, metric: str = "accuracy"
) -> tuple[list[str], np.ndarray]:
    """(encoders, matrix): ``matrix[i, j]`` is the mean over seeds of training on
    ``encoders[i]`` and testing on ``encoders[j]``; NaN where n/a or not run.

    ``encoders`` are all the encoders of ``dataset`` (any variant or metric), in order of first
    appearance, so every variant's matrix has the same axes. Raises :class:`ValueError` when
    there is no row for (dataset, variant, metric).
    """
    encoders = unique(e for r in rows if r.dataset == dataset for e in (r.source, r.target))
    index = {e: i for i, e in enumerate(encoders)}
    sums = np.zeros((len(encoders), len(encoders)))
    counts = np.zeros((len(encoders), len(encoders)))
    found = False
    for r in rows:
        if r.dataset == dataset and r.variant == variant and r.metric == metric:
            found = True
            if r.value is not None:
                i, j = index[r.source], index[r.target]
                sums[i, j] += r.value
                counts[i, j] += 1
    if not found:
        raise ValueError(f"no {metric!r} results for dataset {dataset!r}, variant {variant!r}")
    with np.errstate(invalid="ignore", divide="ignore"):
        matrix = np.where(counts > 0, sums / np.maximum(counts, 1), np.nan)
    return encoders, matrix


def shared_scale(matrices: Iterable[np.ndarray]) -> tuple[float, float]:
    """``(vmin, vmax)``: the smallest and largest finite value over all ``matrices``.

    A single value ``v`` gives ``(v - 0.5, v + 0.5)`` (the colour of ``v`` is the middle of the
    map); no finite value at all gives ``(0, 1)``.
    """
    finite = [m[np.isfinite(m)] for m in matrices]
    values = np.concatenate(finite) if finite else np.zeros(0)
    if values.size == 0:
        return 0.0, 1.0
    vmin, vmax = float(values.min()), float(values.max())
    return (vmin, vmax) if vmax > vmin else (vmin - 0.5, vmax + 0.5)


@dataclass(frozen=True)
class HeatmapGrid:
    """The heatmaps of one (dataset, metric): one E × E matrix per variant (in order of first
    appearance), on the encoders' common axes, and the colour scale they share."""

    dataset: str
    metric: MetricInfo
    encoders: list[str]
    variants: list[str]
    matrices: list[np.ndarray]
    vmin: float
    vmax: float


def heatmap_grid(rows: Sequence[ResultRow], dataset: str, metric: MetricInfo) -> HeatmapGrid:
    """Every variant's :func:`pair_matrix` of ``metric`` on ``dataset``, with their
    :func:`shared_scale`. Raises :class:`ValueError` when there is no such row."""
    variants = unique(r.variant for r in rows if r.dataset == dataset and r.metric == metric.name)
    if not variants:
        raise ValueError(f"no {metric.name!r} results for dataset {dataset!r}")
    matrices = [pair_matrix(rows, dataset, v, metric.name) for v in variants]
    encoders = matrices[0][0]
    vmin, vmax = shared_scale(m for _, m in matrices)
    return HeatmapGrid(dataset, metric, encoders, variants, [m for _, m in matrices], vmin, vmax)


def _decimals(vmin: float, vmax: float) -> int:
    """Digits after the point of a cell's value: 4 for small values (an MSE), else 2."""
    return 4 if max(abs(vmin), abs(vmax)) < 0.1 else 2


def _draw_panel(ax: Any, grid: HeatmapGrid, index: int, annotate: bool) -> Any:
    """Draw the matrix of ``grid.variants[index]`` on ``ax`` on the grid's scale; n/a cells
    grey and hatched; with ``annotate``, the values written in the cells. Returns the image."""
    from matplotlib.patches import Rectangle

    matrix = grid.matrices[index]
    lower = not grid.metric.higher_is_better
    cmap = "viridis_r" if lower else "viridis"
    image = ax.imshow(np.ma.masked_invalid(matrix), cmap=cmap, vmin=grid.vmin, vmax=grid.vmax)
    ax.set_facecolor("#d0d0d0")
    n = len(grid.encoders)
    decimals = _decimals(grid.vmin, grid.vmax)
    for i in range(n):
        for j in range(n):
            value = matrix[i, j]
            if np.isnan(value):
                hatch = Rectangle((j - 0.5, i - 0.5), 1, 1, facecolor="#d0d0d0")
                hatch.set(edgecolor="#808080", hatch="//", linewidth=0.0)
                ax.add_patch(hatch)
                if annotate:
                    ax.text(j, i, NA, ha="center", va="center", fontsize=7, color="black")
            elif annotate:
                level = (value - grid.vmin) / (grid.vmax - grid.vmin)
                light = level < 0.4 if lower else level > 0.6
                color = "black" if light else "white"
                text = f"{value:.{decimals}f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=7, color=color)
    ax.set_title(plain_text(grid.variants[index]), fontsize=9)
    return image


def _ticks(ax: Any, encoders: Sequence[str], x: bool, y: bool) -> None:
    """Encoder names on the x (rotated) and y axes of a panel, or no tick labels."""
    n = len(encoders)
    names = [plain_text(e) for e in encoders]
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels(names if x else [], rotation=45, ha="right", fontsize=7)
    ax.set_yticklabels(names if y else [], fontsize=7)


def grid_png(
    grid: HeatmapGrid, roles: tuple[str, str] = ("train encoder", "test encoder")
) -> bytes:
    """PNG bytes of ``grid`` as small multiples: one panel per variant, :data:`GRID_COLUMNS`
    per row, encoder names on the outer panels, the values in the cells up to
    :data:`GRID_MAX_ANNOTATED` encoders, and one colour bar for the shared scale."""
    count = len(grid.variants)
    columns = min(count, GRID_COLUMNS)
    lines = math.ceil(count / columns)
    side = max(2.0, 0.32 * len(grid.encoders) + 1.1)
    fig = figure(columns * side + 1.4, lines * side + 1.0, layout="constrained")
    axes = []
    for k in range(count):
        ax = fig.add_subplot(lines, columns, k + 1)
        image = _draw_panel(ax, grid, k, annotate=len(grid.encoders) <= GRID_MAX_ANNOTATED)
        _ticks(ax, grid.encoders, x=k + columns >= count, y=k % columns == 0)
        axes.append(ax)
    fig.colorbar(image, ax=axes, shrink=0.8, label=plain_text(grid.metric.title))
    order = "lower is better" if not grid.metric.higher_is_better else "higher is better"
    fig.suptitle(
        plain_text(
            f"{grid.dataset} — {grid.metric.title} ({order}): {roles[0]} (rows) × "
            f"{roles[1]} (columns), mean over seeds"
        ),
        fontsize=10,
    )
    return png_bytes(fig)


def heatmap_png(
    grid: HeatmapGrid, variant: str, roles: tuple[str, str] = ("train encoder", "test encoder")
) -> bytes:
    """PNG bytes of the heatmap of one variant of ``grid``, alone, on the grid's scale, with
    its colour bar and the axes named by ``roles``."""
    n = len(grid.encoders)
    size = max(3.5, 0.9 * n + 2.0)
    fig = figure(size + 1.0, size)
    ax = fig.add_subplot(1, 1, 1)
    image = _draw_panel(ax, grid, grid.variants.index(variant), annotate=True)
    _ticks(ax, grid.encoders, x=True, y=True)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=plain_text(grid.metric.name))
    ax.set_xlabel(plain_text(roles[1]))
    ax.set_ylabel(plain_text(roles[0]))
    ax.set_title(plain_text(f"{grid.dataset} — {variant} — {grid.metric.name}"))
    fig.tight_layout()  # faster than the constrained layout, and enough for one panel
    return png_bytes(fig)
