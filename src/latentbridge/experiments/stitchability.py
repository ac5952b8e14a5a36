"""Stitchability: does the label-free anchor consistency tell which stitched models work?

Every stitched cell of a stitching task records, next to its real metrics (accuracy, macro-F1;
MSE, PSNR), the ``anchor_consistency`` of the stitched model (:data:`.results.CONSISTENCY`,
see :mod:`latentbridge.stitching`): an estimate that needs no labels. This module pairs each
consistency value with the real metric of the same (dataset, source, target, variant, seed)
and measures, per dataset, how well the estimate ranks the stitched models: Spearman's rank
correlation over every (pair, variant, seed) point of the dataset. A useful estimate has a ρ
near 1, or near -1 for a metric where lower is better (MSE).

:func:`stitchability_section` is the report's section for one real metric: a table
"Dataset | Spearman ρ | points" (every variant, then the selection's candidates only) and, per
dataset, a scatter plot (x: anchor consistency, y: the
metric, one colour per variant) written to ``charts/``.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .._plotting import figure, plain_text, png_bytes
from .results import CONSISTENCY, MetricInfo, ResultRow
from .tables import NA, Cell, Figure, Section, Table, slug, unique
from .variants import Selection, Variant, candidates, parse

__all__ = ["Point", "spearman", "stitchability_points", "stitchability_section"]

_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n, tied values sharing the mean of the ranks they span."""
    _, inverse, counts = np.unique(values, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)
    return (ends - (counts - 1) / 2.0)[inverse.reshape(-1)]


