"""The documentation site builds, its CLI reference is complete, its results page copies the
measured figures unchanged, and its tutorials run.

The site is built with ``mkdocs build --strict`` (the ``docs`` extra), as ``make docs`` does;
the test is skipped, with the reason, where MkDocs or one of its plugins is not installed.

**Which code blocks are executed.** Every page of ``EXECUTED_PAGES`` (getting started, concepts
and the three tutorials) runs from top to bottom, in a fresh temporary working folder, its fenced
blocks in page order:

- ```` ```python ```` blocks are executed in one namespace per page (a later block sees the
  names of the earlier ones), in this process, with torch's random state restored afterwards;
- ```` ```bash ```` blocks are executed by ``bash -euo pipefail``, with this interpreter's
  environment first on ``PATH`` (so ``latentbridge`` is the checkout's);
- a block with a ``title="NAME"`` attribute (e.g. ```` ```yaml title="tiny.yaml" ````) is a
  file: its text is written to ``NAME`` in the working folder, and a later block reads it;
- ```` ```console ```` and ```` ```text ```` blocks are shown, not executed: console blocks hold
  commands that cannot run in a test (the full benchmark runs, hours on a CPU; ``make``'s
  machine set-up), text blocks hold output. The pages keep them few and say what they are, and
  each command of a console block is checked instead: it parses with the CLI's parser (a
  ``run`` names a config that loads) or names a Makefile target.

Any other fenced block on those pages fails the test, so a misspelt language cannot silently
skip a block. Tutorials print their real outputs; a number the prose relies on is asserted in
the executed code (with a tolerance), never written into the text.

Encodings go to one embedding cache per test session (``LATENTBRIDGE_CACHE`` in a temporary
folder), so the pages that encode the same texts share it and nothing is written to the user's
cache.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType, SimpleNamespace

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
BIN = Path(sys.executable).parent
EXECUTED_PAGES = (
    "getting-started.md",
    "concepts.md",
    "tutorials/swap-encoder.md",
    "tutorials/reproduce.md",
    "tutorials/compare.md",
)
EXECUTED = ("python", "bash")
SHOWN = ("console", "text")
BLOCK_TIMEOUT_S = 300
# A fenced block, possibly indented (in a list item or an admonition): indent, info, code.
FENCE = re.compile(r"^( *)```([\w-]*)([^\n]*)\n(.*?)^\1```[ \t]*$", re.MULTILINE | re.DOTALL)
TITLE = re.compile(r'title="([^"]+)"')


@dataclass(frozen=True)
class Block:
    language: str
    title: str | None
    code: str
    line: int


def blocks(page: str) -> list[Block]:
    """The fenced blocks of ``docs/page``, in order."""
    text = (DOCS / page).read_text(encoding="utf-8")
    found = []
    for match in FENCE.finditer(text):
        indent, language, info, code = match.groups()
        title = TITLE.search(info)
        line = text.count("\n", 0, match.start()) + 1
        code = textwrap.dedent(code) if indent else code
        found.append(Block(language, title and title.group(1), code, line))
    return found


@pytest.fixture(scope="session")
def docs_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for every page of the session (pages encode the same texts)."""
    return tmp_path_factory.mktemp("latentbridge-cache")


def _run_page(page: str, folder: Path) -> None:
    namespace: dict[str, object] = {"__name__": "__docs__"}
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    for block in blocks(page):
        where = f"docs/{page}:{block.line}"
        start = time.perf_counter()
        if block.title is not None:
            target = folder / block.title
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(block.code, encoding="utf-8")
        elif block.language == "python":
            with torch.random.fork_rng(devices=[]):
                exec(compile(block.code, where, "exec"), namespace)
        elif block.language == "bash":
            done = subprocess.run(
                ["bash", "-euo", "pipefail", "-c", block.code],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=BLOCK_TIMEOUT_S,
            )
            print(f"$ {block.code}{done.stdout}{done.stderr}")
            assert done.returncode == 0, f"{where} exited with {done.returncode}:\n{done.stderr}"
        else:
            assert block.language in SHOWN, (
                f"{where}: a ```{block.language} block is neither executed {EXECUTED} nor shown "
                f'{SHOWN} (a file needs title="NAME")'
            )
        print(f"[{where} {block.language}: {time.perf_counter() - start:.1f} s]")


