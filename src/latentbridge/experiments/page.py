"""The HTML page of a report: one self-contained file, readable offline.

Everything is inline: the style sheet, the PNG figures as base64 ``data:`` URIs, and one small
script that makes the tables sortable (click a column header, or focus it and press Enter:
ascending, then descending; numbers compare as numbers, ``n/a`` and ``—`` cells stay last).
The page's Content-Security-Policy loads nothing from anywhere and runs that script only (by
its SHA-256 digest), so no string of a results file can run as code even if it were not
escaped; every such string is HTML-escaped anyway.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .tables import Table, to_html

__all__ = ["Block", "config_yaml", "content_security_policy", "figure_html", "render"]

CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:1.5em auto;
max-width:82em;padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:.2em}h2{margin-top:1.8em;border-bottom:1px solid #ddd;padding-bottom:.2em}
.lead{color:#444;margin-top:0}nav{font-size:.9em;margin:.5em 0 1em}nav a{margin-right:1em}
.scroll{overflow-x:auto}
table{border-collapse:collapse;margin:.5em 0 1.2em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:right;white-space:nowrap}
thead th{background:#f0f0f0;text-align:center}tbody th,tfoot th{text-align:left;
font-weight:normal}tfoot{border-top:2px solid #999}
table.sortable thead th{cursor:pointer;user-select:none}
table.sortable thead th:hover{background:#e4e4e4}
th[aria-sort=ascending]::after{content:" \\25B2";font-size:.7em}
th[aria-sort=descending]::after{content:" \\25BC";font-size:.7em}
.note{font-size:.9em;color:#555;max-width:60em}
figure{margin:0 0 1em}figcaption{font-size:.9em;color:#444;max-width:60em}
img{max-width:100%;height:auto}
.headlines{display:grid;grid-template-columns:repeat(auto-fit,minmax(34em,1fr));gap:1em}
.gallery{display:flex;flex-wrap:wrap;gap:1em;align-items:flex-start}
.gallery figure{flex:0 1 auto;max-width:100%}
.gallery.halves figure{max-width:calc(50% - .5em)}
details>summary{cursor:pointer}details>summary h2{display:inline;border:0}
pre{background:#f6f6f6;padding:1em;overflow:auto;font-size:.85em}
"""

#: Sorts the body rows of every ``table.sortable`` by a clicked (or Enter-pressed) header.
SORT_SCRIPT = """
(function () {
  "use strict";
  function number(cell) {
    var value = cell ? cell.getAttribute("data-value") : null;
    return value === null ? null : parseFloat(value);
  }
  function text(cell) { return cell ? cell.textContent : ""; }
  function order(a, b, column, sign) {
    var x = number(a.cells[column]), y = number(b.cells[column]);
    if ((x === null) !== (y === null)) { return x === null ? 1 : -1; }
    if (x !== null) { return sign * (x - y); }
    return sign * text(a.cells[column]).localeCompare(
      text(b.cells[column]), undefined, {numeric: true});
  }
  function sort(table, header, column) {
    var sign = header.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (h) {
      h.removeAttribute("aria-sort");
    });
    header.setAttribute("aria-sort", sign === 1 ? "ascending" : "descending");
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) { return order(a, b, column, sign); });
    rows.forEach(function (row) { body.appendChild(row); });
  }
  document.querySelectorAll("table.sortable").forEach(function (table) {
    if (!table.tHead || !table.tBodies.length) { return; }
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (header, column) {
      header.tabIndex = 0;
      header.title = "Sort by this column";
      header.addEventListener("click", function () { sort(table, header, column); });
      header.addEventListener("keydown", function (event) {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          sort(table, header, column);
        }
      });
    });
  });
}());
"""


def content_security_policy() -> str:
    """The page's policy: nothing is fetched; images from ``data:`` URIs, the inline style
    sheet, and :data:`SORT_SCRIPT` only (allowed by its SHA-256 digest)."""
    digest = base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode("utf-8")).digest()).decode()
    return (
        f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{digest}'"
    )


def figure_html(
    png: bytes, caption: str, *, css_class: str = "", data: Mapping[str, str] | None = None
) -> str:
    """A ``<figure>`` with the PNG as a base64 ``data:`` URI, the caption as its alt text and
    ``<figcaption>``, an optional class and ``data-*`` attributes (names and values escaped)."""
    esc = html.escape
    attributes = f' class="{esc(css_class)}"' if css_class else ""
    for name, value in (data or {}).items():
        attributes += f' data-{esc(name)}="{esc(value)}"'
    encoded = base64.b64encode(png).decode("ascii")
    return (
        f'<figure{attributes}><img src="data:image/png;base64,{encoded}" alt="{esc(caption)}">'
        f"<figcaption>{esc(caption)}</figcaption></figure>"
    )


def gallery(figures: Sequence[str], *, halves: bool = False) -> str:
    """Figures (their HTML) side by side, wrapping to the page's width; with ``halves``, each
    at most half of it (two per line)."""
    if not figures:
        return ""
    kind = "gallery halves" if halves else "gallery"
    return f'<div class="{kind}">{"".join(figures)}</div>'


def table_html(heading: str, table: Table) -> str:
    """A titled table (``<h3>``), scrolling sideways when wider than the page."""
    return f'<h3>{html.escape(heading)}</h3><div class="scroll">{to_html(table)}</div>'


def config_yaml(config: Mapping[str, Any]) -> str:
    """``config`` (a JSON object) as YAML, keys in their order, multi-line strings as literal
    blocks; ``yaml.safe_load`` of the text gives ``config`` back."""
    import yaml

    class _Dumper(yaml.SafeDumper):
        pass

    def text(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    _Dumper.add_representer(str, text)
    return yaml.dump(dict(config), Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=96)


@dataclass(frozen=True)
class Block:
    """A part of the page: its ``<h2>`` title and its HTML body; a collapsed block is a
    closed ``<details>`` whose summary is the title."""

    title: str
    body: str
    collapsed: bool = False


def _block_html(index: int, block: Block) -> str:
    title = html.escape(block.title)
    if block.collapsed:
        return (
            f'<section id="part-{index}"><details><summary><h2>{title}</h2></summary>'
            f"{block.body}</details></section>"
        )
    return f'<section id="part-{index}"><h2>{title}</h2>{block.body}</section>'


def render(title: str, lead: str, blocks: Sequence[Block]) -> str:
    """The whole page: ``title``, a ``lead`` paragraph, links to the blocks, the blocks in
    order, and :data:`SORT_SCRIPT`. ``title`` and ``lead`` are escaped; bodies are HTML."""
    esc = html.escape
    links = "".join(f'<a href="#part-{i}">{esc(b.title)}</a>' for i, b in enumerate(blocks))
    page = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f'<meta http-equiv="Content-Security-Policy" content="{content_security_policy()}">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}</style></head><body>",
        f"<header><h1>{esc(title)}</h1>",
        f'<p class="lead">{esc(lead)}</p>' if lead else "",
        f"<nav>{links}</nav></header><main>",
        *(_block_html(i, b) for i, b in enumerate(blocks)),
        f"</main><script>{SORT_SCRIPT}</script>",
        "</body></html>\n",
    ]
    return "\n".join(part for part in page if part)
