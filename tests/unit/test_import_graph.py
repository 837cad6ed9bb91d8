"""The import structure: no circle among sage's modules (imports inside functions count
too), and modules/ never imports Prefect or flows/ (flows import modules, not back)."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers import REPO

PACKAGES = ("flows", "modules", "sage")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for path in (REPO / pkg).rglob("*.py"):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            out[name] = path
    return out


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names |= {node.module, *(f"{node.module}.{a.name}" for a in node.names)}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
    return names


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    return {m: {t for t in _imports(p) if t in mods and t != m} for m, p in mods.items()}


def _circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                out.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle_in_flows_or_modules():
    graph = _graph()
    assert len(graph) > 50  # the walk found the packages
    assert _circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    assert _circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_modules_never_import_prefect_or_flows():
    mods = _modules()
    for name, path in mods.items():
        if name.startswith("modules"):
            bad = {t for t in _imports(path) if t.split(".")[0] in ("prefect", "flows")}
            assert not bad, (name, bad)


# Which wing of modules/ may import which: the LM and index layers only the shared top, the
# programs the index's Passage too, the data checks the programs (their judge) and the index.
# The one upward edge: config.py measures the signatures' fixed prompts for the budgets.
WING_IMPORTS = {
    "top": {"top"},
    "llm": {"top", "llm"},
    "index": {"top", "index"},
    "programs": {"top", "index", "programs"},
    "checks": {"top", "index", "programs", "checks"},
}
UPWARD = {
    ("modules.config", "modules.programs.signatures"),
    ("modules.config", "modules.programs.adapter"),
}


def _wing(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 2 else "top"


def test_modules_wings_import_only_their_layers():
    graph = _graph()
    assert {_wing(m) for m in graph if m.startswith("modules.")} == set(WING_IMPORTS)
    bad = {
        (a, b)
        for a, targets in graph.items()
        if a.startswith("modules")
        for b in targets
        if b.startswith("modules.") and _wing(b) not in WING_IMPORTS[_wing(a)]
    }
    assert bad == UPWARD
