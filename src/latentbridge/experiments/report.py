"""Report on a zero-shot stitching run: markdown tables, heatmaps and a self-contained HTML page.

The input is the tidy ``results.csv`` that ``latentbridge run`` writes, one row per
(dataset, train encoder, test encoder, variant, seed, metric)::

    dataset,source,target,variant,seed,metric,value

An empty ``value`` means "not applicable" (e.g. absolute stitching between encoders of different
dimensions); it is shown as ``n/a`` and never enters a mean. A pair is *stitched* when the
train and test encoders differ; ``train == test`` pairs are the non-stitched reference.

Statistics: a table cell pools every applicable (pair, seed) value of its dataset, variant,
metric and stitching kind, and shows ``mean ± std`` with the *sample* standard deviation
(``ddof=1``) when there are at least two values, else ``0.000``. A cell is ``n/a`` when the
variant ran but no value applies, ``—`` when the variant did not run on that dataset, and it
carries a ``†`` when some of its pairs were n/a and were left out of the mean.

Where the rows hold the label-free ``anchor_consistency`` of the stitched pairs, each real
metric's sections are followed by its *stitchability* section (:mod:`.stitchability`): the
Spearman correlation of the consistency with the metric, per dataset, and a scatter plot; the
consistency itself gets its stitched table only, and no heatmap.

``report.html`` (:mod:`.page`) opens with the headline of each dataset (:mod:`.headline`): the
stitched ``mean ± std`` of every variant of the task's first metric next to its non-stitched
reference and the chance level, the best stitched variant highlighted; then the task's sections
as sortable HTML tables, the heatmaps of each (dataset, metric) as small multiples on one
colour scale (:mod:`.heatmaps`), the image grids of a reconstruction run, and the config as
YAML in a collapsed block.

Ordering is deterministic: metrics in their task's order; datasets, encoders and variants in
the order of their first appearance in ``results.csv``, so the same file always gives the same
``summary.md``.
"""

from __future__ import annotations

import hashlib
import html
import json
import math
import os
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from .._files import write_bytes_atomic
from .._validation import warn_user
from .headline import Headline, caption, chance_level, glance_table, headline, headline_png
from .heatmaps import HeatmapGrid, grid_png, heatmap_grid, heatmap_png, pair_matrix, shared_scale
from .page import Block, config_yaml, figure_html, gallery, render, table_html
from .results import COLUMNS, CONSISTENCY, ResultRow, remove_run_temps
from .results import read_results as _read_results
from .stitchability import stitchability_section
from .tables import (
    MISSING,
    Figure,
    Section,
    Table,
    ablation,
    md_escape,
    slug,
    stitching_section,
    summary,
    to_markdown,
    unique,
)
from .tables import main_product_variant as main_product_variant
from .task import MetricInfo, Task
from .tasks import TASKS

__all__ = [
    "COLUMNS",
    "ResultRow",
    "ablation_table",
    "main_product_variant",
    "non_stitched_table",
    "num_classes",
    "pair_matrix",
    "read_results",
    "save_heatmap",
    "summary_table",
    "write_report",
]

#: Every task's metrics, by name (their titles, ranges and order live with the tasks).
METRICS: dict[str, MetricInfo] = {m.name: m for task in TASKS.values() for m in task.metrics}
_METRIC_TITLES = {name: m.title for name, m in METRICS.items()}
#: The values each metric can take (inclusive); a metric not listed accepts any finite number.
METRIC_RANGES: dict[str, tuple[float, float]] = {
    name: (m.low, m.high) for name, m in METRICS.items()
}
#: Metrics where a smaller value is better (the best cell of a row is the smallest).
LOWER_IS_BETTER = frozenset(name for name, m in METRICS.items() if not m.higher_is_better)
_HOW_TO_READ = (
    "Each cell is the mean ± sample standard deviation (ddof=1; 0 for a single value) over "
    "all ordered encoder pairs and seeds of the dataset. *Stitched* tables use the pairs "
    "whose train encoder differs from the test encoder: the head is trained on the train "
    "encoder's latents and evaluated, with no retraining, on the test encoder's latents. The "
    "*non-stitched reference* uses the pairs where both are the same encoder. The best "
    "stitched cell of each row is in bold. `n/a` marks a variant that does not apply (e.g. "
    "absolute latents between encoders of different dimensions); `†` marks a mean over the "
    "applicable pairs only; `—` marks a variant that was not run on that dataset. The "
    "ablation table compares the aggregations of the product projection. The heatmaps show "
    "every train (rows) × test (columns) pair, averaged over seeds."
)


