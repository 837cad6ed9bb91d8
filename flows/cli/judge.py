"""`sage judge CASES.jsonl`: re-judge JSON lines {question, gold, aliases?, response} with
sage's judge; one verdict line per case, in input order."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import typer

from flows.cli.options import JsonOpt, emit
from modules.errors import SageError
from modules.programs.judge import Judge
from modules.settings import Settings


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


def judge(
    ctx: typer.Context,
    cases: Annotated[
        Path, typer.Argument(help='JSON lines {"question", "gold", "aliases"?, "response"}.')
    ],
    no_llm: Annotated[
        bool, typer.Option("--no-llm", help="Model-free only: exact match or undecided.")
    ] = False,
    out: Annotated[Path | None, typer.Option(help="Write the verdict lines here.")] = None,
    concurrency: Annotated[int, typer.Option(help="Cases judged at once.")] = 1,
    as_json: JsonOpt = False,
) -> None:
    """Judge each case with sage's judge; one JSON verdict line per case, in input order."""
    from flows.engine import runtime
    from modules.config import build_config
    from modules.programs.judge import Judge

    settings: Settings = ctx.obj.settings()
    items = read_cases(cases)  # a bad line fails before any model loads
    lm = None
    if not no_llm:
        runtime.configure_lm_cache(settings)
        lm = runtime.role_lm(settings, "judge", concurrency)
    config = build_config(settings)  # the profile's judge guards and temperature
    judge = Judge(
        lm,
        use_llm=not no_llm,
        min_gold_recall=config.judge_min_gold_recall,
        number_guard=config.judge_number_guard,
        temperature=config.role("judge").temperature,
    )
    verdicts = []
    sink = out.open("w", encoding="utf-8") if out else None
    try:
        for v in judge_cases(items, judge, max(1, concurrency)):
            verdicts.append(v)
            line = json.dumps(v, ensure_ascii=False)
            if sink:
                sink.write(line + "\n")
            else:
                typer.echo(line)
    finally:
        if sink:
            sink.close()
    summary = summarise(verdicts) | {"out": str(out) if out else None}
    if out:
        emit(
            summary,
            as_json,
            f"{summary['correct']} of {summary['cases']} judged correct "
            f"({summary['by_method']}); verdicts in {out}",
        )


def register(app: typer.Typer) -> None:
    """Add `judge` to the sage CLI."""
    app.command("judge")(judge)
