"""MkDocs hook: the CLI reference, generated from ``latentbridge.cli``'s argparse parser.

``docs/cli.md`` holds the marker ``<!-- cli-reference -->``; this hook replaces it with one
section per sub-command (in the parser's order): its one-line help, then its full ``--help``
text. The text is rendered at a fixed width of 100 columns, so the page does not depend on the
terminal that builds it. A page without the marker is left alone; a ``cli.md`` without it fails
the build, so the reference cannot silently disappear.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

MARKER = "<!-- cli-reference -->"
PAGE = "cli.md"
WIDTH = "100"


def _import_cli() -> Any:
    try:
        from latentbridge import cli
    except ImportError:  # building from a checkout without the package installed
        sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "src"))
        from latentbridge import cli
    return cli


@contextmanager
def _columns(width: str) -> Iterator[None]:
    """argparse wraps its help at ``$COLUMNS`` (via shutil.get_terminal_size)."""
    old = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = width
    try:
        yield
    finally:
        if old is None:
            del os.environ["COLUMNS"]
        else:
            os.environ["COLUMNS"] = old


def subcommands(parser: argparse.ArgumentParser) -> dict[str, tuple[str, argparse.ArgumentParser]]:
    """``{name: (one-line help, sub-parser)}`` of ``parser``'s sub-commands, in their order."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helps = {choice.dest: choice.help or "" for choice in action._choices_actions}
            return {name: (helps.get(name, ""), sub) for name, sub in action.choices.items()}
    return {}


def _fence(text: str) -> str:
    return "```text\n" + text.rstrip() + "\n```"


def render() -> str:
    """The markdown of the reference: the top-level help, then a section per sub-command."""
    cli = _import_cli()
    parser = cli.build_parser()
    with _columns(WIDTH):
        parts = ["## `latentbridge`", "", _fence(parser.format_help()), ""]
        for name, (summary, sub) in subcommands(parser).items():
            parts += [f"## `latentbridge {name}`", ""]
            if summary:
                parts += [summary[0].upper() + summary[1:] + ".", ""]
            parts += [_fence(sub.format_help()), ""]
    return "\n".join(parts)


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        raise ValueError(f"docs/{PAGE} must hold the marker {MARKER!r} for the CLI reference")
    return markdown.replace(MARKER, render())