# --------------------------------------------------------------------------------------------
# Reading


def read_results(path: str | os.PathLike[str]) -> list[ResultRow]:
    """Read and validate a run's ``results.csv`` (:func:`.results.read_results`), each value in
    its metric's range (:data:`METRIC_RANGES`)."""
    return _read_results(path, METRIC_RANGES)


# --------------------------------------------------------------------------------------------
# Tables: one model, rendered to markdown and HTML


def summary_table(
    rows: Sequence[ResultRow],
    metric: str = "accuracy",
    *,
    product_variant: str | None = None,
    stitched: bool = True,
) -> str:
    """The paper-style markdown table: one row per dataset, ``mean ± std`` per variant.

    Columns: Absolute, Cosine, Euclidean, L1, L∞, Dot (those present in ``rows``), then
    ``Product (<aggregation>)`` for ``product_variant`` (default: :func:`main_product_variant`),
    then every other non-product variant (other projections, translation baselines) in order of
    first appearance. Other product aggregations are left to :func:`ablation_table`. With
    ``stitched=True`` (default) cells pool train != test pairs and the best cell of each row is
    bold; with ``stitched=False`` they pool the train == test reference pairs, not bold.
    """
    lower = metric in LOWER_IS_BETTER
    return to_markdown(summary(rows, metric, stitched, product_variant, lower_is_better=lower))


def non_stitched_table(
    rows: Sequence[ResultRow], metric: str = "accuracy", *, product_variant: str | None = None
) -> str:
    """:func:`summary_table` over the train == test (non-stitched reference) pairs."""
    return summary_table(rows, metric, product_variant=product_variant, stitched=False)


def ablation_table(rows: Sequence[ResultRow], metric: str = "accuracy") -> str:
    """Markdown aggregation ablation: one row per dataset, one column per ``product:<agg>``
    variant (in order of first appearance), stitched ``mean ± std``; best cell per row bold."""
    return to_markdown(ablation(rows, metric, lower_is_better=metric in LOWER_IS_BETTER))


# --------------------------------------------------------------------------------------------
# Pair matrices and heatmaps


def _metric(name: str) -> MetricInfo:
    """The task metadata of metric ``name`` (an unknown metric: higher is better, unbounded)."""
    return METRICS.get(name, MetricInfo(name, name))


def _own_scale(metric: str, matrix: Any) -> tuple[float, float]:
    """The colour scale of one heatmap alone: the metric's range, or the data's (MSE and
    unbounded metrics)."""
    vmin, vmax = METRIC_RANGES.get(metric, (-math.inf, math.inf))
    if math.isfinite(vmin) and math.isfinite(vmax) and metric != "mse":
        return vmin, vmax
    return shared_scale([matrix])


def save_heatmap(
    rows: Sequence[ResultRow],
    dataset: str,
    variant: str,
    path: str | os.PathLike[str],
    metric: str = "accuracy",
) -> Path:
    """Write a train (rows) × test (columns) heatmap PNG of :func:`pair_matrix`, annotated with
    the values; n/a cells are grey and hatched; the colour scale is the metric's range
    (:data:`METRIC_RANGES`), or the data's for MSE and unbounded metrics, reversed where lower
    is better. Written atomically."""
    encoders, matrix = pair_matrix(rows, dataset, variant, metric)
    vmin, vmax = _own_scale(metric, matrix)
    grid = HeatmapGrid(dataset, _metric(metric), encoders, [variant], [matrix], vmin, vmax)
    target = Path(path)
    write_bytes_atomic(target, heatmap_png(grid, variant))
    return target


# --------------------------------------------------------------------------------------------
# Files


def _heatmap_names(keys: Sequence[tuple[str, str]], metric: str) -> dict[tuple[str, str], str]:
    """Sanitised, collision-free file names for (dataset, variant) keys."""
    plain = {k: f"{slug(k[0])}__{slug(k[1])}__{slug(metric)}" for k in keys}
    counts: dict[str, int] = {}
    for name in plain.values():
        counts[name] = counts.get(name, 0) + 1
    names = {}
    for k, name in plain.items():
        if counts[name] > 1:  # lossy slugs collide: disambiguate with a digest of the names
            digest = hashlib.sha1("\0".join(k).encode("utf-8")).hexdigest()[:8]
            name = f"{name}-{digest}"
        names[k] = f"{name}.png"
    return names