def spearman(x: Sequence[float] | np.ndarray, y: Sequence[float] | np.ndarray) -> float | None:
    """Spearman's rank correlation of ``x`` and ``y``: the Pearson correlation of their ranks,
    tied values sharing their average rank (as ``scipy.stats.spearmanr``).

    Returns None with fewer than 3 points or when either input is constant (undefined).
    Raises :class:`ValueError` for inputs of different lengths, not 1-D, or not finite.
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.ndim != 1 or b.ndim != 1 or a.shape != b.shape:
        raise ValueError(f"spearman needs two 1-D inputs of one length, got {a.shape}, {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("spearman needs finite values")
    if a.size < 3 or np.all(a == a[0]) or np.all(b == b[0]):
        return None
    ra = _average_ranks(a)
    rb = _average_ranks(b)
    ra -= ra.mean()
    rb -= rb.mean()
    rho = float(np.dot(ra, rb) / math.sqrt(float(np.dot(ra, ra)) * float(np.dot(rb, rb))))
    return min(1.0, max(-1.0, rho))


@dataclass(frozen=True)
class Point:
    """One stitched model: its variant, its anchor consistency and its real metric value."""

    variant: str
    consistency: float
    value: float


def stitchability_points(rows: Sequence[ResultRow], metric: str) -> dict[str, list[Point]]:
    """Per dataset (in order of first appearance of its consistency rows), every stitched
    (source, target, variant, seed) that has both an anchor consistency and a ``metric`` value
    (n/a values are left out), in the order of the ``metric`` rows.

    Every dataset with consistency rows is a key, possibly with no point.
    """
    consistency: dict[tuple[str, str, str, str, int], float] = {}
    datasets: list[str] = []
    for r in rows:
        if r.metric == CONSISTENCY and r.stitched:
            datasets.append(r.dataset)
            if r.value is not None:
                consistency[r.key[:5]] = r.value
    points: dict[str, list[Point]] = {d: [] for d in unique(datasets)}
    for r in rows:
        if r.metric == metric and r.stitched and r.value is not None:
            estimate = consistency.get(r.key[:5])
            if estimate is not None:
                points[r.dataset].append(Point(r.variant, estimate, r.value))
    return points


def _rho(points: Sequence[Point]) -> float | None:
    return spearman([p.consistency for p in points], [p.value for p in points])


def _variant(name: str) -> Variant | None:
    """The variant called ``name``, or None for a name of no known family (e.g. another
    registry's)."""
    try:
        return parse(name)
    except ValueError:
        return None


def _rho_text(rho: float | None) -> str:
    return NA if rho is None else f"{rho:.3f}"


def scatter_png(dataset: str, points: Sequence[Point], metric: MetricInfo) -> bytes:
    """The scatter plot of one dataset: x the anchor consistency, y ``metric``, one colour (and
    legend entry) per variant in order of first appearance; Spearman ρ and n in the title."""
    fig = figure(4.5, 3.5)
    ax = fig.add_subplot(1, 1, 1)
    variants = unique(p.variant for p in points)
    for j, variant in enumerate(variants):
        mine = [p for p in points if p.variant == variant]
        ax.scatter(
            [p.consistency for p in mine],
            [p.value for p in mine],
            s=14,
            alpha=0.8,
            color=f"C{j % 10}",
            marker=_MARKERS[(j // 10) % len(_MARKERS)],
            label=plain_text(variant),
        )
    ax.set_xlim(-0.03, 1.03)
    ax.set_xlabel("anchor consistency")
    ax.set_ylabel(plain_text(metric.title))
    rho = _rho_text(_rho(points))
    ax.set_title(plain_text(f"{dataset} — Spearman ρ = {rho}, n = {len(points)}"), fontsize=9)
    ax.grid(alpha=0.3)
    if variants:
        ax.legend(fontsize=6, loc="best", framealpha=0.7)
    fig.tight_layout()
    return png_bytes(fig)


def _files(datasets: Sequence[str], metric: str) -> dict[str, str]:
    """Collision-free file names (under ``charts/``) of the datasets' scatter plots."""
    plain = {d: f"charts/stitchability__{slug(d)}__{slug(metric)}" for d in datasets}
    taken = list(plain.values())
    out = {}
    for d, name in plain.items():
        if taken.count(name) > 1:  # lossy slugs collide: disambiguate with a digest of the name
            name = f"{name}-{hashlib.sha1(d.encode('utf-8')).hexdigest()[:8]}"
        out[d] = f"{name}.png"
    return out


def stitchability_section(rows: Sequence[ResultRow], metric: MetricInfo) -> Section | None:
    """How well the anchor consistency predicts ``metric`` on the stitched pairs.

    A table "Dataset | Spearman ρ | points | ρ, selection candidates | points" (every trained
    variant, ``selected`` and ``ensemble`` left out; then the single projections and products;
    ρ ``n/a`` with fewer than 3 points or a constant input) and, for each dataset with points,
    a scatter plot (:func:`scatter_png`). None when ``rows`` hold no anchor consistency (e.g.
    a run recorded before it existed).
    """
    points = stitchability_points(rows, metric.name)
    if not points:
        return None
    table = Table(["Dataset", "Spearman ρ", "points", "ρ, selection candidates", "points"], [])
    for dataset, found in points.items():
        # `selected` and `ensemble` repeat or mix their candidates' points: plotted, not in ρ
        kinds = {p.variant: _variant(p.variant) for p in found}
        eligible = {n for n, v in kinds.items() if v is not None and candidates([v])}
        trained = [p for p in found if not isinstance(kinds[p.variant], Selection)]
        pool = [p for p in trained if p.variant in eligible]
        table.rows.append(
            [
                Cell(dataset),
                Cell(_rho_text(_rho(trained))),
                Cell(str(len(trained))),
                Cell(_rho_text(_rho(pool))),
                Cell(str(len(pool))),
            ]
        )
    if metric.higher_is_better:
        good = f"a positive ρ, near 1 (the higher the consistency, the higher the {metric.title})"
    else:
        good = f"a negative ρ, near -1 (the higher the consistency, the lower the {metric.title})"
    table.notes.append(
        f"Each point is one stitched (pair, variant, seed): its label-free anchor consistency "
        f"against its {metric.title}. ρ is Spearman's rank correlation over the points of the "
        f"dataset, every trained variant pooled (the selections `selected` and `ensemble`, whose "
        f"points repeat or mix their candidates', are plotted but left out), then over the "
        f"variants a zero-shot selection chooses among (single projections and products); a "
        f"good estimate has {good}. n/a: fewer than 3 points or a constant input."
    )
    section = Section(f"Stitchability: {metric.title} against anchor consistency")
    section.tables.append(("Spearman correlation (stitched pairs)", table))
    files = _files(list(points), metric.name)
    for dataset, found in points.items():
        if found:
            png = scatter_png(dataset, found, metric)
            caption = f"{dataset} — {metric.title} against anchor consistency"
            section.figures.append(Figure(caption, png, files[dataset]))
    return section
