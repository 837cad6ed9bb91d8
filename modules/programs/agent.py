"""The Search-R1 style search agent: think -> search -> read top-k ... -> answer."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import dspy

from modules.index.passages import Passage, Retriever
from modules.programs.adapter import json_adapter
from modules.programs.context import Shown, clip, fit_items, flat, full_length
from modules.programs.predict import Meter, predict_twice, safe_predict, sample_config
from modules.programs.signatures import FinalAnswer, NextStep
from modules.textnorm import query_key


@dataclass
class AgentResult:
    """One attempt of the search agent at one question."""

    answer: str | None
    n_searches: int  # searches made (what the budget counts)
    trace: list[dict[str, Any]] = field(default_factory=list)
    new_searches: int = 0  # searches that retrieved a passage no earlier search had
    reasks: int = 0  # repeated queries sent back to the model instead of searched
    step_calls: int = 0
    parse_failures: int = 0
    forced: bool = False
    meter: Meter = field(default_factory=Meter)


def render_trajectory(
    trace: list[dict[str, Any]], passage_chars: int | None, max_chars: int | None
) -> str:
    """The agent's searches and passages as text (see ``show_trajectory``)."""
    return show_trajectory(trace, passage_chars, max_chars).text


def show_trajectory(
    trace: list[dict[str, Any]], passage_chars: int | None, max_chars: int | None
) -> Shown:
    """The agent's searches and passages, each passage at most ``passage_chars`` (None:
    whole), older searches' passages shortened first to fit ``max_chars`` (None: no limit),
    with the retrieved characters shown and cut."""
    searches = [s for s in trace if s["type"] == "search"]
    if not searches:
        return Shown("(no searches yet)")
    return fit_items(
        lambda limits: _render(searches, limits), len(searches), passage_chars, max_chars
    )


def _render(searches: list[dict[str, Any]], limits: list[int | None]) -> Shown:
    seen: set[str] = set()
    lines, shown, cut = [], 0, 0
    for i, (step, limit) in enumerate(zip(searches, limits, strict=True), start=1):
        lines.append(f"Search {i}: {step['query']}")
        for p in step["passages"]:
            if p["id"] in seen:
                lines.append(f"- {p['title']}: (shown above)")
                continue
            seen.add(p["id"])
            text = clip(p["text"], limit) if limit != 0 else ""
            lines.append(f"- {p['title']}: {text}" if text else f"- {p['title']}")
            kept = len(text.removesuffix("…"))
            shown, cut = shown + kept, cut + max(0, full_length(p) - kept)
    return Shown("\n".join(lines), shown, cut)


def passage_record(p: Passage, chars: int | None) -> dict[str, Any]:
    """A retrieved passage as traces store it: its text (at most ``chars``; None: whole) and
    its full length."""
    return {
        "id": p.id,
        "doc_id": p.doc_id,
        "title": p.title,
        "text": clip(p.text, chars),
        "chars": len(flat(p.text)),
    }


