"""Single-passage and closed-book checks of an accepted item.

A multi-hop question that one of its supporting passages answers alone (the seed document
included) is ``single_passage``: the facts are co-located, the top cause of too-easy pairs
in the SAGE paper. One the solver answers with no passage at all is ``closed_book``: it
teaches an RL agent not to search. The solver answers at temperature 0 without searching;
the judge (exact match, screening, then its LLM) decides. Every call is metered.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import dspy

from modules.programs.adapter import json_adapter
from modules.programs.judge import Judge
from modules.programs.predict import Meter, safe_predict
from modules.programs.signatures import AnswerClosedBook, AnswerFromPassage
from modules.textnorm import normalize

NO_ANSWER = {"", "unknown", "none", "n a", "not known", "i do not know"}
CHECKS = ("single_passage", "closed_book")


@dataclass
class SolverCheck:
    """What the checks found for one item, and what they cost."""

    single_passage: str | None = None  # id of the passage that sufficed
    single_passage_answer: str | None = None
    passages_tried: int = 0
    closed_book: bool | None = None
    closed_book_answer: str | None = None
    meter: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def passage_text(note: dict[str, Any], chars: int | None) -> str:
    text = f"{note.get('title') or ''}\n{note.get('text') or ''}".strip()
    return text[:chars] if chars else text


class SolverChecks:
    """The solver LM (no search) and the judge; ``passage_chars`` cuts long passages."""

    def __init__(self, lm: Any, judge: Judge, passage_chars: int | None = None):
        self.lm, self.judge, self.passage_chars = lm, judge, passage_chars
        self.adapter = json_adapter()
        self.from_passage = dspy.Predict(AnswerFromPassage)
        self.from_memory = dspy.Predict(AnswerClosedBook)

    def _right(self, item: dict[str, Any], answer: str | None, meter: Meter) -> bool:
        if normalize(answer) in NO_ANSWER:
            return False
        golds = list(item.get("aliases") or [])
        return self.judge(item["question"], item["answer"], answer, golds, meter).correct

    def _ask(self, predictor: Any, out: str, meter: Meter, **inputs: Any) -> str | None:
        pred, _ = safe_predict(
            predictor, meter, self.lm, self.adapter, {"temperature": 0.0}, **inputs
        )
        return str(getattr(pred, out, "") or "") if pred is not None else None

    def __call__(
        self, item: dict[str, Any], notes: list[dict[str, Any]], checks: tuple[str, ...] = CHECKS
    ) -> SolverCheck:
        """Run ``checks`` on ``item`` ({question, answer, aliases?}) with its supporting
        passages ``notes`` ({id, title, text}); the first passage that suffices is kept."""
        meter, res = Meter(), SolverCheck()
        if "single_passage" in checks:
            for note in notes:
                res.passages_tried += 1
                text = passage_text(note, self.passage_chars)
                answer = self._ask(
                    self.from_passage,
                    "answer_from_passage",
                    meter,
                    question=item["question"],
                    passage=text,
                )
                if self._right(item, answer, meter):
                    res.single_passage, res.single_passage_answer = str(note["id"]), answer
                    break
        if "closed_book" in checks:
            answer = self._ask(
                self.from_memory, "answer_from_memory", meter, question=item["question"]
            )
            res.closed_book_answer = answer
            res.closed_book = self._right(item, answer, meter)
        res.meter = meter.to_dict()
        return res


def supporting_notes(item: dict[str, Any], notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The accepted round's seed document (P1) and the notes supporting the item, in order."""
    by_id = {str(n.get("id")): n for n in notes}
    ids = [str(n.get("id")) for n in notes[:1]] + [str(i) for i in item.get("supporting_ids") or []]
    return [by_id[i] for i in dict.fromkeys(ids) if i in by_id]