@pytest.mark.parametrize("page", EXECUTED_PAGES)
def test_page_code_blocks_run(
    page: str, tmp_path: Path, docs_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    found = blocks(page)
    assert any(b.language in EXECUTED and b.title is None for b in found), page
    fences = [
        ln
        for ln in (DOCS / page).read_text(encoding="utf-8").splitlines()
        if ln.lstrip().startswith("```")
    ]
    assert len(fences) == 2 * len(found), f"docs/{page}: a fence that is not ``` ... ```"
    monkeypatch.setenv("LATENTBRIDGE_CACHE", str(docs_cache))
    monkeypatch.chdir(tmp_path)
    _run_page(page, tmp_path)


def _shown_commands() -> list[tuple[str, str]]:
    """(where, command) of every command line of the ``console`` blocks of the executed pages
    (a trailing ``# comment`` removed)."""
    found = []
    for page in EXECUTED_PAGES:
        for block in blocks(page):
            if block.language != "console":
                continue
            for i, line in enumerate(block.code.splitlines()):
                command = line.split("  #")[0].split(" # ")[0].strip()
                if command:
                    found.append((f"docs/{page}:{block.line + 1 + i}", command))
    return found


def test_the_commands_shown_but_not_run_are_valid() -> None:
    """The console blocks (the long runs, ``make``'s set-up) are not executed, so each command
    is checked instead: a ``latentbridge`` command parses with the real parser (and a ``run``
    names a config that loads), a ``make`` command names a target of the Makefile."""
    import shlex

    from latentbridge.cli import build_parser
    from latentbridge.experiments.config import load_config

    commands = _shown_commands()
    assert commands, "no console block to check"
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text(), re.MULTILINE))
    for where, command in commands:
        words = shlex.split(command)
        if words[0] == "make":
            assert set(words[1:]) <= targets, f"{where}: {command!r} names no Makefile target"
            continue
        assert words[0] == "latentbridge", f"{where}: {command!r} is not a command to check"
        args = build_parser().parse_args(words[1:])
        if words[1] == "run":
            load_config(args.config)


# -- the CLI reference ----------------------------------------------------------------------


def _hook(name: str) -> ModuleType:
    """The MkDocs hook ``docs/hooks/<name>.py``, imported as MkDocs imports it."""
    spec = importlib.util.spec_from_file_location(name, DOCS / "hooks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _subcommands() -> Iterator[tuple[str, str]]:
    """``(name, usage line)`` of every sub-command of the real parser."""
    import argparse

    from latentbridge.cli import build_parser

    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub.format_usage().split("\n")[0]


def test_cli_page_lists_every_subcommand() -> None:
    hook = _hook("cli_reference")
    source = (DOCS / "cli.md").read_text(encoding="utf-8")
    page = SimpleNamespace(file=SimpleNamespace(src_uri="cli.md"))
    markdown = hook.on_page_markdown(source, page=page, config=None, files=None)
    assert hook.MARKER not in markdown
    names = [name for name, _ in _subcommands()]
    assert names, "the parser has no sub-commands"
    for name, usage in _subcommands():
        assert f"## `latentbridge {name}`" in markdown, name
        assert f"usage: latentbridge {name}" in markdown, usage
    # in the parser's order
    positions = [markdown.index(f"## `latentbridge {name}`") for name in names]
    assert positions == sorted(positions)
    other = SimpleNamespace(file=SimpleNamespace(src_uri="index.md"))
    assert hook.on_page_markdown("text", page=other, config=None, files=None) == "text"


# -- the results page -----------------------------------------------------------------------


def test_results_page_copies_the_measured_figures_unchanged() -> None:
    """Every table row of ``docs/results.md`` is a row of the README, where each figure is
    stated with the command that measured it: none is invented or rounded differently."""
    readme = set((ROOT / "README.md").read_text(encoding="utf-8").splitlines())
    rows = [
        line
        for line in (DOCS / "results.md").read_text(encoding="utf-8").splitlines()
        if line.startswith("|") and re.search(r"\d", line)
    ]
    assert len(rows) > 50
    missing = [row for row in rows if row not in readme]
    assert not missing, "rows of docs/results.md not in README.md:\n" + "\n".join(missing)


# -- the site -------------------------------------------------------------------------------


def _missing_docs_tools() -> str | None:
    for module, package in (
        ("mkdocs", "mkdocs"),
        ("material", "mkdocs-material"),
        ("mkdocstrings_handlers.python", "mkdocstrings-python"),
    ):
        try:
            found = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            found = None
        if found is None:
            return f"{package} is not installed (pip install '.[docs]')"
    return None


def test_site_builds_strict(tmp_path: Path) -> None:
    missing = _missing_docs_tools()
    if missing:
        pytest.skip(missing)
    site = tmp_path / "site"
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    cli = (site / "cli" / "index.html").read_text(encoding="utf-8")
    for name, _ in _subcommands():
        assert f"latentbridge {name}</code>" in cli, name
    for page in (
        "tutorials/swap-encoder",
        "tutorials/reproduce",
        "tutorials/compare",
        "architecture",
        "results",
        "concepts",
        "api/estimator",
    ):
        assert (site / page / "index.html").is_file(), page
