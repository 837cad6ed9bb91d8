"""The README's Layout section matches the tree: it names every source file of flows/ and
modules/ and every wing of modules/, and names no file that is not there."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from tests.helpers import REPO


def _sources() -> list[Path]:
    """Every source file of flows/ and modules/."""
    return [*(REPO / "flows").rglob("*.py"), *(REPO / "modules").rglob("*.py")]


def _layout() -> str:
    text = (REPO / "README.md").read_text()
    start = text.index("## Layout")
    fence = text.index("```", start)
    return text[fence : text.index("```", fence + 3)]


def test_the_layout_names_every_file_of_flows_and_modules():
    block = _layout()
    files = _sources()
    missing = [
        str(p.relative_to(REPO))
        for p in files
        if p.name != "__init__.py" and not re.search(rf"\b{re.escape(p.name)}\b", block)
    ]
    assert missing == []
    for wing in ("programs", "llm", "index", "checks"):
        assert f"  {wing}/" in block, wing


def test_the_layout_names_no_file_that_is_gone():
    dirs = ("flows", "modules", "sage", "bench", "tests", "deploy")
    names = {p.name for d in dirs for p in (REPO / d).rglob("*.py")}
    named = set(re.findall(r"\b([a-z_0-9]+\.py)\b", _layout()))
    assert named - names == set()


def test_no_function_in_flows_or_modules_is_over_60_lines():
    long = []
    for path in _sources():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > 60:
                    long.append(f"{path.relative_to(REPO)}:{node.lineno} {node.name} {lines}")
    assert long == []
