"""Reviser: rewrite a failed pair from the generator's trace and the best search trace."""

from __future__ import annotations

from typing import Any

import dspy

from modules.agent import Meter, clip, render_trajectory, safe_predict, sample_config
from modules.generator import Candidate, Generator, GenResult, pair_with_retry
from modules.generator import render_notes as _notes
from modules.signatures import ReviseQA

FEEDBACK = {
    "too_easy": "Too easy: the search agent answered in fewer than {s} searches.",
    "incorrect": "Incorrect: no search-agent attempt found the answer.",
}


def render_generator_trace(trace: list[dict[str, Any]], chars: int = 1500) -> str:
    steps = []
    for t in trace:
        if t["type"] == "search":
            steps.append(
                f"searched '{t['query']}' -> {', '.join(p['title'] for p in t['passages'])}"
            )
        elif t["type"] in ("write", "forced_write"):
            steps.append(t["type"])
    return clip("; ".join(steps) or "(no searches)", chars)


def render_attempt(attempt: dict[str, Any] | None, chars: int = 2500) -> str:
    if not attempt:
        return "(no attempt)"
    traj = render_trajectory(attempt.get("trace") or [], 160, chars)
    verdict = "correct" if attempt.get("correct") else "wrong"
    return (
        f"{traj}\nFinal answer: {attempt.get('answer')} ({verdict}, "
        f"{attempt.get('n_searches')} searches)"
    )


class Reviser(dspy.Module):
    """Revise a pair that was too easy or incorrect; optionally search again first."""

    def __init__(
        self,
        generator: Generator,
        lm: Any | None = None,
        adapter: Any | None = None,
        search: bool = False,
        search_budget: int = 5,
    ):
        super().__init__()
        self.generator = generator
        self.lm = lm
        self.adapter = adapter if adapter is not None else dspy.JSONAdapter()
        self.search = search
        self.search_budget = search_budget
        self.revise = dspy.Predict(ReviseQA)

    def forward(
        self,
        document: str,
        target_steps: int,
        failure: str,
        candidate: Candidate,
        generator_trace: list[dict[str, Any]],
        notes: list[dict[str, Any]],
        best_attempt: dict[str, Any] | None,
        rollout_id: int | None = None,
    ) -> GenResult:
        meter, trace = Meter(), []
        notes = [dict(n) for n in notes]
        feedback = FEEDBACK[failure].format(s=target_steps)
        if self.search:
            self.generator.gather(
                document,
                target_steps,
                feedback,
                notes,
                trace,
                meter,
                self.search_budget,
                rollout_id,
            )

        def predict(retry: int, hint: str) -> tuple[Any, str | None]:
            return safe_predict(
                self.revise,
                meter,
                self.lm,
                self.adapter,
                sample_config(rollout_id, None, retry),
                document=clip(document, 2400),
                target_steps=target_steps,
                failure=failure,
                current=candidate.render()
                + (f"\n(Your last revision broke a rule: {hint})" if hint else ""),
                generator_trace=render_generator_trace(generator_trace),
                search_trace=render_attempt(best_attempt),
                notes=_notes(notes, self.generator.passage_chars, self.generator.notes_chars),
            )

        return pair_with_retry(
            predict,
            notes,
            trace,
            meter,
            lambda pred: {"type": "revised", "failure": failure, "analysis": pred.analysis},
        )
