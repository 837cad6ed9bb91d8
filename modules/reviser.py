"""Reviser: rewrite a failed pair from the generator's trace and the best search trace."""

from __future__ import annotations

from typing import Any

import dspy

from modules.adapter import json_adapter
from modules.agent import render_trajectory
from modules.generator import Candidate, Draft, Generator, GenResult, write_checked
from modules.generator import render_notes as _notes
from modules.predict import clip, safe_predict, sample_config
from modules.signatures import ReviseQA
from modules.status import Status

FEEDBACK = {
    Status.TOO_EASY: "Too easy: the search agent answered in fewer than {s} searches.",
    Status.INCORRECT: "Incorrect: no search-agent attempt found the answer.",
}


def render_research(trace: list[dict[str, Any]], notes: list[dict[str, Any]], chars: int) -> str:
    """The generator's searches, each with the references of the passages it found (their
    full text is in the notes)."""
    ref = {n["id"]: n["ref"] for n in notes}
    steps = [
        f"searched '{t['query']}' -> "
        + ", ".join(f"{ref.get(p['id'], '?')} {p['title']}" for p in t["passages"])
        for t in trace
        if t["type"] == "search"
    ]
    return clip("; ".join(steps), chars) if steps else "(no searches)"


def render_attempt(attempt: dict[str, Any] | None, passage_chars: int, chars: int) -> str:
    """The chosen search attempt with the text of every passage it read."""
    if not attempt:
        return "(no attempt)"
    traj = render_trajectory(attempt.get("trace") or [], passage_chars, chars)
    verdict = "correct" if attempt.get("correct") else "wrong"
    return (
        f"{traj}\nFinal answer: {attempt.get('answer')} ({verdict}, "
        f"{attempt.get('n_searches')} searches)"
    )


def render_history(history: list[dict[str, Any]], chars: int) -> str:
    """Earlier rounds of this seed: each version, its analysis and how it fared."""
    lines = []
    for h in history:
        analysis = f" Analysis: {h['analysis']}" if h.get("analysis") else ""
        lines.append(
            f"Round {h['round']} ({h['mode']}):{analysis} Question: {h.get('question')} "
            f"Answer: {h.get('answer')} -> {h['status']}"
        )
    return clip("\n".join(lines), chars) if lines else "none"


class Reviser(dspy.Module):
    """Revise a pair that was too easy or incorrect; optionally search again first.

    It sees the seed document, the notes (the full text of every passage the research
    found), the research queries, the chosen search attempt with the passages it read and,
    from round 2 on, the earlier rounds' versions and analyses, each within a character
    budget so the prompt fits a small model's context.
    """

    def __init__(
        self,
        generator: Generator,
        lm: Any | None = None,
        adapter: Any | None = None,
        search: bool = False,
        search_budget: int = 5,
        notes_chars: int = 5000,
        attempt_chars: int = 4000,
        research_chars: int = 1200,
        history_chars: int = 1500,
        attempt_passage_chars: int = 450,
    ):
        super().__init__()
        self.generator = generator
        self.lm = lm
        self.adapter = adapter if adapter is not None else json_adapter()
        self.search = search
        self.search_budget = search_budget
        self.notes_chars = notes_chars
        self.attempt_chars = attempt_chars
        self.research_chars = research_chars
        self.history_chars = history_chars
        self.attempt_passage_chars = attempt_passage_chars
        self.revise = dspy.Predict(ReviseQA)

    def forward(
        self,
        document: str,
        target_steps: int,
        failure: str,
        candidate: Candidate,
        research: list[dict[str, Any]],
        notes: list[dict[str, Any]],
        best_attempt: dict[str, Any] | None,
        history: list[dict[str, Any]] | None = None,
        rollout_id: int | None = None,
    ) -> GenResult:
        draft = Draft(document, target_steps, candidate.answer_type,
                      FEEDBACK[failure].format(s=target_steps), rollout_id,
                      notes=[dict(n) for n in notes])  # fmt: skip
        if self.search:
            self.generator.gather(draft, self.search_budget)

        def predict(retry: int, hint: str) -> tuple[Any, str | None]:
            current = candidate.render()
            if hint:
                current += f"\n(Your last revision broke a rule: {hint})"
            return safe_predict(
                self.revise, draft.meter, self.lm, self.adapter,
                sample_config(rollout_id, None, retry),
                document=clip(document, 2400), target_steps=target_steps,
                answer_type=draft.answer_type, answer_from=self.generator.answer_from,
                failure=failure, current=current,
                generator_trace=render_research(
                    [*research, *draft.trace], draft.notes, self.research_chars
                ),
                search_trace=render_attempt(
                    best_attempt, self.attempt_passage_chars, self.attempt_chars
                ),
                previous_rounds=render_history(history or [], self.history_chars),
                notes=_notes(draft.notes, 1200, self.notes_chars),
            )  # fmt: skip

        return write_checked(
            predict,
            draft,
            lambda pred: {"type": "revised", "failure": failure, "analysis": pred.analysis},
        )