class SearchAgent(dspy.Module):
    """think -> search(query) -> read top-k ... -> answer, with at most `max_searches` searches.

    Every step is one constrained NextStep prediction (action + one text field). A step that
    fails to parse is retried once with another sample; a second failure ends the attempt.
    After the last search the agent gets one more step to answer; a search there ends the
    attempt without an answer, as the SAGE code's agent returns None when its budget is
    spent. With ``force_answer`` (evaluation reports) a FinalAnswer call then asks for a
    best guess, marked ``forced``: it never counts as solving a question.

    A repeated search is not a search: one whose query has an earlier one's content words
    (``textnorm.query_key``: "When did X form?" = "When was X formed?"), or
    that retrieves no passage an earlier search had not, is marked ``"new": False`` and left
    out of ``new_searches``, the count a pair's difficulty is judged by. With
    ``reask_repeats`` (the small profile) a repeated query is not searched at all: the model
    is told and asked again (up to ``MAX_REASKS`` times), its budget untouched.
    """

    MAX_REASKS = 3

    def __init__(
        self,
        retriever: Retriever,
        lm: Any | None = None,
        adapter: Any | None = None,
        k: int = 3,
        max_searches: int = 10,
        passage_chars: int | None = None,
        trajectory_chars: int | None = None,
        force_answer: bool = False,
        reask_repeats: bool = False,
    ):
        super().__init__()
        self.retriever = retriever
        self.lm = lm
        self.adapter = adapter if adapter is not None else json_adapter()
        self.k = k
        self.max_searches = max_searches
        self.passage_chars = passage_chars
        self.trajectory_chars = trajectory_chars
        self.force_answer = force_answer
        self.reask_repeats = reask_repeats
        self.step = dspy.Predict(NextStep)
        self.final = dspy.Predict(FinalAnswer)

    def forward(
        self, question: str, rollout_id: int | None = None, temperature: float | None = None
    ) -> AgentResult:
        res = AgentResult(answer=None, n_searches=0)
        t0 = time.perf_counter()
        while True:
            pred = self._next_step(question, res, rollout_id, temperature)
            if pred is None:
                break  # two malformed steps in a row: the attempt ends
            text = str(pred.text).strip()
            if pred.action == "answer":
                res.answer = text
                res.trace.append({"type": "answer", "reasoning": pred.reasoning, "answer": text})
                break
            repeat = query_key(text) in {query_key(t["query"]) for t in _searches(res.trace)}
            if repeat and self.reask_repeats and res.reasks < self.MAX_REASKS:
                res.reasks += 1
                res.trace.append(
                    {"type": "repeat_query", "reasoning": pred.reasoning, "query": text}
                )
                continue
            if res.n_searches >= self.max_searches:
                res.trace.append({"type": "budget_spent", "reasoning": pred.reasoning})
                break
            self._search(res, text, pred.reasoning, repeat)
        if res.answer is None and self.force_answer:
            self._force_answer(question, res, rollout_id, temperature)
        res.meter.seconds = time.perf_counter() - t0
        return res

    def _search(self, res: AgentResult, query: str, reasoning: str, repeat: bool) -> None:
        """One search; ``new`` when its query is new and it found a passage not seen yet."""
        seen = {p["id"] for t in _searches(res.trace) for p in t["passages"]}
        passages = self.retriever.search(query, k=self.k)
        new = not repeat and any(p.id not in seen for p in passages)
        res.n_searches += 1
        res.new_searches += new
        res.trace.append(
            {
                "type": "search",
                "reasoning": reasoning,
                "query": query,
                "new": new,
                "passages": [passage_record(p, self.passage_chars) for p in passages],
            }
        )

    def _trajectory(self, res: AgentResult) -> str:
        """The trajectory for the next prompt; what it showed and cut goes to the meter."""
        shown = show_trajectory(res.trace, self.passage_chars, self.trajectory_chars)
        res.meter.shown_chars += shown.shown
        res.meter.cut_chars += shown.cut
        last = res.trace[-1] if res.trace else {}
        if last.get("type") == "repeat_query":
            return (
                f"{shown.text}\n(You already searched {last['query']!r}: search for "
                "a fact you do not have yet, or answer.)"
            )
        return shown.text

    def _next_step(
        self, question: str, res: AgentResult, rollout_id: int | None, temperature: float | None
    ) -> Any:
        """One NextStep (retried once with another sample if malformed); None if both fail."""
        traj = self._trajectory(res)

        def call(retry: int, _hint: str) -> tuple[Any, str | None]:
            res.step_calls += 1
            cfg = sample_config(_rid(rollout_id, res.step_calls - 1), temperature, retry)
            return safe_predict(
                self.step,
                res.meter,
                self.lm,
                self.adapter,
                cfg,
                question=question,
                trajectory=traj,
                searches_left=self.max_searches - res.n_searches,
            )

        pred, errors = predict_twice(call, _invalid_step)
        res.parse_failures += len(errors)
        res.trace += [{"type": "parse_failure", "error": e} for e in errors]
        return pred

    def _force_answer(
        self, question: str, res: AgentResult, rollout_id: int | None, temperature: float | None
    ) -> None:
        res.forced = True
        traj = self._trajectory(res)

        def call(retry: int, _hint: str) -> tuple[Any, str | None]:
            cfg = sample_config(_rid(rollout_id, 999), temperature, retry)
            return safe_predict(
                self.final,
                res.meter,
                self.lm,
                self.adapter,
                cfg,
                question=question,
                trajectory=traj,
            )

        def answered(pred: Any) -> str | None:
            return None if str(getattr(pred, "answer", "") or "").strip() else "empty answer"

        pred, errors = predict_twice(call, answered)
        res.parse_failures += len(errors)
        res.trace += [{"type": "parse_failure", "error": e} for e in errors]
        if pred is not None:
            res.answer = str(pred.answer).strip()
            res.trace.append(
                {"type": "forced_answer", "reasoning": pred.reasoning, "answer": res.answer}
            )


def _searches(trace: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [t for t in trace if t["type"] == "search"]


def _rid(rollout_id: int | None, step: int) -> int | None:
    return None if rollout_id is None else rollout_id * 1000 + step


def _invalid_step(pred: Any) -> str | None:
    action = getattr(pred, "action", None)
    if action not in ("search", "answer"):
        return f"invalid action {action!r}"
    if not str(getattr(pred, "text", "") or "").strip():
        return f"empty text for action {action!r}"
    return None
