"""Verification by execution: the search agent tries a question K times and the judge
decides each attempt. One ``Verifier`` serves the SAGE loop, evaluation, re-verification
and the optimizers' metrics."""

from __future__ import annotations

import contextvars
import random
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from typing import Any

from modules.programs.agent import AgentResult, SearchAgent
from modules.programs.judge import Judge
from modules.programs.predict import Meter
from modules.programs.status import Status


@dataclass
class Attempt:
    """One search-agent attempt and its judgement."""

    index: int
    answer: str | None
    n_searches: int  # searches that retrieved something new: what difficulty counts
    correct: bool
    judgement: dict[str, Any]
    trace: list[dict[str, Any]]
    meter: dict[str, Any]
    parse_failures: int = 0
    step_calls: int = 0
    forced: bool = False
    searches_made: int | None = None  # every search, repeats included (None: older records)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Attempt:
        """An attempt from its stored record (``asdict``), ignoring unknown keys."""
        return cls(**{f.name: d[f.name] for f in fields(cls) if f.name in d})


def fewest_searches(attempts: list[Attempt]) -> Attempt | None:
    """The correct attempt with the fewest searches (first by index on ties), if any."""
    correct = [a for a in attempts if a.correct]
    return min(correct, key=lambda a: (a.n_searches, a.index)) if correct else None


def verdict(attempts: list[Attempt], target_steps: int | None) -> Status:
    """accepted (pass@K and fewest searches among correct >= S; with no S, pass@K alone),
    too_easy, or incorrect."""
    best = fewest_searches(attempts)
    if best is None:
        return Status.INCORRECT
    if target_steps is None or best.n_searches >= target_steps:
        return Status.ACCEPTED
    return Status.TOO_EASY


def best_attempt(attempts: list[Attempt], rng: random.Random) -> Attempt | None:
    """The trace the reviser sees, as the SAGE code chooses it: the correct attempt with
    the fewest searches, else a random attempt that gave an answer, else a random one."""
    if best := fewest_searches(attempts):
        return best
    answered = [a for a in attempts if a.answer and a.answer.strip().lower() != "none"]
    pool = answered or attempts
    return rng.choice(pool) if pool else None


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
        n_searches=res.new_searches,
        correct=j.correct and not res.forced,
        judgement=j.to_dict(),
        trace=res.trace,
        meter=meter.to_dict(),
        parse_failures=res.parse_failures,
        step_calls=res.step_calls,
        forced=res.forced,
        searches_made=res.n_searches,
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


@dataclass
class Verifier:
    """The search agent and the judge that verify a question by execution: ``attempts``
    tries (``workers`` of them at once), sampled at ``temperature``."""

    agent: SearchAgent
    judge: Judge
    attempts: int = 1
    temperature: float | None = 0.7
    workers: int = 1

    def __call__(self, question: str, golds: list[str], base: int) -> list[Attempt]:
        """The judged attempts, with rollout ids ``base``, ``base + 1``, ..."""
        return run_attempts(
            self.agent,
            self.judge,
            question,
            golds,
            self.attempts,
            base,
            self.temperature,
            self.workers,
        )
