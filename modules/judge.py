"""Judge: exact match / token-F1 fast path, then an LLM judgement, with a number guard."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any

import dspy

from modules.agent import Meter, safe_predict
from modules.signatures import JudgeAnswer
from modules.textnorm import best_match, gold_recall, normalize

_NUM = re.compile(r"\d+(?:\.\d+)?")


@dataclass
class Judgement:
    """Whether one response answers the question with the gold answer."""

    correct: bool
    method: str  # exact | f1 | llm | number_guard | overlap_guard | empty | llm_failed
    extracted: str | None = None
    f1: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _numbers(text: str) -> set[str]:
    return set(_NUM.findall(normalize(text)))


class Judge(dspy.Module):
    """Correctness of a response against gold answers (and aliases).

    Exact match or F1 >= ``f1_accept`` decides without a model. Otherwise the LLM extracts
    the answer and judges; when the gold answer holds numbers that the response lacks, the
    response is judged wrong whatever the model says, and an LLM "correct" needs at least
    ``min_gold_recall`` of some gold answer's content words in the response (small models
    over-accept: the 0.5B local judge accepted "Tarvassa Island" for "Ilvaro" and "Tom T.
    Hall …" for "G. Stanley Hall"). ``min_gold_recall=0`` (setting ``judge_min_gold_recall``)
    turns the guard off for a strong judge that must accept token-disjoint paraphrases ("JFK"
    for "John F. Kennedy").
    """

    def __init__(
        self,
        lm: Any | None = None,
        adapter: Any | None = None,
        f1_accept: float = 0.8,
        use_llm: bool = True,
        min_gold_recall: float = 0.5,
    ):
        super().__init__()
        self.lm = lm
        self.adapter = adapter if adapter is not None else dspy.JSONAdapter()
        self.f1_accept = f1_accept
        self.use_llm = use_llm
        self.min_gold_recall = min_gold_recall
        self.judge = dspy.Predict(JudgeAnswer)

    def forward(
        self,
        question: str,
        gold: str,
        response: str | None,
        aliases: list[str] | None = None,
        meter: Meter | None = None,
    ) -> Judgement:
        golds = [gold, *(aliases or [])]
        if not response or not normalize(response):
            return Judgement(False, "empty")
        em, f1 = best_match(response, golds)
        if em:
            return Judgement(True, "exact", response, 1.0)
        if f1 >= self.f1_accept:
            return Judgement(True, "f1", response, f1)
        gold_nums = [_numbers(g) for g in golds if _numbers(g)]
        if gold_nums and not any(n <= _numbers(response) for n in gold_nums):
            return Judgement(False, "number_guard", response, f1)
        if not self.use_llm:
            return Judgement(False, "f1", response, f1)
        pred, err = safe_predict(
            self.judge,
            meter or Meter(),
            self.lm,
            self.adapter,
            None,
            question=question,
            gold_answers=" | ".join(golds),
            response=response,
        )
        if pred is None:
            return Judgement(False, "llm_failed", None, f1)
        extracted = str(pred.extracted_answer)
        guarded = pred.correct and self.min_gold_recall > 0
        if guarded and max(gold_recall(response, g) for g in golds) < self.min_gold_recall:
            return Judgement(False, "overlap_guard", extracted, f1)
        return Judgement(bool(pred.correct), "llm", extracted, f1)
