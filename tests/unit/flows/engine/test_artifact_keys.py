"""Every Prefect artifact a flow creates gets its key from flows/engine/artifacts.py's
``artifact_key`` (readable, within Prefect's key rule), never from a hand-made string."""

from __future__ import annotations

import ast

from flows.engine.artifacts import artifact_key
from tests.helpers import REPO


def _from_helper(node: ast.expr, assigned: dict[str, ast.expr]) -> bool:
    if isinstance(node, ast.Name) and node.id in assigned:
        node = assigned[node.id]
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id == "artifact_key"
    )


def _keys(fn: ast.AST) -> list[tuple[int, ast.expr | None, dict[str, ast.expr]]]:
    assigned = {
        t.id: n.value
        for n in ast.walk(fn)
        if isinstance(n, ast.Assign)
        for t in n.targets
        if isinstance(t, ast.Name)
    }
    out = []
    for n in ast.walk(fn):
        name = getattr(getattr(n, "func", None), "id", "")
        if isinstance(n, ast.Call) and name.startswith("create_") and name.endswith("_artifact"):
            key = next((k.value for k in n.keywords if k.arg == "key"), None)
            out.append((n.lineno, key, assigned))
    return out


def test_every_artifact_key_comes_from_the_helper():
    bad, seen = [], 0
    for path in sorted((REPO / "flows").rglob("*.py")):
        tree = ast.parse(path.read_text())
        fns = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for fn in fns:
            for line, key, assigned in _keys(fn):
                seen += 1
                if key is None or not _from_helper(key, assigned):
                    bad.append(f"{path.relative_to(REPO)}:{line}")
    assert seen >= 10  # the flows' artifacts were found (generate, evaluate, validate, ...)
    assert not bad, f"artifact keys not from artifact_key: {sorted(set(bad))}"


def test_the_helper_keeps_keys_within_prefects_rule():
    assert artifact_key("sage", "eval-1", "evaluation", "report") == "sage-eval-1-evaluation-report"
    key = artifact_key("sage", "Run_A", "rounds")
    assert key.startswith("sage-run-a-") and key.endswith("-rounds") and key == key.lower()
