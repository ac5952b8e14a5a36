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

Ordering is deterministic: metrics in their task's order; datasets, encoders and variants in
the order of their first appearance in ``results.csv``, so the same file always gives the same
``summary.md``.
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import math
import os
import stat
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from .._files import write_bytes_atomic
from .._plotting import figure, plain_text, png_bytes
from .._validation import warn_user
from .results import COLUMNS, CONSISTENCY, ResultRow, remove_run_temps
from .results import read_results as _read_results
from .stitchability import stitchability_section
from .tables import (
    MISSING,
    NA,
    Figure,
    Section,
    Table,
    ablation,
    md_escape,
    slug,
    stitching_section,
    summary,
    to_html,
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


def _lower(metric: str) -> bool:
    return metric in LOWER_IS_BETTER


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


def _heatmap_png(
    rows: Sequence[ResultRow],
    dataset: str,
    variant: str,
    metric: str,
    labels: tuple[str, str] = ("train encoder", "test encoder"),
) -> bytes:
    from matplotlib.patches import Rectangle

    encoders, matrix = pair_matrix(rows, dataset, variant, metric)
    n = len(encoders)
    size = max(3.5, 0.9 * n + 2.0)
    fig = figure(size + 1.0, size)
    ax = fig.add_subplot(1, 1, 1)
    masked = np.ma.masked_invalid(matrix)
    vmin, vmax = METRIC_RANGES.get(metric, (-math.inf, math.inf))
    finite = matrix[np.isfinite(matrix)]
    if not math.isfinite(vmin) or not math.isfinite(vmax) or metric == "mse":
        vmin = float(finite.min()) if finite.size else 0.0
        vmax = float(finite.max()) if finite.size else 1.0
        vmax = vmax if vmax > vmin else vmin + 1.0
    cmap = "viridis_r" if _lower(metric) else "viridis"
    image = ax.imshow(masked, cmap=cmap, vmin=vmin, vmax=vmax)
    ax.set_facecolor("#d0d0d0")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label=plain_text(metric))
    ax.set_xticks(range(n))
    ax.set_yticks(range(n))
    ax.set_xticklabels([plain_text(e) for e in encoders], rotation=45, ha="right")
    ax.set_yticklabels([plain_text(e) for e in encoders])
    ax.set_xlabel(plain_text(labels[1]))
    ax.set_ylabel(plain_text(labels[0]))
    ax.set_title(plain_text(f"{dataset} — {variant} — {metric}"))
    for i in range(n):
        for j in range(n):
            value = matrix[i, j]
            if np.isnan(value):
                ax.add_patch(
                    Rectangle(
                        (j - 0.5, i - 0.5),
                        1,
                        1,
                        facecolor="#d0d0d0",
                        edgecolor="#808080",
                        hatch="//",
                        linewidth=0.0,
                    )
                )
                ax.text(j, i, NA, ha="center", va="center", fontsize=8, color="black")
            else:
                level = (value - vmin) / (vmax - vmin)
                light = level < 0.4 if _lower(metric) else level > 0.6
                color = "black" if light else "white"
                text = f"{value:.4f}" if metric == "mse" else f"{value:.2f}"
                ax.text(j, i, text, ha="center", va="center", fontsize=8, color=color)
    fig.tight_layout()
    return png_bytes(fig)


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
    target = Path(path)
    write_bytes_atomic(target, _heatmap_png(rows, dataset, variant, metric))
    return target


# --------------------------------------------------------------------------------------------
# Files


