"""MkDocs hook: tables generated from the library's registries, so that the pages cannot
state an invariance, a normalisation or an aggregation the code does not declare.

A page writes a marker ``<!-- generated:NAME -->`` (optionally with ``key=value`` arguments)
where a table belongs; the hook replaces it with the table:

- ``invariances`` (arguments ``normalization``, ``relative``): the projection x
  transformation table of ``latentbridge invariances`` (``latentbridge.cli.invariance_table``);
- ``projections``: each registered projection with its description, declared invariances and
  the classes that rescale it (``scaled_by``);
- ``transformations``: the transformation classes, in the registry's order;
- ``normalizations``: the absolute normalisations (what each removes, what it maps a class to);
- ``relative-normalizations``: the relative normalisations;
- ``aggregations``: the registered aggregations of the product (first line of each docstring);
- ``anchor-strategies``: the anchor selection strategies.

An unknown marker name fails the build.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

MARKER = re.compile(r"<!-- generated:([\w-]+)((?: [\w-]+=[\w-]+)*) -->")


def _library() -> Any:
    try:
        import latentbridge
    except ImportError:  # building from a checkout without the package installed
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
        import latentbridge
    return latentbridge


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _names(names: Sequence[str] | frozenset[str], order: Sequence[str]) -> str:
    kept = [f"`{n}`" for n in order if n in names]
    return ", ".join(kept) if kept else "—"


def _first_line(doc: str | None) -> str:
    line = (doc or "").strip().splitlines()[0] if doc and doc.strip() else ""
    return line.replace("``", "`").replace("|", "\\|")


def invariances(normalization: str = "none", relative: str = "none") -> str:
    _library()
    from latentbridge.cli import invariance_table

    return str(invariance_table(normalization, relative))


def projections() -> str:
    lb = _library()
    order = list(lb.transformations.TRANSFORMATIONS)
    rows = []
    for name in lb.projections.available():
        p = lb.projections.get(name)
        rows.append(
            [f"`{name}`", p.description, _names(p.invariances, order), _names(p.scaled_by, order)]
        )
    return _table(["projection", "description", "invariant to", "rescaled by"], rows)


def transformations() -> str:
    lb = _library()
    return ", ".join(f"`{t}`" for t in lb.transformations.TRANSFORMATIONS)


def normalizations() -> str:
    lb = _library()
    order = list(lb.transformations.TRANSFORMATIONS)
    rows = []
    for name, n in lb.normalization.ABSOLUTE.items():
        maps = [
            f"`{t}` → `{n.equivariances[t]}`" if n.equivariances[t] != t else f"`{t}`"
            for t in order
            if t in n.equivariances
        ]
        exact = (
            f" ({', '.join(f'`{t}`' for t in order if t in n.exact_only)} only when the "
            "whitening is exact)"
            if n.exact_only
            else ""
        )
        rows.append(
            [f"`{name}`", n.description, _names(n.invariances, order), ", ".join(maps) + exact]
        )
    return _table(
        ["normalisation", "what it does (fitted on the anchors)", "removes", "keeps (maps to)"],
        rows,
    )


def relative_normalizations() -> str:
    lb = _library()
    rows = [
        [f"`{name}`", n.description, "yes" if n.removes_scale else "no"]
        for name, n in lb.normalization.RELATIVE.items()
    ]
    return _table(["relative normalisation", "what it does", "removes a positive scale"], rows)


def aggregations() -> str:
    lb = _library()
    rows = [
        [f"`{name}`", _first_line(lb.aggregations.get(name).__doc__)]
        for name in lb.aggregations.available()
    ]
    return _table(["aggregation", "what it computes"], rows)


def anchor_strategies() -> str:
    lb = _library()
    return ", ".join(f"`{s}`" for s in lb.anchors.STRATEGIES)


TABLES: dict[str, Callable[..., str]] = {
    "invariances": invariances,
    "projections": projections,
    "transformations": transformations,
    "normalizations": normalizations,
    "relative-normalizations": relative_normalizations,
    "aggregations": aggregations,
    "anchor-strategies": anchor_strategies,
}


def render(markdown: str) -> str:
    """``markdown`` with every marker replaced by its table."""

    def replace(match: re.Match[str]) -> str:
        name, arguments = match.group(1), match.group(2)
        if name not in TABLES:
            raise ValueError(f"unknown generated table {name!r}; known: {sorted(TABLES)}")
        kwargs = dict(pair.split("=", 1) for pair in arguments.split())
        return TABLES[name](**kwargs)

    return MARKER.sub(replace, markdown)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    return render(markdown)
