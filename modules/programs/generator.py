"""Generator (reverse formulation): research the corpus from a seed document, write a QA pair."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache
from typing import Any

import dspy
from dspy.adapters.json_adapter import _get_structured_outputs_response_format
from pydantic_core import core_schema

from modules.index.passages import Retriever
from modules.programs.adapter import json_adapter
from modules.programs.agent import passage_record
from modules.programs.context import Shown, clip, fit_items, full_length
from modules.programs.predict import Meter, predict_twice, safe_predict, sample_config
from modules.programs.question_pattern import question_pattern, question_words
from modules.programs.rules import asks_past_seed, check_candidate, holder_words, names_subject
from modules.programs.signatures import ANSWER_SOURCES, NO_TARGET, ResearchStep, WriteQA

_REF = re.compile(r"P(\d+)")
TRACE_CHARS = 350  # a research step's passages as the trace shows them (notes hold the text)


def target_text(target_steps: int | None) -> str:
    """The target S as prompts show it ('multiple' when the run sets none)."""
    return NO_TARGET if target_steps is None else str(target_steps)


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
class Draft:
    """The work on one pair: the seed document, its target S and answer type, the feedback
    it answers, and what the work gathered (notes P1.., the trace, the cost)."""

    document: str
    target_steps: int | None
    answer_type: str = "entity"
    feedback: str = "none"
    rollout_id: int | None = None
    must_name: str = ""  # a name the next written question must hold (``named_question``)
    must_words: tuple[str, ...] = ()  # and the only other words it may use
    notes: list[dict[str, Any]] = field(default_factory=list)
    trace: list[dict[str, Any]] = field(default_factory=list)
    meter: Meter = field(default_factory=Meter)

    def rid(self, step: int) -> int | None:
        """A distinct rollout id per call of this draft (distinct samples, never cached)."""
        return None if self.rollout_id is None else self.rollout_id * 1000 + step


@dataclass
class GenResult:
    """What a generation (or revision) produced, and how."""

    candidate: Candidate | None
    trace: list[dict[str, Any]]
    notes: list[dict[str, Any]]  # [{ref, id, title, text}], P1 = the seed document
    meter: Meter
    error: str | None = None


def render_notes(notes: list[dict[str, Any]], chars: int | None, total: int | None) -> str:
    """The notes found by research (P2, P3, ...) as text (see ``show_notes``)."""
    return show_notes(notes, chars, total).text


def show_notes(notes: list[dict[str, Any]], chars: int | None, total: int | None) -> Shown:
    """The research notes, each at most ``chars`` (None: whole), the oldest shortened first
    to fit ``total`` (None: no limit), with the characters shown and cut."""
    found = notes[1:]
    if not found:
        return Shown("(none yet)")

    def render(limits: list[int | None]) -> Shown:
        lines, shown, cut = [], 0, 0
        for n, limit in zip(found, limits, strict=True):
            text = clip(n["text"], limit) if limit != 0 else ""
            lines.append(f"{n['ref']} {n['title']}: {text}")
            kept = len(text.removesuffix("…"))
            shown, cut = shown + kept, cut + max(0, full_length(n) - kept)
        return Shown("\n".join(lines), shown, cut)

    return fit_items(render, len(found), chars, total)


def counted(shown: Shown, meter: Meter) -> str:
    """A prompt part's text, its shown and cut characters added to ``meter``."""
    meter.shown_chars += shown.shown
    meter.cut_chars += shown.cut
    return shown.text


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


_NAME = re.compile(
    r"\b[A-Z][\w'-]*(?:\s+(?:(?:of|the|de|von|van)\s+)*[A-Z][\w'-]*)+"
)  # a capitalised multi-word name ("Treaty of Vaunt", "Halden Mor")


def seed_names(text: str, title: str) -> list[str]:
    """The multi-word names a seed document mentions other than its title, in text order
    (a leading "The" dropped; a name inside the title, or holding it, left out)."""
    out: list[str] = []
    lower_title = title.lower()
    for m in _NAME.finditer(text):
        name = re.sub(r"^(?:The|A|An)\s+", "", m.group(0))
        low = name.lower()
        fresh = low not in (o.lower() for o in out)
        if " " in name and fresh and low not in lower_title and lower_title not in low:
            out.append(name)
    return out