def _unique_pairs(items: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    return list(dict.fromkeys(items))


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


_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2em auto;
max-width:72em;padding:0 1em;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right;white-space:nowrap}
thead th{background:#f0f0f0;text-align:center}tbody th{text-align:left;font-weight:normal}
pre{background:#f6f6f6;padding:1em;overflow:auto}.note{font-size:.9em;color:#555}
figure{display:inline-block;margin:0 1em 1em 0}img{max-width:100%}
"""


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


def _png_figure(png: bytes, caption: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    esc = html.escape
    return (
        f'<figure><img src="data:image/png;base64,{data}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


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
    right after its tables, else with the task's charts after every section."""

    section: Section
    inline: bool = False


def _has_values(table: Table | str) -> bool:
    return isinstance(table, str) or any(c.text != MISSING for r in table.rows for c in r[1:])


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
            out.append(_Part(extra, inline=True))
    return out


def _md_figure(item: Figure) -> str:
    """A markdown image reference to the figure's file (relative to the run folder)."""
    alt = md_escape(item.caption).replace("[", "\\[").replace("]", "\\]")
    return f"![{alt}]({item.file})"


def _summary_md(title: str, notes: Sequence[str], parts: Sequence[_Part]) -> str:
    md = [f"# {title}", "", "## How to read", ""]
    for note in notes:
        md += [note, ""]
    for section, inline in parts:
        md += [f"## {md_escape(section.title)}", ""]
        for heading, table in section.tables:
            body = table if isinstance(table, str) else to_markdown(table)
            md += [f"### {md_escape(heading)}", "", body]
        if inline:
            for f in section.figures:
                md += [_md_figure(f), ""]
    return "\n".join(md)


def _heatmaps(
    folder: Path, rows: Sequence[ResultRow], roles: tuple[str, str], metrics: Sequence[str]
) -> tuple[str, list[Figure]]:
    """The first real metric's train (rows) × test (columns) heatmaps, one per (dataset,
    variant); none of the anchor consistency (it has no non-stitched pairs)."""
    real = [m for m in metrics if m != CONSISTENCY]
    if not real:
        return CONSISTENCY, []
    metric = real[0]
    keys = _unique_pairs((r.dataset, r.variant) for r in rows if r.metric == metric)
    names = _heatmap_names(keys, metric)
    figures = []
    for dataset, variant in keys:
        png = _heatmap_png(rows, dataset, variant, metric, roles)
        caption = f"{dataset} — {variant}: {roles[0]} (rows) × {roles[1]} (columns)"
        figures.append(Figure(caption, png, f"heatmaps/{names[(dataset, variant)]}"))
    return metric, figures


def _page(
    title: str,
    notes: Sequence[str],
    config: dict[str, Any] | None,
    parts: Sequence[_Part],
    heatmaps: tuple[str, list[Figure]],
    grids: Sequence[tuple[str, bytes]],
) -> str:
    esc = html.escape
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; '
        "img-src data:; style-src 'unsafe-inline'\">",
        f"<title>{esc(title)}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>{esc(title)}</h1>",
        "<h2>How to read</h2>",
    ]
    page += [f"<p>{esc(note.replace('`', '').replace('*', ''))}</p>" for note in notes]
    if config is not None:
        text = json.dumps(config, indent=2, sort_keys=True, ensure_ascii=False, default=str)
        page += ["<h2>Configuration</h2>", f"<pre>{esc(text)}</pre>"]
    for section, inline in parts:
        page.append(f"<h2>{esc(section.title)}</h2>")
        for heading, table in section.tables:
            page.append(f"<h3>{esc(heading)}</h3>")
            page.append(f"<pre>{esc(table)}</pre>" if isinstance(table, str) else to_html(table))
        if inline:
            page += [_png_figure(f.png, f.caption) for f in section.figures]
    charts = [f for s, inline in parts if not inline for f in s.figures]
    if charts:
        page.append("<h2>Similarity by invariance class (mean ± std over anchor sets)</h2>")
        page += [_png_figure(f.png, f.caption) for f in charts]
    metric, figures = heatmaps
    if figures:
        page.append(f"<h2>Heatmaps ({esc(metric)}, mean over seeds)</h2>")
        page += [_png_figure(f.png, f.caption) for f in figures]
    if grids:
        page.append("<h2>Image grids: original, non-stitched, stitched</h2>")
        page += [_png_figure(png, caption) for caption, png in grids]
    page.append("</body></html>\n")
    return "\n".join(page)


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
      first metric other than the anchor consistency;
    * ``report.html``: a self-contained offline page (inline CSS, PNGs as base64 data URIs,
      every string from the inputs HTML-escaped) with the config, tables, figures, heatmaps
      and the image grids a reconstruction run left in ``grids/`` (regular PNG files of the
      run folder only: symbolic links and other files are skipped with a warning).

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
    heatmaps = _heatmaps(folder, rows, roles, metrics)
    for heatmap in heatmaps[1]:
        write_bytes_atomic(folder / heatmap.file, heatmap.png)
    page = _page(title, notes, config, parts, heatmaps, _run_grids(folder))
    report = folder / "report.html"
    write_bytes_atomic(report, page.encode("utf-8"))
    return report
