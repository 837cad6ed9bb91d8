"""Generator (reverse formulation): research the corpus from a seed document, write a QA pair."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import dspy

from modules.adapter import json_adapter
from modules.agent import Meter, clip, passage_record, safe_predict, sample_config
from modules.passages import Retriever
from modules.signatures import ANSWER_SOURCES, ResearchStep, WriteQA
from modules.textnorm import contains_answer, normalize

_HOW_WHY = re.compile(r"^\s*(how|why)\b", re.I)
_REF = re.compile(r"P(\d+)")
_NOTE_REF = re.compile(r"\bP\d+\b")


@dataclass
class Candidate:
    """A question/answer pair with its answering plan."""

    question: str
    answer: str
    answer_type: str
    plan: list[dict[str, Any]] = field(default_factory=list)
    supporting_ids: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        hops = "; ".join(f"{p.get('sub_question')} -> {p.get('sub_answer')}" for p in self.plan)
        return f"Question: {self.question}\nAnswer: {self.answer}\nPlan: {hops or '(none)'}"


@dataclass
class GenResult:
    """What a generation (or revision) produced, and how."""

    candidate: Candidate | None
    trace: list[dict[str, Any]]
    notes: list[dict[str, Any]]  # [{ref, id, title, text}], P1 = the seed document
    meter: Meter
    error: str | None = None


def check_candidate(question: str, answer: str) -> str | None:
    """Why a pair breaks the rules, or None."""
    if not question.strip() or not answer.strip():
        return "empty question or answer"
    if _HOW_WHY.match(question):
        return "how/why questions are not allowed"
    if len(answer.split()) > 10:
        return "the answer must be short (an entity, date or number)"
    if contains_answer(question, answer):
        return "the question contains its answer"
    if _NOTE_REF.search(answer):
        return "the answer must be the fact itself, not a note reference like P2"
    words = normalize(answer).split()
    half = len(words) // 2
    if half and len(words) % 2 == 0 and words[:half] == words[half:]:
        return "the answer repeats itself; give the entity once"
    if re.search(r"\b(the|this) (document|passage|text|article)\b", question, re.I):
        return "the question must stand alone (no 'the document/passage')"
    return None


def render_notes(notes: list[dict[str, Any]], chars: int, total: int) -> str:
    lines = [f"{n['ref']} {n['title']}: {clip(n['text'], chars)}" for n in notes[1:]]
    return clip("\n".join(lines), total) if lines else "(none yet)"


def candidate_from(pred: Any, notes: list[dict[str, Any]], answer_type: str) -> Candidate:
    plan = [p.model_dump() if hasattr(p, "model_dump") else dict(p) for p in (pred.plan or [])]
    by_ref = {n["ref"]: n["id"] for n in notes}
    ids = [
        by_ref[f"P{m}"]
        for p in plan
        for m in _REF.findall(str(p.get("passage", "")))
        if f"P{m}" in by_ref
    ]
    ids = list(dict.fromkeys([notes[0]["id"], *ids]))
    return Candidate(
        question=str(pred.question).strip(),
        answer=str(pred.answer).strip(),
        answer_type=answer_type,
        plan=plan,
        supporting_ids=ids,
    )


class Generator(dspy.Module):
    """Research (search the corpus from the seed document), then write a QA pair.

    The research loop ends when the model chooses to write, when ``max_searches`` is spent
    (forced finalisation) or after two unparseable steps in a row. An invalid pair is
    rewritten once with the rule it broke as feedback; a second failure gives no candidate.
    The answer type (entity, date or number) is drawn per seed and given as an input, as
    the SAGE code does; ``answer_source`` says where the answer may come from: "seed" (the
    seed document) or "any" (any passage found, as in the SAGE code).
    """

    def __init__(
        self,
        retriever: Retriever,
        lm: Any | None = None,
        adapter: Any | None = None,
        k: int = 3,
        max_searches: int = 20,
        passage_chars: int = 350,
        notes_chars: int = 5000,
        answer_source: str = "seed",
    ):
        super().__init__()
        if answer_source not in ANSWER_SOURCES:
            raise ValueError(f"answer_source must be one of {sorted(ANSWER_SOURCES)}")
        self.answer_from = ANSWER_SOURCES[answer_source]
        self.retriever = retriever
        self.lm = lm
        self.adapter = adapter if adapter is not None else json_adapter()
        self.k = k
        self.max_searches = max_searches
        self.passage_chars = passage_chars
        self.notes_chars = notes_chars
        self.research = dspy.Predict(ResearchStep)
        self.write = dspy.Predict(WriteQA)

    def seed_notes(self, document: str, doc_id: str = "seed") -> list[dict[str, Any]]:
        title = document.split("\n", 1)[0][:80]
        return [{"ref": "P1", "id": doc_id, "title": title, "text": document}]

    def gather(
        self,
        document: str,
        target_steps: int,
        feedback: str,
        notes: list[dict[str, Any]],
        trace: list[dict[str, Any]],
        meter: Meter,
        budget: int,
        rollout_id: int | None,
        answer_type: str = "entity",
    ) -> None:
        """The research loop: append found passages to ``notes`` and steps to ``trace``."""
        searches = retry = 0
        seen_queries: set[str] = set()
        while searches < budget:
            pred, err = safe_predict(
                self.research,
                meter,
                self.lm,
                self.adapter,
                sample_config(_rid(rollout_id, len(trace)), None, retry),
                document=clip(document, 2400),
                target_steps=target_steps,
                answer_type=answer_type,
                feedback=feedback,
                notes=render_notes(notes, self.passage_chars, self.notes_chars),
                searches_left=budget - searches,
            )
            if err is None and pred.action not in ("search", "write"):
                err = f"invalid action {pred.action!r}"
            if err:
                trace.append({"type": "parse_failure", "error": err})
                if retry:
                    return
                retry = 1
                continue
            retry = 0
            query = str(pred.query or "").strip()
            if pred.action == "write" or not query or query.lower() in seen_queries:
                trace.append({"type": "write", "reasoning": pred.reasoning})
                return
            seen_queries.add(query.lower())
            found = self.retriever.search(query, k=self.k)
            searches += 1
            known = {n["id"] for n in notes}
            for p in found:
                if p.id not in known:
                    notes.append({"ref": f"P{len(notes) + 1}", **passage_record(p, 1200)})
                    known.add(p.id)
            trace.append(
                {
                    "type": "search",
                    "reasoning": pred.reasoning,
                    "query": query,
                    "passages": [passage_record(p, self.passage_chars) for p in found],
                }
            )
        trace.append({"type": "forced_write", "reason": f"search budget {budget} spent"})

    def forward(
        self,
        document: str,
        target_steps: int,
        feedback: str = "none",
        rollout_id: int | None = None,
        doc_id: str = "seed",
        answer_type: str = "entity",
    ) -> GenResult:
        meter, trace = Meter(), []
        notes = self.seed_notes(document, doc_id)
        self.gather(
            document, target_steps, feedback, notes, trace, meter, self.max_searches,
            rollout_id, answer_type,
        )  # fmt: skip
        return self.write_pair(
            document, target_steps, feedback, notes, trace, meter, rollout_id, answer_type
        )

    def write_pair(
        self,
        document: str,
        target_steps: int,
        feedback: str,
        notes: list[dict[str, Any]],
        trace: list[dict[str, Any]],
        meter: Meter,
        rollout_id: int | None,
        answer_type: str = "entity",
    ) -> GenResult:
        def predict(retry: int, hint: str) -> tuple[Any, str | None]:
            return safe_predict(
                self.write,
                meter,
                self.lm,
                self.adapter,
                sample_config(_rid(rollout_id, 900 + retry), None, retry),
                document=clip(document, 2400),
                target_steps=target_steps,
                answer_type=answer_type,
                answer_from=self.answer_from,
                feedback=f"{feedback}; the last attempt broke a rule: {hint}" if hint else feedback,
                notes=render_notes(notes, self.passage_chars, self.notes_chars),
            )

        return pair_with_retry(
            predict,
            notes,
            trace,
            meter,
            lambda pred: {"type": "written", "reasoning": pred.reasoning},
            answer_type,
        )


def pair_with_retry(
    predict: Callable[[int, str], tuple[Any, str | None]],
    notes: list[dict[str, Any]],
    trace: list[dict[str, Any]],
    meter: Meter,
    describe: Callable[[Any], dict[str, Any]],
    answer_type: str,
) -> GenResult:
    """Ask for a pair up to twice; a parse failure or a broken rule (fed back as the hint of
    the second try) is recorded in the trace. No valid pair gives a GenResult without one."""
    error, hint = None, ""
    for retry in (0, 1):
        pred, err = predict(retry, hint)
        if err:
            error = err
            trace.append({"type": "parse_failure", "error": err})
            continue
        cand = candidate_from(pred, notes, answer_type)
        error = check_candidate(cand.question, cand.answer)
        trace.append({**describe(pred), **cand.to_dict(), "rule_violation": error})
        if error is None:
            return GenResult(cand, trace, notes, meter)
        hint = error
    return GenResult(None, trace, notes, meter, error)


def _rid(rollout_id: int | None, step: int) -> int | None:
    return None if rollout_id is None else rollout_id * 1000 + step
