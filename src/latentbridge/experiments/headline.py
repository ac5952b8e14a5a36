"""The headline of a run: which variant stitches best, and how far from the non-stitched reference?

For one (dataset, metric), every variant is a bar: its stitched ``mean ± std`` (the pooled
values of the pairs whose source differs from the target, as in the summary table, :mod:`.tables`)
next to its non-stitched reference (the ``source == target`` pairs) and, where it is known, the
chance level. The bars are ordered best first, by the stitched mean, following the metric's
``higher_is_better`` (:class:`.results.MetricInfo`); ties keep the order of first appearance,
and variants with no applicable stitched value come last. The best stitched variant is the first
bar, highlighted.

The chance level is drawn for accuracy only: a uniform random guess among ``C`` classes is right
with probability ``1 / C`` whatever the class balance (no such closed form holds for macro-F1 on
unbalanced classes, nor for the other metrics).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .._plotting import figure, plain_text, png_bytes
from .results import MetricInfo, ResultRow
from .tables import NA, Cell, Stat, Table, collect, fmt, stat, unique

__all__ = ["Bar", "Headline", "caption", "chance_level", "glance_table", "headline", "headline_png"]

#: The colours of the bars: the best stitched variant, the others.
BEST_COLOUR = "#d95f02"
OTHER_COLOUR = "#9db9d3"


@dataclass(frozen=True)
class Bar:
    """One variant: its stitched and its non-stitched statistics (None: no such rows)."""

    variant: str
    stitched: Stat | None
    reference: Stat | None

    @property
    def mean(self) -> float | None:
        """The stitched mean, None when no stitched value applies."""
        return None if self.stitched is None else self.stitched.mean


@dataclass(frozen=True)
class Headline:
    """The bars of one (dataset, metric), best first, and the chance level (None: unknown or
    not defined for the metric)."""

    dataset: str
    metric: MetricInfo
    bars: list[Bar]
    chance: float | None = None

    @property
    def best(self) -> Bar | None:
        """The best stitched variant, None when no variant has a stitched value."""
        return self.bars[0] if self.bars and self.bars[0].mean is not None else None


def chance_level(metric: str, num_classes: int | None) -> float | None:
    """The expected ``metric`` of a uniform random guess among ``num_classes`` classes:
    ``1 / num_classes`` for accuracy; None for another metric or an unknown number."""
    if metric != "accuracy" or num_classes is None or num_classes < 1:
        return None
    return 1.0 / num_classes


def headline(
    rows: Sequence[ResultRow], dataset: str, metric: MetricInfo, chance: float | None = None
) -> Headline:
    """The :class:`Headline` of ``metric`` on ``dataset``: one bar per variant of its rows, best
    first. Raises :class:`ValueError` when there is no such row."""
    variants = unique(r.variant for r in rows if r.dataset == dataset and r.metric == metric.name)
    if not variants:
        raise ValueError(f"no {metric.name!r} results for dataset {dataset!r}")
    stitched = collect(rows, metric.name, stitched=True)
    reference = collect(rows, metric.name, stitched=False)
    bars = [
        Bar(v, stat(stitched.get((dataset, v), [])), stat(reference.get((dataset, v), [])))
        for v in variants
    ]
    sign = -1.0 if metric.higher_is_better else 1.0
    bars.sort(key=lambda b: (b.mean is None, 0.0 if b.mean is None else sign * b.mean))
    return Headline(dataset, metric, bars, chance)


def _reference_mean(bar: Bar) -> float | None:
    return None if bar.reference is None else bar.reference.mean


def _difference(bar: Bar, metric: MetricInfo, *, signed: bool = False) -> str:
    """How far the stitched mean is from the reference, in words ("0.078 worse"); ``signed``:
    led by stitched − reference ("-0.078 (worse)"), so that a table sorts by the gap."""
    mean, ref = bar.mean, _reference_mean(bar)
    if mean is None or ref is None:
        return NA
    gap = mean - ref
    if not gap:
        return "0.000"
    word = "worse" if (gap < 0 if metric.higher_is_better else gap > 0) else "better"
    return f"{gap:+.3f} ({word})" if signed else f"{abs(gap):.3f} {word}"


def caption(item: Headline, roles: tuple[str, str], chance_note: str = "") -> str:
    """The sentence under a headline chart: the best variant and its value, how far it is from
    its non-stitched reference (where the rows have one), then ``chance_note``."""
    best = item.best
    if best is None and any(_reference_mean(b) is not None for b in item.bars):
        text = (
            f"{item.dataset}: no stitched pair ({roles[0]} ≠ {roles[1]}) to compare; the "
            f"diamonds are the non-stitched values ({roles[0]} = {roles[1]})."
        )
    elif best is None:
        text = f"{item.dataset}: no variant has an applicable {item.metric.title}."
    elif _reference_mean(best) is None:
        text = (
            f"{item.dataset}: best variant {best.variant} ({roles[0]} ≠ {roles[1]}), "
            f"{item.metric.title} {fmt(best.stitched)}."
        )
    else:
        text = (
            f"{item.dataset}: best stitched variant {best.variant}, {item.metric.title} "
            f"{fmt(best.stitched)}, {_difference(best, item.metric)} than its non-stitched "
            f"reference ({fmt(best.reference)})."
        )
    return f"{text} {chance_note}".strip()


def glance_table(items: Sequence[Headline]) -> Table:
    """One row per headline: the best stitched variant, its stitched ``mean ± std`` and, where
    the rows have them, its non-stitched reference and the difference, and the chance level
    where the metric has one."""
    with_chance = bool(items) and chance_level(items[0].metric.name, 2) is not None
    with_reference = any(_reference_mean(b) is not None for i in items for b in i.bars)
    if with_reference:
        headers = ["Dataset", "Metric", "Best stitched", "Stitched", "Non-stitched", "Difference"]
    else:  # e.g. the similarity study: every pair is of two distinct encoders
        headers = ["Dataset", "Metric", "Best", "Mean ± std"]
    table = Table(headers + (["Chance"] if with_chance else []), [])
    for item in items:
        best = item.best
        cells = [NA] * (len(headers) - 2)
        if best is not None:
            cells = [best.variant, fmt(best.stitched)]
            if with_reference:
                cells += [fmt(best.reference), _difference(best, item.metric, signed=True)]
        if with_chance:
            cells.append(NA if item.chance is None else f"{item.chance:.3f}")
        table.rows.append([Cell(item.dataset), Cell(item.metric.title), *map(Cell, cells)])
    return table


def _limits(item: Headline) -> tuple[float, float]:
    """The x range: every bar with its error bar, every reference and the chance, from 0 (or
    below, for negative values) with a margin."""
    edges = [0.0] if item.chance is None else [0.0, item.chance]
    for bar in item.bars:
        for s in (bar.stitched, bar.reference):
            if s is not None and s.mean is not None:
                edges += [s.mean - s.std, s.mean + s.std]
    low, high = min(edges), max(edges)
    span = (high - low) or 1.0
    return (low - 0.04 * span if low < 0 else 0.0), high + 0.04 * span


def _draw_bars(ax: Any, item: Headline) -> None:
    """The stitched bars (the best one highlighted) with their standard deviations, and the
    references as hollow diamonds with theirs."""
    best = item.best
    for i, bar in enumerate(item.bars):
        if bar.stitched is not None and bar.stitched.mean is not None:
            colour = BEST_COLOUR if bar is best else OTHER_COLOUR
            ax.barh(
                i,
                bar.stitched.mean,
                xerr=bar.stitched.std,
                height=0.62,
                color=colour,
                edgecolor="#444444",
                linewidth=0.5,
                capsize=3,
                error_kw={"elinewidth": 0.9},
            )
        ref = bar.reference
        if ref is not None and ref.mean is not None:
            ax.errorbar(
                ref.mean,
                i,
                xerr=ref.std,
                fmt="D",
                color="black",
                markerfacecolor="white",
                markersize=5,
                capsize=2,
                elinewidth=0.8,
                zorder=3,
            )


def _legend(ax: Any, item: Headline, roles: tuple[str, str]) -> None:
    """Legend entries for what the chart shows: the bars, the best bar, the references, the
    chance line."""
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    compare = f"{roles[0]} ≠ {roles[1]}"
    has_reference = any(_reference_mean(b) is not None for b in item.bars)
    handles: list[Any] = [
        Patch(facecolor=OTHER_COLOUR, edgecolor="#444444", label=f"{compare}, mean ± std"),
        Patch(facecolor=BEST_COLOUR, edgecolor="#444444", label="best"),
    ]
    if has_reference:
        handles[0].set_label(f"stitched ({compare}), mean ± std")
        handles.append(
            Line2D(
                [],
                [],
                marker="D",
                color="black",
                markerfacecolor="white",
                linestyle="none",
                label=f"non-stitched ({roles[0]} = {roles[1]})",
            )
        )
    if item.chance is not None:
        handles.append(Line2D([], [], color="#b2182b", linestyle="--", label="chance"))
    for handle in handles:
        handle.set_label(plain_text(handle.get_label()))
    ax.figure.legend(
        handles=handles, fontsize=7, loc="outside lower center", ncols=len(handles), frameon=False
    )


def headline_png(
    item: Headline, roles: tuple[str, str] = ("train encoder", "test encoder")
) -> bytes:
    """PNG bytes of the headline chart of ``item``: one horizontal bar per variant, best at the
    top and highlighted, the non-stitched reference as a hollow diamond, the chance level as a
    dashed line, the stitched ``mean ± std`` written right of the plot."""
    n = len(item.bars)
    fig = figure(7.5, 0.36 * n + 1.5, layout="constrained")
    ax = fig.add_subplot(1, 1, 1)
    _draw_bars(ax, item)
    if item.chance is not None:
        ax.axvline(item.chance, color="#b2182b", linestyle="--", linewidth=1.0)
    ax.set_yticks(range(n))
    ax.set_yticklabels([plain_text(b.variant) for b in item.bars], fontsize=8)
    best = item.best
    if best is not None:
        label = ax.get_yticklabels()[0]
        label.set_fontweight("bold")
        label.set_color(BEST_COLOUR)
    for i, bar in enumerate(item.bars):
        ax.text(
            1.01,
            i,
            fmt(bar.stitched),
            transform=ax.get_yaxis_transform(),
            va="center",
            fontsize=7,
            color=BEST_COLOUR if bar is best else "#222222",
        )
    ax.set_ylim(n - 0.5, -0.5)  # the best at the top
    ax.set_xlim(*_limits(item))
    ax.grid(axis="x", alpha=0.3)
    ax.set_xlabel(plain_text(item.metric.title))
    order = "higher" if item.metric.higher_is_better else "lower"
    ax.set_title(
        plain_text(f"{item.dataset} — {item.metric.title} ({order} is better)"), fontsize=10
    )
    _legend(ax, item, roles)
    return png_bytes(fig)