def _metrics(rows: Sequence[ResultRow], plugin: Task | None = None) -> list[str]:
    """The rows' metrics: the task's in its order, then any other known metric, then the
    unknown ones in order of first appearance."""
    present = unique(r.metric for r in rows)
    own = [m.name for m in plugin.metrics if m.name in present] if plugin is not None else []
    known = [m for m in _METRIC_TITLES if m in present and m not in own]
    return own + known + [m for m in present if m not in _METRIC_TITLES and m not in own]


def _read_config(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    try:
        config = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: not valid JSON: {exc}") from None
    if not isinstance(config, dict):
        raise ValueError(f"{path}: expected a JSON object, found {type(config).__name__}")
    return config


def _task(config: dict[str, Any] | None, rows: Sequence[ResultRow]) -> str:
    """The run's task: from ``config.json``, else the first task whose metrics are the rows'
    (a results file copied without its config; classification when none fits)."""
    task = (config or {}).get("task")
    if isinstance(task, str) and task:
        return task
    present = {r.metric for r in rows}
    for name, plugin in TASKS.items():
        if present <= {m.name for m in plugin.metrics}:
            return name
    return "classification"


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
#: Larger files in ``grids/`` are not embedded (a run's grids are a few hundred KiB).
MAX_GRID_BYTES = 32 << 20


def _read_grid(path: Path, root: Path) -> bytes | str:
    """The bytes of one image grid, or why it is not embedded.

    Only a regular file whose real path is inside ``root`` (the resolved run folder), opened
    without following a symbolic link, no larger than :data:`MAX_GRID_BYTES` and starting
    with the PNG signature, is embedded: report.html never carries another file's content.
    """
    if path.is_symlink():
        return "a symbolic link"
    if not path.resolve().is_relative_to(root):
        return "outside the run folder"
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)
    except OSError as error:
        return f"unreadable: {error.strerror or error}"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return "not a regular file"
        if info.st_size > MAX_GRID_BYTES:
            return f"larger than {MAX_GRID_BYTES} bytes"
        data = handle.read(MAX_GRID_BYTES + 1)
    if not data.startswith(_PNG_SIGNATURE):
        return "not a PNG file"
    return data


def _run_grids(folder: Path) -> list[tuple[str, bytes]]:
    """(caption, PNG bytes) of the image grids a run wrote to ``folder/grids/``, in name order;
    anything else found there is skipped with a warning."""
    grids = folder / "grids"
    if grids.is_symlink():
        warn_user(f"{grids} is a symbolic link: its images are not embedded in report.html")
        return []
    if not grids.is_dir():
        return []
    root = folder.resolve()
    found: list[tuple[str, bytes]] = []
    for path in sorted(grids.glob("*.png")):
        data = _read_grid(path, root)
        if isinstance(data, str):
            warn_user(f"{path} is not embedded in report.html: {data}")
        else:
            found.append((path.stem.replace("__", " — "), data))
    return found


class _Part(NamedTuple):
    """A section of the report; ``inline``: its figures are shown (summary.md: referenced)
    right after its tables, else with the task's charts after every section; ``kind``: the
    class of its figures on the page (``scatter`` for the stitchability plots)."""

    section: Section
    inline: bool = False
    kind: str = ""


def _has_values(table: Table) -> bool:
    return any(c.text != MISSING for r in table.rows + table.footer for c in r[1:])


def _only_values(sections: Sequence[Section]) -> list[Section]:
    """``sections`` without their tables that hold no value (e.g. the non-stitched reference of
    a metric that only stitched pairs have), and without the sections left empty."""
    out = []
    for section in sections:
        tables = [(heading, t) for heading, t in section.tables if _has_values(t)]
        if tables or section.figures:
            out.append(Section(section.title, tables, list(section.figures)))
    return out


