"""Tables of results: one model (cells of ``mean ± std``), rendered to markdown and HTML.

The statistics of a table cell pool every applicable (pair, seed) value of its dataset,
variant, metric and stitching kind: ``mean ± std`` with the *sample* standard deviation
(``ddof=1``) when there are at least two values, else ``0.000``. A cell is ``n/a`` when the
variant ran but no value applies, ``—`` when the variant did not run on that dataset, and it
carries a ``†`` when some of its pairs were n/a and were left out of the mean. Datasets and
variants appear in the order of their first appearance, so the same rows give the same table.

A :class:`Section` is what a task contributes to the report for one metric: titled tables
(or markdown) and figures. Tasks build their sections from these pieces; the report composes
them into ``summary.md`` and ``report.html``.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .results import MetricInfo, ResultRow
from .variants import Product, product_aggregation

__all__ = [
    "NA",
    "Cell",
    "Figure",
    "Section",
    "Stat",
    "Table",
    "ablation",
    "main_product_variant",
    "md_escape",
    "slug",
    "stitching_section",
    "summary",
    "to_html",
    "to_markdown",
]

NA = "n/a"
MISSING = "—"
PARTIAL = "†"


#: The paper's fixed columns, in order, before the product column.
FIXED_COLUMNS: tuple[tuple[str, str], ...] = (
    ("absolute", "Absolute"),
    ("cosine", "Cosine"),
    ("euclidean", "Euclidean"),
    ("l1", "L1"),
    ("linf", "L∞"),
    ("dot", "Dot"),
)
MAIN_PRODUCT = Product("mlp_sum").name


@dataclass(frozen=True)
class Cell:
    text: str
    bold: bool = False


@dataclass
class Table:
    """A table: column headers, body rows (the first cell names the row), footer rows (e.g. a
    mean over the body rows: rendered after the body, never sorted with it) and notes."""

    headers: list[str]
    rows: list[list[Cell]]
    notes: list[str] = field(default_factory=list)
    footer: list[list[Cell]] = field(default_factory=list)


@dataclass(frozen=True)
class Stat:
    mean: float | None  # None: ran, but nothing applicable
    std: float
    partial: bool  # some values were n/a and left out


def unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def stat(values: Sequence[float | None]) -> Stat | None:
    """Pool values (None = n/a); None when there are no rows at all."""
    if not values:
        return None
    present = np.array([v for v in values if v is not None], dtype=np.float64)
    partial = len(present) < len(values)
    if present.size == 0:
        return Stat(None, 0.0, partial)
    std = float(np.std(present, ddof=1)) if present.size > 1 else 0.0
    return Stat(float(np.mean(present)), std, partial)


def fmt(stat: Stat | None) -> str:
    if stat is None:
        return MISSING
    if stat.mean is None:
        return NA
    text = f"{stat.mean:.3f} ± {stat.std:.3f}"
    return text + PARTIAL if stat.partial else text


def collect(
    rows: Iterable[ResultRow], metric: str, stitched: bool
) -> dict[tuple[str, str], list[float | None]]:
    cells: dict[tuple[str, str], list[float | None]] = {}
    for r in rows:
        if r.metric == metric and r.stitched == stitched:
            cells.setdefault((r.dataset, r.variant), []).append(r.value)
    return cells


def stat_row(
    dataset: str,
    variants: Sequence[str],
    cells: dict[tuple[str, str], list[float | None]],
    bold_best: bool,
    lower_is_better: bool = False,
) -> list[Cell]:
    stats = [stat(cells.get((dataset, v), [])) for v in variants]
    best: float | None = None
    if bold_best:
        means = [round(s.mean, 3) for s in stats if s is not None and s.mean is not None]
        best = (min(means) if lower_is_better else max(means)) if means else None
    out = [Cell(dataset)]
    for s in stats:
        mean = s.mean if s is not None else None
        is_best = best is not None and mean is not None and round(mean, 3) == best
        out.append(Cell(fmt(s), bold=is_best))
    return out


def partial_note(table: Table) -> None:
    if any(c.text.endswith(PARTIAL) for row in table.rows for c in row):
        table.notes.append(f"{PARTIAL} mean over the applicable pairs only (n/a pairs left out).")


def main_product_variant(rows: Iterable[ResultRow]) -> str | None:
    """``product:mlp_sum`` when present, else the first product variant, else None."""
    products = [v for v in unique(r.variant for r in rows) if product_aggregation(v) is not None]
    if MAIN_PRODUCT in products:
        return MAIN_PRODUCT
    return products[0] if products else None


def summary_columns(
    rows: Sequence[ResultRow], product_variant: str | None
) -> tuple[list[str], list[str]]:
    """(variants, headers) of the summary: fixed set, main product, then any other non-product
    variant in order of first appearance. Other aggregations belong to the ablation table."""
    present = unique(r.variant for r in rows)
    product = product_variant if product_variant is not None else main_product_variant(rows)
    variants: list[str] = []
    headers: list[str] = []
    for name, label in FIXED_COLUMNS:
        if name in present:
            variants.append(name)
            headers.append(label)
    if product is not None and product in present:
        variants.append(product)
        headers.append(f"Product ({product_aggregation(product)})")
    if "product" in present:  # the similarity study's product representation
        variants.append("product")
        headers.append("Product")
    fixed = {name for name, _ in FIXED_COLUMNS} | {"product"}
    for v in present:
        if v not in fixed and product_aggregation(v) is None:
            variants.append(v)
            headers.append(v)
    return variants, headers


def summary(
    rows: Sequence[ResultRow],
    metric: str,
    stitched: bool,
    product_variant: str | None = None,
    *,
    lower_is_better: bool = False,
) -> Table:
    """One row per dataset, ``mean ± std`` per variant (see :func:`summary_columns`), pooling
    the stitched (source != target) or the non-stitched pairs; stitched rows bold their best."""
    rows = list(rows)
    variants, headers = summary_columns(rows, product_variant)
    cells = collect(rows, metric, stitched)
    datasets = unique(r.dataset for r in rows if r.metric == metric)
    table = Table(["Dataset", *headers], [])
    for d in datasets:
        table.rows.append(
            stat_row(d, variants, cells, bold_best=stitched, lower_is_better=lower_is_better)
        )
    partial_note(table)
    return table


def ablation(rows: Sequence[ResultRow], metric: str, *, lower_is_better: bool = False) -> Table:
    """The aggregation ablation: one column per product variant, stitched ``mean ± std``."""
    rows = list(rows)
    products = [v for v in unique(r.variant for r in rows) if product_aggregation(v) is not None]
    cells = collect(rows, metric, stitched=True)
    datasets = unique(r.dataset for r in rows if r.metric == metric)
    table = Table(["Dataset", *(str(product_aggregation(p)) for p in products)], [])
    if products:
        for d in datasets:
            table.rows.append(
                stat_row(d, products, cells, bold_best=True, lower_is_better=lower_is_better)
            )
    partial_note(table)
    return table


def md_escape(text: str) -> str:
    text = " ".join(text.splitlines())
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("*", "\\*")
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_markdown(table: Table) -> str:
    """The table in GitHub markdown: the first column left-aligned, the others right-aligned,
    bold cells in ``**``, the footer rows after the body, then the notes."""
    if not table.rows:
        return "_No results._\n"

    def cell(c: Cell) -> str:
        text = md_escape(c.text)
        return f"**{text}**" if c.bold else text

    lines = [
        "| " + " | ".join(md_escape(h) for h in table.headers) + " |",
        "|" + "|".join([":---", *(["---:"] * (len(table.headers) - 1))]) + "|",
    ]
    lines += ["| " + " | ".join(cell(c) for c in row) + " |" for row in table.rows + table.footer]
    lines += ["", *table.notes] if table.notes else []
    return "\n".join(lines) + "\n"


#: The number a cell starts with ("0.812 ± 0.010†" -> 0.812), the key a sortable column sorts by.
_LEADING_NUMBER = re.compile(r"^[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


def _html_row(row: Sequence[Cell]) -> str:
    """One ``<tr>``: the first cell a row header, a cell that starts with a number carrying it
    as ``data-value`` (what the page's sortable columns compare)."""
    esc = html.escape
    parts = ["<tr>"]
    for i, c in enumerate(row):
        text = f"<strong>{esc(c.text)}</strong>" if c.bold else esc(c.text)
        number = _LEADING_NUMBER.match(c.text)
        value = f' data-value="{esc(number.group(0))}"' if number and i > 0 else ""
        parts.append(f'<th scope="row">{text}</th>' if i == 0 else f"<td{value}>{text}</td>")
    parts.append("</tr>")
    return "".join(parts)


def to_html(table: Table) -> str:
    """The table as a ``<table class="sortable">`` (every string HTML-escaped): column headers
    in ``<thead>``, the body rows in ``<tbody>``, the footer rows in ``<tfoot>``, the notes as
    paragraphs after it. The page's script sorts the body by a clicked column header."""
    if not table.rows:
        return "<p><em>No results.</em></p>\n"
    esc = html.escape
    parts = ['<table class="sortable">', "<thead><tr>"]
    parts += [f'<th scope="col">{esc(h)}</th>' for h in table.headers]
    parts.append("</tr></thead><tbody>")
    parts += [_html_row(row) for row in table.rows]
    parts.append("</tbody>")
    if table.footer:
        parts += ["<tfoot>", *(_html_row(row) for row in table.footer), "</tfoot>"]
    parts.append("</table>")
    notes = "".join(f'<p class="note">{esc(n)}</p>' for n in table.notes)
    return "".join(parts) + notes + "\n"


def slug(name: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", name).strip("-")[:60]
    return slug or "x"


@dataclass(frozen=True)
class Figure:
    """A PNG figure of a section: its caption, its bytes, and the file (relative to the run
    folder) the report writes it to."""

    caption: str
    png: bytes
    file: str


@dataclass
class Section:
    """What a task contributes to the report for one metric: a title, titled tables and
    figures. ``summary.md`` shows the tables in markdown, ``report.html`` as HTML tables."""

    title: str
    tables: list[tuple[str, Table]] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)


def stitching_section(
    rows: Sequence[ResultRow],
    metric: MetricInfo,
    roles: tuple[str, str] = ("train encoder", "test encoder"),
) -> Section:
    """The stitched summary, the non-stitched reference and the aggregation ablation of
    ``metric``; ``roles`` name the source and the target in the headings."""
    source, target = roles
    lower = not metric.higher_is_better
    tables: list[tuple[str, Table]] = [
        (
            f"Stitched ({source} ≠ {target})",
            summary(rows, metric.name, True, lower_is_better=lower),
        ),
        (
            f"Non-stitched reference ({source} = {target})",
            summary(rows, metric.name, False, lower_is_better=lower),
        ),
    ]
    table = ablation(rows, metric.name, lower_is_better=lower)
    if table.rows:
        tables.append(("Aggregation ablation of the product (stitched)", table))
    return Section(metric.title, tables)