def bridge_name(
    retriever: Retriever, k: int, notes: list[dict[str, Any]], title: str, seen: set[str]
) -> tuple[str, dict[str, int]]:
    """The seed's name (``seed_names``) whose search reaches most passages that neither the
    notes nor a search of the seed's title hold: the link that leads farthest from the
    seed. Ties go to the first in text order; no name gives "". Model-free (retriever only);
    also the probe's scores."""
    names = [n for n in seed_names(notes[0]["text"], title) if n.lower() not in seen]
    if len(names) < 2:
        return (names[0] if names else ""), {}
    near = {n["id"] for n in notes} | {p.id for p in retriever.search(title, k=k)}
    probed = {n: sum(p.id not in near for p in retriever.search(n, k=k)) for n in names}
    best = max(names, key=lambda n: probed[n])  # max keeps the first of equal scores
    return best, probed


def subject_name(title: str) -> str:
    """A seed title as a question names it ("Mercury (planet)" -> "Mercury")."""
    return re.sub(r"\s*\([^)]*\)\s*$", "", title).strip()


@lru_cache(maxsize=256)
def _naming(signature: Any, name: str, words: tuple[str, ...]) -> Any:
    pattern = question_pattern(name, words)

    class NamedQuestion(str):
        @classmethod
        def __get_pydantic_core_schema__(cls, _source: Any, _handler: Any) -> Any:
            return core_schema.str_schema(pattern=pattern)

    named = signature.with_updated_fields("question", type_=NamedQuestion)
    return _get_structured_outputs_response_format(named)


def named_question(signature: Any, name: str, words: tuple[str, ...] = ()) -> dict[str, Any]:
    """The LM config that makes ``signature``'s written ``question`` name ``name`` in
    ``words`` otherwise (``question_pattern``; none: the function words): its response
    format with a JSON-schema pattern on the question, which llama.cpp's grammar enforces,
    while the prompt stays the signature's (the cached prefix is reused). The small
    profile's retry after the bridge rule (``asks_past_seed``); no name: nothing."""
    return {"response_format": _naming(signature, name, tuple(words))} if name else {}


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
        passage_chars: int | None = None,
        notes_chars: int | None = None,
        answer_source: str = "seed",
        doc_chars: int | None = None,
        min_searches: int = 0,
        bridge_rule: bool = False,
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
        self.doc_chars = doc_chars
        self.min_searches = min_searches
        self.bridge_rule = bridge_rule
        self.research = dspy.Predict(ResearchStep)
        self.write = dspy.Predict(WriteQA)

    def seed_notes(self, document: str, doc_id: str = "seed") -> list[dict[str, Any]]:
        title = document.split("\n", 1)[0][:80]
        return [{"ref": "P1", "id": doc_id, "title": title, "text": document}]

    def forward(
        self,
        document: str,
        target_steps: int | None,
        feedback: str = "none",
        rollout_id: int | None = None,
        doc_id: str = "seed",
        answer_type: str = "entity",
    ) -> GenResult:
        draft = Draft(
            document,
            target_steps,
            answer_type,
            feedback,
            rollout_id,
            notes=self.seed_notes(document, doc_id),
        )
        self.gather(draft, self.max_searches)
        return self.write_pair(draft)

    def gather(self, draft: Draft, budget: int) -> None:
        """The research loop: found passages go to the draft's notes, steps to its trace."""
        searches = 0
        seen_queries: set[str] = set()
        while searches < budget:
            pred = self._research_step(draft, budget - searches)
            if pred is None:
                return  # two malformed steps in a row
            query = str(pred.query or "").strip()
            if pred.action == "write" or not query or query.lower() in seen_queries:
                query = self._required_query(draft, searches, seen_queries)
                if not query:
                    draft.trace.append({"type": "write", "reasoning": pred.reasoning})
                    return
            seen_queries.add(query.lower())
            self._search(draft, query, pred.reasoning)
            searches += 1
        draft.trace.append({"type": "forced_write", "reason": f"search budget {budget} spent"})

    def _required_query(self, draft: Draft, searches: int, seen: set[str]) -> str:
        """The query searched when the model writes before ``min_searches`` searches (the
        small profile: the 0.5-1.5B models write from the seed alone): a name the seed
        mentions beyond its title (``bridge_name``: a linked entity, as a SAGE generator
        explores), else the seed's title."""
        title = str(draft.notes[0].get("title") or "").strip()
        if searches >= self.min_searches or not title:
            return ""
        name, probed = bridge_name(self.retriever, self.k, draft.notes, title, seen)
        query = name or ("" if title.lower() in seen else title)
        if query:
            draft.trace.append(
                {"type": "required_search", "min_searches": self.min_searches, "probed": probed}
            )
        return query

    def _research_step(self, draft: Draft, searches_left: int) -> Any:
        def call(retry: int, _hint: str) -> tuple[Any, str | None]:
            cfg = sample_config(draft.rid(len(draft.trace)), None, retry)
            pred, err = safe_predict(
                self.research,
                draft.meter,
                self.lm,
                self.adapter,
                cfg,
                document=clip(draft.document, self.doc_chars),
                target_steps=target_text(draft.target_steps),
                answer_type=draft.answer_type,
                feedback=draft.feedback,
                notes=render_notes(draft.notes, self.passage_chars, self.notes_chars),
                searches_left=searches_left,
            )
            if err is None and pred.action not in ("search", "write"):
                err = f"invalid action {pred.action!r}"
            if err:
                draft.trace.append({"type": "parse_failure", "error": err})
            return pred, err

        return predict_twice(call)[0]

    def _search(self, draft: Draft, query: str, reasoning: str) -> None:
        found = self.retriever.search(query, k=self.k)
        known = {n["id"] for n in draft.notes}
        for p in found:
            if p.id not in known:
                draft.notes.append({"ref": f"P{len(draft.notes) + 1}", **passage_record(p, None)})
                known.add(p.id)
        draft.trace.append(
            {
                "type": "search",
                "reasoning": reasoning,
                "query": query,
                "passages": [passage_record(p, TRACE_CHARS) for p in found],
            }
        )

    def write_pair(self, draft: Draft) -> GenResult:
        def predict(retry: int, hint: str) -> tuple[Any, str | None]:
            feedback = draft.feedback
            if hint:
                feedback = f"{feedback}; the last attempt broke a rule: {hint}"
            return safe_predict(
                self.write,
                draft.meter,
                self.lm,
                self.adapter,
                sample_config(draft.rid(900 + retry), None, retry)
                | named_question(self.write.signature, draft.must_name, draft.must_words),
                document=clip(draft.document, self.doc_chars),
                target_steps=target_text(draft.target_steps),
                answer_type=draft.answer_type,
                answer_from=self.answer_from,
                feedback=feedback,
                notes=counted(
                    show_notes(draft.notes, self.passage_chars, self.notes_chars), draft.meter
                ),
            )

        return write_checked(
            predict,
            draft,
            lambda pred: {"type": "written", "reasoning": pred.reasoning},
            self.bridge_rule,
            name_after_any_rule=self.bridge_rule,  # a revision may hide the name on purpose
            doc_chars=self.doc_chars,
        )


