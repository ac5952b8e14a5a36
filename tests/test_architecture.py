"""The package's layering, checked on its source: no import cycles, tasks as plug-ins, one
variant grammar. Function-local imports count as imports here."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "src" / "latentbridge"


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = ("latentbridge", *path.relative_to(ROOT).with_suffix("").parts)
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


MODULES = _modules()


def _imports(name: str) -> set[str]:
    """Every package module that ``name`` imports, at module level or inside functions."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        targets: list[str] = []
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            targets = [f"{module}.{a.name}" for a in node.names] + [module]
        elif isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        for target in targets:
            if target in MODULES and target != name:
                found.add(target)
                break
    return found


GRAPH = {name: _imports(name) for name in MODULES}


def _cycle() -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(GRAPH):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_no_import_cycle_anywhere_in_the_package() -> None:
    assert _cycle() is None, " -> ".join(_cycle() or [])


def test_the_checker_sees_a_function_local_cycle(tmp_path: Path) -> None:
    """Negative control: a cycle closed by an import inside a function is found."""
    GRAPH["latentbridge.projections"].add("latentbridge.modules")  # modules imports projections
    try:
        assert _cycle() is not None
    finally:
        GRAPH["latentbridge.projections"].discard("latentbridge.modules")


TASK_MODULES = [m for m in MODULES if m.startswith("latentbridge.experiments.tasks.")]


@pytest.mark.parametrize("task", TASK_MODULES)
def test_no_task_imports_another_task_or_the_runner(task: str) -> None:
    others = set(TASK_MODULES) - {task}
    forbidden = others | {"latentbridge.experiments.runner", "latentbridge.experiments.report"}
    assert not GRAPH[task] & forbidden


def test_the_core_imports_nothing_of_the_upper_layers() -> None:
    upper = ("latentbridge.experiments", "latentbridge.data", "latentbridge.encoders")
    core = [m for m in MODULES if m.count(".") == 1 and m not in ("latentbridge.cli",)]
    core = [m for m in core if m not in ("latentbridge.cache", "latentbridge.encoding")]
    core = [m for m in core if m not in ("latentbridge.io",) and not m.startswith(upper)]
    for module in core:
        assert not {d for d in GRAPH[module] if d.startswith(upper)}, module


def test_experiments_dispatch_no_module_by_string() -> None:
    for name, path in MODULES.items():
        if name.startswith("latentbridge.experiments"):
            text = path.read_text(encoding="utf-8")
            assert "import_module" not in text and "__import__" not in text, name


def test_the_variant_grammar_is_read_only_in_variants() -> None:
    """Only ``variants.py`` spells the family prefixes (the configs and tests may)."""
    for name, path in MODULES.items():
        if name == "latentbridge.experiments.variants":
            continue
        text = path.read_text(encoding="utf-8")
        # a string that starts a variant name: "product:", f"product:{a}", 'translation:affine'
        spelled = re.search(r"""["'](product|translation):(?=[\w{"'])""", text)
        assert spelled is None, (name, spelled and spelled.group(0))


def test_the_task_plug_ins_match_the_config_schema() -> None:
    """The config's task table and the plug-ins name the same tasks and metrics; the tasks that
    stitch a model also record the label-free anchor consistency, which a config does not
    choose."""
    from latentbridge.experiments import config
    from latentbridge.experiments.results import CONSISTENCY
    from latentbridge.experiments.tasks import TASKS

    assert set(TASKS) == set(config.TASKS)
    for name, task in TASKS.items():
        assert task.name == name
        extra = set() if name == "similarity" else {CONSISTENCY}
        assert {m.name for m in task.metrics} == set(config.TASK_METRICS[name]) | extra, name
        assert CONSISTENCY not in config.TASK_METRICS[name]