def _sections(task: str, rows: Sequence[ResultRow], metrics: Sequence[str]) -> list[_Part]:
    """Every metric's sections, from the task plug-in (the stitching tables where the run's
    task is not known), each real metric's followed by its stitchability section where the
    rows hold the anchor consistency; the consistency's own sections keep only the tables
    with values (there are no non-stitched consistency rows)."""
    plugin = TASKS.get(task)
    out = []
    for metric in metrics:
        info = METRICS.get(metric, MetricInfo(metric, metric))
        if plugin is not None:
            sections = plugin.sections(rows, info)
        else:
            sections = [stitching_section(rows, info)]
        if metric == CONSISTENCY:
            out += [_Part(s) for s in _only_values(sections)]
            continue
        out += [_Part(s) for s in sections]
        extra = stitchability_section(rows, info)
        if extra is not None:
            out.append(_Part(extra, inline=True, kind="scatter"))
    return out


def _md_figure(item: Figure) -> str:
    """A markdown image reference to the figure's file (relative to the run folder)."""
    alt = md_escape(item.caption).replace("[", "\\[").replace("]", "\\]")
    return f"![{alt}]({item.file})"


def _summary_md(title: str, notes: Sequence[str], parts: Sequence[_Part]) -> str:
    md = [f"# {title}", "", "## How to read", ""]
    for note in notes:
        md += [note, ""]
    for section, inline, _ in parts:
        md += [f"## {md_escape(section.title)}", ""]
        for heading, table in section.tables:
            md += [f"### {md_escape(heading)}", "", to_markdown(table)]
        if inline:
            for f in section.figures:
                md += [_md_figure(f), ""]
    return "\n".join(md)


# --------------------------------------------------------------------------------------------
# The page


def _dataset_config(config: Mapping[str, Any] | None, dataset: str) -> Mapping[str, Any] | None:
    """The entry of ``dataset`` in the config's ``datasets``, None when there is none."""
    entries = (config or {}).get("datasets")
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and entry.get("name") == dataset:
            return entry
    return None


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def num_classes(config: Mapping[str, Any] | None, dataset: str) -> int | None:
    """The number of classes of ``dataset`` as the run's ``config`` (``config.json``) states it,
    None when it does not say.

    In order: the ``synthetic.num_classes`` of a synthetic dataset; the ``num_classes`` option
    of its loader; the registered dataset's own count (:func:`latentbridge.data.get`), unless
    another option of its loader names labels or classes (e.g. CIFAR-100's ``label``, which
    picks 20 coarse or 100 fine classes): then None. None also for a dataset the config does
    not list or the registry does not know.
    """
    entry = _dataset_config(config, dataset)
    if entry is None:
        return None
    synthetic = entry.get("synthetic")
    if isinstance(synthetic, Mapping):
        return _count(synthetic.get("num_classes"))
    options = entry.get("options")
    options = options if isinstance(options, Mapping) else {}
    if _count(options.get("num_classes")) is not None:
        return _count(options.get("num_classes"))
    if any(("label" in k or "class" in k) and k != "num_classes" for k in map(str, options)):
        return None
    from .. import data

    try:
        return _count(data.get(dataset).num_classes)
    except ValueError:
        return None


def _chance(
    config: Mapping[str, Any] | None, dataset: str, metric: str
) -> tuple[float | None, str]:
    """(chance level, what the caption says of it) of ``metric`` on ``dataset``."""
    classes = num_classes(config, dataset)
    chance = chance_level(metric, classes)
    if chance is not None:
        return chance, f"Dashed line: chance, 1/{classes} = {chance:.3f}."
    if chance_level(metric, 2) is not None:  # the metric has one; the classes are not known
        return None, (
            f"No chance line: the number of classes of {dataset} is not known from the run's "
            f"config."
        )
    return None, ""


def _headline_block(
    rows: Sequence[ResultRow],
    metric: MetricInfo,
    roles: tuple[str, str],
    config: Mapping[str, Any] | None,
) -> Block:
    """The page's first block: one headline chart per dataset (``figure.headline``, with
    ``data-dataset``, ``data-metric`` and ``data-best``), then a table of the best variants."""
    items: list[Headline] = []
    figures = []
    for dataset in unique(r.dataset for r in rows if r.metric == metric.name):
        chance, note = _chance(config, dataset, metric.name)
        item = headline(rows, dataset, metric, chance)
        items.append(item)
        best = item.best.variant if item.best is not None else ""
        data = {"dataset": dataset, "metric": metric.name, "best": best}
        text = caption(item, roles, note)
        figures.append(
            figure_html(headline_png(item, roles), text, css_class="headline", data=data)
        )
    body = f'<div class="headlines">{"".join(figures)}</div>'
    body += table_html(f"Best variant per dataset ({metric.title})", glance_table(items))
    return Block(f"At a glance: {metric.title}", body)


