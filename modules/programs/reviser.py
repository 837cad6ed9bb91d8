"""Reviser: rewrite a failed pair from the generator's trace and the best search trace."""

from __future__ import annotations

from typing import Any

import dspy

from modules.programs.adapter import json_adapter
from modules.programs.agent import show_trajectory
from modules.programs.context import Shown, clip
from modules.programs.generator import (
    Candidate,
    Draft,
    Generator,
    GenResult,
    counted,
    named_question,
    show_notes,
    target_text,
    write_checked,
)
from modules.programs.predict import safe_predict, sample_config
from modules.programs.signatures import ReviseQA
from modules.programs.status import Status

FEEDBACK = {
    Status.TOO_EASY: "Too easy: the search agent answered in fewer than {s} searches.",
    Status.INCORRECT: "Incorrect: no search-agent attempt found the answer.",
}


def render_research(
    trace: list[dict[str, Any]], notes: list[dict[str, Any]], chars: int | None
) -> str:
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


def render_attempt(
    attempt: dict[str, Any] | None, passage_chars: int | None, chars: int | None
) -> str:
    """The chosen search attempt with the text of every passage it read."""
    return show_attempt(attempt, passage_chars, chars).text


def show_attempt(
    attempt: dict[str, Any] | None, passage_chars: int | None, chars: int | None
) -> Shown:
    """``render_attempt`` with the retrieved characters shown and cut."""
    if not attempt:
        return Shown("(no attempt)")
    traj = show_trajectory(attempt.get("trace") or [], passage_chars, chars)
    verdict = "correct" if attempt.get("correct") else "wrong"
    text = (
        f"{traj.text}\nFinal answer: {attempt.get('answer')} ({verdict}, "
        f"{attempt.get('n_searches')} searches)"
    )
    return Shown(text, traj.shown, traj.cut)


def render_history(history: list[dict[str, Any]], chars: int | None) -> str:
    """Earlier rounds of this seed: each version, its analysis, how it fared and the
    feedback it got."""
    lines = []
    for h in history:
        analysis = f" Analysis: {h['analysis']}" if h.get("analysis") else ""
        feedback = f" Feedback: {h['feedback']}" if h.get("feedback") else ""
        lines.append(
            f"Round {h['round']} ({h['mode']}):{analysis} Question: {h.get('question')} "
            f"Answer: {h.get('answer')} -> {h['status']}.{feedback}"
        )
    return clip("\n".join(lines), chars) if lines else "none"


def feedback_text(status: str, target_steps: int | None) -> str:
    """The feedback a round's verdict gives the reviser."""
    return FEEDBACK[status].format(s=target_text(target_steps))


class Reviser(dspy.Module):
    """Revise a pair that was too easy or incorrect; optionally search again first.

    It sees the seed document, the notes (the text of every passage the research found),
    the research queries, the chosen search attempt with the passages it read and, from
    round 2 on, the earlier rounds' versions, analyses and feedback. Each part has a
    character budget (``None``: whole); under the ``paper`` profile they are derived from
    the context window, so nothing is cut while the prompt fits.
    """

    def __init__(
        self,
        generator: Generator,
        lm: Any | None = None,
        adapter: Any | None = None,
        search: bool = False,
        search_budget: int = 5,
        notes_chars: int | None = None,
        attempt_chars: int | None = None,
        research_chars: int | None = None,
        history_chars: int | None = None,
        attempt_passage_chars: int | None = None,
        note_chars: int | None = None,
        temperature: float | None = None,
        max_tokens: int | None = None,
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
        self.note_chars = note_chars
        self.temperature = temperature
        self.max_tokens = max_tokens
        self.revise = dspy.Predict(ReviseQA)

    def _sampling(self, rollout_id: int | None, retry: int) -> dict[str, Any]:
        cfg = sample_config(rollout_id, self.temperature, retry)
        if self.max_tokens:
            cfg["max_tokens"] = self.max_tokens
        return cfg

    def forward(
        self,
        document: str,
        target_steps: int | None,
        failure: str,
        candidate: Candidate,
        research: list[dict[str, Any]],
        notes: list[dict[str, Any]],
        best_attempt: dict[str, Any] | None,
        history: list[dict[str, Any]] | None = None,
        rollout_id: int | None = None,
    ) -> GenResult:
        draft = Draft(
            document,
            target_steps,
            candidate.answer_type,
            feedback_text(failure, target_steps),
            rollout_id,
            notes=[dict(n) for n in notes],
        )
        if self.search:
            self.generator.gather(draft, self.search_budget)

        def predict(retry: int, hint: str) -> tuple[Any, str | None]:
            current = candidate.render()
            if hint:
                current += f"\n(Your last revision broke a rule: {hint})"
            return safe_predict(
                self.revise,
                draft.meter,
                self.lm,
                self.adapter,
                self._sampling(rollout_id, retry)
                | named_question(self.revise.signature, draft.must_name, draft.must_words),
                document=clip(document, self.generator.doc_chars),
                target_steps=target_text(target_steps),
                answer_type=draft.answer_type,
                answer_from=self.generator.answer_from,
                failure=failure,
                current=current,
                generator_trace=render_research(
                    [*research, *draft.trace], draft.notes, self.research_chars
                ),
                search_trace=counted(
                    show_attempt(best_attempt, self.attempt_passage_chars, self.attempt_chars),
                    draft.meter,
                ),
                previous_rounds=render_history(history or [], self.history_chars),
                notes=counted(
                    show_notes(draft.notes, self.note_chars, self.notes_chars), draft.meter
                ),
            )

        return write_checked(
            predict,
            draft,
            lambda pred: {"type": "revised", "failure": failure, "analysis": pred.analysis},
            self.generator.bridge_rule,
            doc_chars=self.generator.doc_chars,
        )
