"""Solve a question with the search agent and judge each attempt: shared by the SAGE loop,
evaluation and re-verification."""

from __future__ import annotations

import contextvars
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from modules.agent import AgentResult, Meter, SearchAgent
from modules.judge import Judge


@dataclass
class Attempt:
    """One search-agent attempt and its judgement."""

    index: int
    answer: str | None
    n_searches: int
    correct: bool
    judgement: dict[str, Any]
    trace: list[dict[str, Any]]
    meter: dict[str, Any]
    parse_failures: int = 0
    step_calls: int = 0
    forced: bool = False


def attempt(
    agent: SearchAgent,
    judge: Judge,
    question: str,
    golds: list[str],
    index: int,
    rollout: int,
    temperature: float | None,
) -> Attempt:
    """One agent rollout on ``question``, judged against ``golds`` (first = gold, rest aliases).

    A forced answer (given after the search budget ran out) is judged for reports
    (``judgement["correct"]``) but the attempt is never ``correct``: it cannot make a pair
    solved, set its fewest searches or pass re-verification.
    """
    res: AgentResult = agent(question, rollout_id=rollout, temperature=temperature)
    jm = Meter()
    j = judge(question, golds[0], res.answer, aliases=list(golds[1:]), meter=jm)
    meter = res.meter
    meter.add(jm)
    return Attempt(
        index=index,
        answer=res.answer,
        n_searches=res.n_searches,
        correct=j.correct and not res.forced,
        judgement=j.to_dict(),
        trace=res.trace,
        meter=meter.to_dict(),
        parse_failures=res.parse_failures,
        step_calls=res.step_calls,
        forced=res.forced,
    )


def run_attempts(
    agent: SearchAgent,
    judge: Judge,
    question: str,
    golds: list[str],
    k: int,
    base: int,
    temperature: float | None,
    workers: int = 1,
) -> list[Attempt]:
    """K attempts with distinct rollout ids (distinct samples, never one cached answer).

    With ``workers`` > 1 the attempts run in threads (useful against a served LLM with
    parallel slots; an in-process llama.cpp model serialises them anyway).
    """
    args = (agent, judge, question, golds)
    if workers <= 1 or k == 1:
        return [attempt(*args, i, base + i, temperature) for i in range(k)]
    with ThreadPoolExecutor(min(workers, k)) as pool:
        futs = [
            pool.submit(contextvars.copy_context().run, attempt, *args, i, base + i, temperature)
            for i in range(k)
        ]
        return [f.result() for f in futs]
