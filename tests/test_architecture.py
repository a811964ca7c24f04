"""The layers stay as ARCHITECTURE.md draws them: checked on the source, so a wrong import fails here.

- ``rrra_core`` (the science) never imports the annotation store, the app or
  its chart library: data flows files -> rrra_core -> run folder <- app.
- No import cycle among the project's modules, lazy imports inside functions
  included (a cycle hidden in a function is still two modules that each need
  the other).
- ``rrra_core`` keeps a short top level, and no function grows past what a
  reader takes in at once.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("rrra_core", "db", "pages")
FORBIDDEN_IN_CORE = ("db", "pages", "streamlit", "plotly")
MAX_FUNCTION_LINES = 90
MAX_CORE_TOP_LEVEL = 12


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _project_files() -> dict[str, Path]:
    files = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            if "migrations" not in path.parts:
                files[_module_name(path)] = path
    return files


def _imports(path: Path, module: str) -> Iterator[tuple[str, str | None, int]]:
    """``(module, imported name or None, line)`` for every import in the file, nested ones included."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, None, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                yield base, alias.name, node.lineno


def _edges(files: dict[str, Path]) -> dict[str, set[str]]:
    """Project module -> the project modules it imports (``from pkg import submodule`` counts as the submodule)."""
    graph: dict[str, set[str]] = {m: set() for m in files}
    for module, path in files.items():
        for base, name, _ in _imports(path, module):
            target = f"{base}.{name}" if name and f"{base}.{name}" in files else base
            if target in files and target != module:
                graph[module].add(target)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_core_never_imports_the_store_the_app_or_charts() -> None:
    bad = []
    for module, path in _project_files().items():
        if not module.startswith("rrra_core"):
            continue
        for base, _, line in _imports(path, module):
            if base.split(".")[0] in FORBIDDEN_IN_CORE:
                bad.append(f"{path.relative_to(REPO)}:{line} imports {base}")
    assert not bad, "rrra_core must not import db, pages, streamlit or plotly:\n" + "\n".join(bad)


def test_the_store_never_imports_the_app() -> None:
    bad = []
    for module, path in _project_files().items():
        if module.startswith("db"):
            bad += [
                f"{path.relative_to(REPO)}:{line} imports {base}"
                for base, _, line in _imports(path, module)
                if base.split(".")[0] in ("pages", "streamlit", "plotly")
            ]
    assert not bad, "\n".join(bad)


def test_no_import_cycle_among_project_modules() -> None:
    cycles = _cycles(_edges(_project_files()))
    assert not cycles, "import cycles: " + "; ".join(" <-> ".join(c) for c in cycles)


def test_cycle_finder_sees_a_cycle() -> None:
    """The check above can fail: a two-module loop through a lazy import is found."""
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_core_top_level_is_short() -> None:
    top = [p.name for p in (REPO / "rrra_core").iterdir() if p.suffix == ".py" or (p / "__init__.py").is_file()]
    assert len(top) <= MAX_CORE_TOP_LEVEL, sorted(top)


@pytest.mark.parametrize("folder", ["rrra_core", "db", "pages", "scripts"])
def test_no_function_is_too_long(folder: str) -> None:
    paths = sorted((REPO / folder).rglob("*.py"))
    if folder == "pages":
        paths.append(REPO / "app.py")
    long = []
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} ({n} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines:\n" + "\n".join(long)
