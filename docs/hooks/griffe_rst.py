"""Griffe extension: render the reStructuredText idioms of the docstrings as Markdown.

The docstrings of ``latentbridge`` are written for reading in a terminal and in Sphinx-aware
tools: Google-style sections (``Args:``, ``Returns:``, ``Raises:``), double-backtick literals,
and a few reST constructs that Markdown does not know. Before mkdocstrings parses a docstring,
this extension rewrites those constructs, and nothing else:

- roles (``:func:`name```, ``:class:`~pkg.Name```, ``:mod:``, ``:meth:``, ``:attr:``,
  ``:data:``, ``:exc:``, ``:obj:``) become code spans, linked to the object's API entry when
  the name resolves inside the package (from the documented object outward) and plain where it
  does not (an external name such as ``torch.cdist``, or a private helper);
- literal blocks (a paragraph ending in ``::`` followed by an indented block) become fenced
  code blocks (``python`` where the block parses as Python, else ``text``);
- simple tables (columns delimited by ``=====`` rules) become Markdown tables, a line whose
  first column is blank continuing the row above;
- a ``<`` that would open a raw HTML tag in prose (``<z, a>``) is escaped;
- a paragraph that closes a NumPy-style item section (``Parameters`` / ``Attributes`` ...
  underlined with dashes) without being an item of it is moved above the section: the NumPy
  parser would read its first word as one more parameter.

Code spans and fenced blocks are left as they are. Configured in ``mkdocs.yml`` under the
python handler's ``extensions``.
"""

from __future__ import annotations

import ast
import html
import re
import textwrap
from collections.abc import Callable, Iterator
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(func|class|meth|attr|mod|data|exc|obj|const):`(~?)([^`]+)`")
PLACEHOLDER = re.compile("\x00(\\d+)\x01*\x00")
RULE = re.compile(r"^( *)(=+)((?: +=+)+) *$")
CODE_SPAN = re.compile(r"(`+)(.+?)\1")
FENCE = re.compile(r"^\s*(```|~~~)")
NUMPY_ITEMS = re.compile(
    r"^( *)(Parameters|Other Parameters|Attributes|Returns|Yields|Receives|Raises|Warns)\s*$"
)
DASHES = re.compile(r"^ *-{3,}\s*$")
# "name", "name : type", "a, b : type", "*args"
ITEM = re.compile(r"^[*\w][\w.]*(?:\s*,\s*[*\w][\w.]*)*\s*(?::.*)?$")

Resolver = Callable[[str], "str | None"]


def _outside_code(text: str, convert: Callable[[str], str]) -> str:
    """Apply ``convert`` to the parts of one line that are not code spans."""
    out, last = [], 0
    for match in CODE_SPAN.finditer(text):
        out.append(convert(text[last : match.start()]))
        out.append(match.group(0))
        last = match.end()
    out.append(convert(text[last:]))
    return "".join(out)


def _escape_html(text: str) -> str:
    return re.sub(r"<(?=[A-Za-z/!?|])", "&lt;", text)


def _roles(text: str, resolve: Resolver) -> tuple[str, list[str]]:
    """``text`` with every role replaced by a placeholder, and the placeholders' HTML.

    A role may span lines and may carry a title (``:meth:`title <target>```)."""
    spans: list[str] = []

    def replace(match: re.Match[str]) -> str:
        _, short, content = match.groups()
        content = " ".join(content.split())
        titled = re.fullmatch(r"(.*?)\s*<([^<>]+)>", content)
        target = (titled.group(2) if titled else content).strip().lstrip(".")
        shown = titled.group(1) if titled else target.rsplit(".", 1)[-1] if short else target
        span = f"``{shown}``"
        path = resolve(target)
        if path is not None:
            span = f'<autoref identifier="{html.escape(path)}" optional>{span}</autoref>'
        spans.append(span)
        key = f"\x00{len(spans) - 1}"
        # As wide as the role on its line, so that the columns of a simple table stay put.
        width = 0 if "\n" in match.group(0) else len(match.group(0)) - len(key) - 1
        return key + "\x01" * max(width, 0) + "\x00"

    return ROLE.sub(replace, text), spans