def _heatmap_grids(rows: Sequence[ResultRow], metrics: Sequence[str]) -> list[HeatmapGrid]:
    """The heatmaps of every (dataset, real metric): none of the anchor consistency (it has no
    non-stitched pairs)."""
    grids = []
    for metric in (m for m in metrics if m != CONSISTENCY):
        for dataset in unique(r.dataset for r in rows if r.metric == metric):
            grids.append(heatmap_grid(rows, dataset, _metric(metric)))
    return grids


def _heatmap_files(grids: Sequence[HeatmapGrid], roles: tuple[str, str]) -> list[Figure]:
    """One heatmap file per (dataset, variant) of the first real metric, each on its dataset's
    shared scale: ``heatmaps/<dataset>__<variant>__<metric>.png``."""
    if not grids:
        return []
    metric = grids[0].metric.name
    mine = [g for g in grids if g.metric.name == metric]
    names = _heatmap_names([(g.dataset, v) for g in mine for v in g.variants], metric)
    return [
        Figure(f"{g.dataset} — {v}", heatmap_png(g, v, roles), f"heatmaps/{names[(g.dataset, v)]}")
        for g in mine
        for v in g.variants
    ]


def _heatmap_block(grids: Sequence[HeatmapGrid], roles: tuple[str, str]) -> Block:
    """Every (dataset, metric)'s heatmaps as one figure of small multiples (``figure.heatmaps``
    with ``data-vmin`` and ``data-vmax``, the colour scale the panels share)."""
    figures = []
    for g in grids:
        text = (
            f"{g.dataset} — {g.metric.title}: one panel per variant, {roles[0]} (rows) × "
            f"{roles[1]} (columns), mean over seeds; one colour scale for every panel, from "
            f"{g.vmin:.3f} to {g.vmax:.3f}; grey, hatched: n/a."
        )
        data = {"dataset": g.dataset, "metric": g.metric.name}
        data |= {"vmin": repr(g.vmin), "vmax": repr(g.vmax)}
        figures.append(figure_html(grid_png(g, roles), text, css_class="heatmaps", data=data))
    return Block("Heatmaps", "".join(figures))


def _section_blocks(parts: Sequence[_Part]) -> list[Block]:
    """The task's sections, their tables as HTML tables, their inline figures side by side."""
    blocks = []
    for section, inline, kind in parts:
        body = "".join(table_html(heading, table) for heading, table in section.tables)
        if inline:
            body += gallery(
                [figure_html(f.png, f.caption, css_class=kind) for f in section.figures]
            )
        blocks.append(Block(section.title, body))
    return blocks


def _lead(config: Mapping[str, Any] | None, rows: Sequence[ResultRow], task: str) -> str:
    """One line on the run: its name and description, what it compared."""
    datasets = unique(r.dataset for r in rows)
    encoders = unique(e for r in rows for e in (r.source, r.target))
    variants = unique(r.variant for r in rows)
    seeds = sorted({r.seed for r in rows})
    counts = (
        f"task {task}; {len(datasets)} dataset(s), {len(encoders)} encoder(s), "
        f"{len(variants)} variant(s), seed(s) {', '.join(map(str, seeds))}."
    )
    name, description = (config or {}).get("name"), (config or {}).get("description")
    text = f"{name}: " if isinstance(name, str) and name else ""
    if isinstance(description, str) and description.strip():
        text += " ".join(description.split()) + " — "
    return text + counts


