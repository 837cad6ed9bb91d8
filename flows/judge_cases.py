"""`sage judge`: re-judge JSON lines {question, gold, aliases?, response} with sage's judge."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from modules.errors import SageError
from modules.judge import Judge


@dataclass(frozen=True)
class Case:
    """One line of a cases file."""

    line: int
    question: str
    gold: str
    aliases: tuple[str, ...]
    response: str | None


def _text(path: Path, n: int, rec: dict[str, Any], field: str, required: bool) -> str | None:
    value = rec.get(field)
    if value is None:
        if required:
            raise SageError(f"{path}:{n}: field '{field}': missing")
        return None
    if not isinstance(value, str):
        raise SageError(f"{path}:{n}: field '{field}': must be a string")
    return value


def read_cases(path: Path) -> list[Case]:
    """Every case of a JSON-lines file; the first bad line is a SageError naming it."""
    if not path.is_file():
        raise SageError(f"{path}: no such file")
    cases = []
    for n, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise SageError(f"{path}:{n}: malformed JSON: {exc.msg} (column {exc.colno})") from exc
        if not isinstance(rec, dict):
            raise SageError(f"{path}:{n}: expected a JSON object")
        aliases = rec.get("aliases") or []
        if not isinstance(aliases, list) or not all(isinstance(a, str) for a in aliases):
            raise SageError(f"{path}:{n}: field 'aliases': must be a list of strings")
        cases.append(
            Case(
                line=n,
                question=_text(path, n, rec, "question", True) or "",
                gold=_text(path, n, rec, "gold", True) or "",
                aliases=tuple(aliases),
                response=_text(path, n, rec, "response", False),
            )
        )
    if not cases:
        raise SageError(f"{path}: no cases")
    return cases


def judge_cases(cases: list[Case], judge: Judge, workers: int = 1) -> Iterator[dict[str, Any]]:
    """One verdict per case, in input order."""

    def one(c: Case) -> dict[str, Any]:
        j = judge(c.question, c.gold, c.response, aliases=list(c.aliases))
        return {"line": c.line, **j.to_dict()}

    if workers <= 1:
        yield from map(one, cases)
        return
    with ThreadPoolExecutor(workers) as pool:
        yield from pool.map(one, cases)


def summarise(verdicts: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "cases": len(verdicts),
        "correct": sum(v["correct"] for v in verdicts),
        "by_method": dict(Counter(v["method"] for v in verdicts).most_common()),
    }