def write_checked(
    predict: Callable[[int, str], tuple[Any, str | None]],
    draft: Draft,
    describe: Callable[[Any], dict[str, Any]],
    bridge_rule: bool = False,
    name_after_any_rule: bool = False,
    doc_chars: int | None = None,
) -> GenResult:
    """Ask for a pair up to twice; a parse failure or a broken rule (fed back as the hint of
    the second try) is recorded in the trace. With ``bridge_rule``, ``asks_past_seed`` is a
    rule too, and a retry after it (after any rule, with ``name_after_any_rule``, when the
    broken question did not name the seed's subject) must name the seed's subject, its other
    words from ``question_words`` of the document as shown (``doc_chars``) minus the answer
    note's title words. No valid pair gives a GenResult without one."""

    def call(retry: int, hint: str) -> tuple[Any, str | None]:
        pred, err = predict(retry, hint)
        if err:
            draft.trace.append({"type": "parse_failure", "error": err})
        return pred, err

    def rules(pred: Any) -> str | None:
        cand = candidate_from(pred, draft.notes, draft.answer_type)
        error = check_candidate(cand.question, cand.answer, cand.answer_type)
        bridge = asks_past_seed(cand.question, cand.answer, draft.notes) if bridge_rule else None
        error = error or bridge
        title = draft.notes[0]["title"]
        if bridge or (error and name_after_any_rule and not names_subject(cand.question, title)):
            draft.must_name = subject_name(title)  # the retry's question must name it
            avoid = holder_words(cand.answer, draft.notes)  # not the answer's note's title
            shown = clip(draft.document, doc_chars)  # the words of the document it was shown
            draft.must_words = question_words(shown, avoid)
        draft.trace.append({**describe(pred), **cand.to_dict(), "rule_violation": error})
        return error

    pred, errors = predict_twice(call, rules)
    cand = candidate_from(pred, draft.notes, draft.answer_type) if pred is not None else None
    return GenResult(
        cand, draft.trace, draft.notes, draft.meter, errors[-1] if cand is None else None
    )