def _page(
    title: str,
    notes: Sequence[str],
    config: dict[str, Any] | None,
    parts: Sequence[_Part],
    top: Block | None,
    heatmaps: Block | None,
    grids: Sequence[tuple[str, bytes]],
    lead: str,
) -> str:
    """The blocks of ``report.html`` in order: the headline, how to read, the sections, the
    task's charts, the heatmaps, the image grids and, collapsed, the config."""
    esc = html.escape
    blocks = [top] if top is not None else []
    text = "".join(f"<p>{esc(n.replace('`', '').replace('*', ''))}</p>" for n in notes)
    blocks.append(Block("How to read", text))
    blocks += _section_blocks(parts)
    charts = [
        figure_html(f.png, f.caption) for s, inline, _ in parts if not inline for f in s.figures
    ]
    if charts:
        title_charts = "Similarity by invariance class (mean ± std over anchor sets)"
        blocks.append(Block(title_charts, gallery(charts)))
    if heatmaps is not None:
        blocks.append(heatmaps)
    if grids:
        images = gallery([figure_html(png, caption) for caption, png in grids], halves=True)
        blocks.append(Block("Image grids: original, non-stitched, stitched", images))
    if config is not None:
        yaml_text = f"<pre><code>{esc(config_yaml(config))}</code></pre>"
        blocks.append(Block("Configuration (config.json, as YAML)", yaml_text, collapsed=True))
    return render(title, lead, blocks)


def write_report(out_dir: str | os.PathLike[str]) -> Path:
    """Read ``out_dir/results.csv`` (and ``config.json`` if present) and write, atomically:

    * ``summary.md``: each metric's section of the run's task (the stitching tasks: the
      stitched summary, the non-stitched reference and the aggregation ablation; the
      similarity study: the mean over pairs and one table per dataset, pair × class), with the
      task's "how to read"; where the rows hold the anchor consistency, each real metric's
      stitchability section (Spearman ρ table, scatter plots referenced by file);
      byte-identical for the same input;
    * the figures of the sections in ``charts/`` (the similarity study's bar charts, the
      stitchability scatter plots);
    * ``heatmaps/<dataset>__<variant>__<metric>.png``: one per (dataset, variant) for the
      first metric other than the anchor consistency, on the dataset's shared colour scale;
    * ``report.html``: a self-contained offline page (:mod:`.page`: inline CSS, PNGs as base64
      data URIs, one inline script that sorts the tables, every string from the inputs
      HTML-escaped): per dataset the headline chart of the task's first metric
      (:mod:`.headline`; the chance level where :func:`num_classes` knows the classes), the
      sections as HTML tables with their figures, the heatmaps of every (dataset, metric) as
      small multiples on one colour scale, the image grids a reconstruction run left in
      ``grids/`` (regular PNG files of the run folder only: symbolic links and other files are
      skipped with a warning) and the config as YAML, collapsed.

    Stale temporary files of killed writers in ``out_dir`` are deleted first
    (:func:`.results.remove_run_temps`). Returns the path of ``report.html``. Raises
    :class:`ValueError` for a folder without ``results.csv``, an invalid or empty results file
    or an invalid ``config.json``.
    """
    folder = Path(out_dir)
    results_file = folder / "results.csv"
    if not results_file.is_file():
        raise ValueError(f"{folder} is not a run folder: it holds no results.csv")
    remove_run_temps(folder)
    rows = read_results(results_file)
    if not rows:
        raise ValueError(f"{results_file}: no result rows")
    config = _read_config(folder / "config.json")
    task = _task(config, rows)
    plugin = TASKS.get(task)
    similarity = task == "similarity"
    title = "Latent similarity report" if similarity else "Zero-shot stitching report"
    note = plugin.note if plugin is not None else ""
    notes = [n for n in ([note] if similarity else [_HOW_TO_READ, note]) if n]
    metrics = _metrics(rows, plugin)
    parts = _sections(task, rows, metrics)
    write_bytes_atomic(folder / "summary.md", _summary_md(title, notes, parts).encode("utf-8"))
    for chart in (f for part in parts for f in part.section.figures):
        write_bytes_atomic(folder / chart.file, chart.png)
    roles = plugin.roles if plugin is not None else ("train encoder", "test encoder")
    grids = _heatmap_grids(rows, metrics)
    for heatmap in _heatmap_files(grids, roles):
        write_bytes_atomic(folder / heatmap.file, heatmap.png)
    real = [m for m in metrics if m != CONSISTENCY]
    top = _headline_block(rows, _metric(real[0]), roles, config) if real else None
    heatmaps = _heatmap_block(grids, roles) if grids else None
    lead = _lead(config, rows, task)
    page = _page(title, notes, config, parts, top, heatmaps, _run_grids(folder), lead)
    report = folder / "report.html"
    write_bytes_atomic(report, page.encode("utf-8"))
    return report