def _prose(line: str) -> str:
    """Escape raw-HTML openers outside code spans."""
    return _outside_code(line, _escape_html)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _table(lines: list[str], start: int) -> tuple[list[str], int] | None:
    """The Markdown table of the simple table whose top rule is ``lines[start]``, and the index
    after its bottom rule; None when the rules do not make a header-and-body table."""
    top = RULE.match(lines[start])
    if top is None:
        return None
    indent = len(top.group(1))
    rule = lines[start].rstrip()
    starts = [m.start() for m in re.finditer(r"=+", rule)]
    rules = [i for i in range(start, len(lines)) if lines[i].rstrip() == rule]
    if len(rules) < 3:
        return None
    header_end, bottom = rules[1], rules[2]

    def cells(line: str) -> list[str]:
        line = line.rstrip()
        bounds = [*starts[1:], max(len(line), starts[-1])]
        return [line[a:b].strip() for a, b in zip(starts, bounds, strict=True)]

    def rows(first: int, stop: int) -> list[list[str]]:
        out: list[list[str]] = []
        for line in lines[first:stop]:
            if not line.strip():
                continue
            row = cells(line)
            continuing = out and (not row[0] or out[-1][0].endswith(","))
            if continuing:
                out[-1] = [f"{a} {b}".strip() for a, b in zip(out[-1], row, strict=True)]
            else:
                out.append(row)
        return out

    def markdown(row: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"

    head, body = rows(start + 1, header_end), rows(header_end + 1, bottom)
    pad = " " * indent
    table = [pad + markdown(r) for r in head]
    table.append(pad + "|" + "---|" * len(starts))
    table += [pad + markdown(r) for r in body]
    return ["", *table, ""], bottom + 1


def _literal_block(lines: list[str], i: int) -> tuple[list[str], list[str], int]:
    """``lines[i]`` ends with ``::``: that line (with one colon), the indented block that
    follows as a fenced block, and the index after the block."""
    line = lines[i]
    intro = line.rstrip()[:-2].rstrip()
    head = [] if not intro.strip() else [intro + ":"]
    j = i + 1
    while j < len(lines) and not lines[j].strip():
        j += 1
    base = _indent(line)
    end = j
    while end < len(lines) and (not lines[end].strip() or _indent(lines[end]) > base):
        end += 1
    while end > j and not lines[end - 1].strip():
        end -= 1
    if end == j:  # no indented block follows: a colon, not a literal block
        return [intro + ":"], [], i + 1
    block = textwrap.dedent("\n".join(lines[j:end]))
    try:
        ast.parse(block)
        language = "python"
    except SyntaxError:
        language = "text"
    pad = " " * base
    fence = [
        pad + f"```{language}",
        *[pad + b if b else "" for b in block.splitlines()],
        pad + "```",
    ]
    return head, ["", *fence, ""], end


def _numpy_trailers(lines: list[str]) -> list[str]:
    """Move the prose paragraphs that end a NumPy-style item section above its header."""
    out = list(lines)
    i = 0
    while i + 1 < len(out):
        header = NUMPY_ITEMS.match(out[i])
        if header is None or not DASHES.match(out[i + 1]):
            i += 1
            continue
        base, start = len(header.group(1)), i
        j = i + 2
        while j < len(out):
            line = out[j]
            if line.strip() and _indent(line) < base:
                break
            if line.strip() and j + 1 < len(out) and DASHES.match(out[j + 1]):
                break  # the next section's header
            prose = not ITEM.match(line.strip())
            if line.strip() and _indent(line) == base and not out[j - 1].strip() and prose:
                end = j
                while end < len(out) and out[end].strip():
                    end += 1
                paragraph = out[j:end]
                del out[j:end]
                out[start:start] = [*paragraph, ""]
                start += len(paragraph) + 1
                j += len(paragraph) + 1
                continue
            j += 1
        i = j
    return out


def convert(text: str, resolve: Resolver) -> str:
    """The Markdown of the docstring ``text``."""
    text, spans = _roles(text, resolve)
    lines = _numpy_trailers(text.splitlines())
    out: list[str] = []
    i, fenced = 0, False
    while i < len(lines):
        line = lines[i]
        if FENCE.match(line):
            fenced = not fenced
            out.append(line)
            i += 1
            continue
        if fenced:
            out.append(line)
            i += 1
            continue
        if RULE.match(line):
            table = _table(lines, i)
            if table is not None:
                rows, i = table
                out += [_prose(r) for r in rows]
                continue
        if line.rstrip().endswith("::") and not line.rstrip().endswith(":::"):
            head, fence, i = _literal_block(lines, i)
            out += [_prose(h) for h in head] + fence  # the block stays verbatim
            continue
        out.append(_prose(line))
        i += 1
    return PLACEHOLDER.sub(lambda m: spans[int(m.group(1))], "\n".join(out))


def _walk(obj: Any) -> Iterator[Any]:
    yield obj
    for member in obj.members.values():
        if member.is_alias:
            continue
        yield from _walk(member)


class ReSTToMarkdown(griffe.Extension):
    """Rewrite the docstrings of the loaded package (see the module docstring)."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        objects = list(_walk(pkg))
        paths: dict[str, str] = {o.path: o.path for o in objects}
        for obj in objects:  # re-exports resolve to the object they name
            for name, member in obj.members.items():
                if member.is_alias:
                    try:
                        paths.setdefault(f"{obj.path}.{name}", member.final_target.path)
                    except (griffe.AliasResolutionError, griffe.CyclicAliasError):
                        pass
        for obj in objects:
            if obj.docstring is None:
                continue
            obj.docstring.value = convert(obj.docstring.value, _resolver(obj, pkg.path, paths))


def _resolver(obj: Any, root: str, paths: dict[str, str]) -> Resolver:
    scopes = []
    scope = obj
    while scope is not None:
        scopes.append(scope.path)
        scope = scope.parent
    scopes.append("")

    def resolve(name: str) -> str | None:
        for prefix in scopes:
            path = f"{prefix}.{name}" if prefix else name
            if path in paths:
                return paths[path]
        if not name.startswith(root + "."):
            path = f"{root}.{name}"
            if path in paths:
                return paths[path]
        return None

    return resolve
