"""Judge: exact match is the only model-free accept; otherwise an LLM judgement at
temperature 0 (extracted answer, reasoning, verdict, as the SAGE code's judge), with a
number guard and a gold-overlap guard that can only reject.

The answer is untrusted data (an RL policy learns to exploit its grader). Before any LLM
sees it, ``modules.programs.screening.screen_answer`` (the rule the exported ``reward.py`` applies)
refuses text addressed to a grader, markup, several candidates and long answers. What
passes is shown to the judge as a JSON string literal (quotes and new lines escaped, so it
cannot close its field or open a fake verdict field) in a field the instructions call
untrusted; the verdict is only the judge's own typed ``correct`` output, never text found
in the answer."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any

import dspy

from modules.programs.adapter import json_adapter
from modules.programs.predict import Meter, safe_predict
from modules.programs.screening import screen_answer
from modules.programs.signatures import JudgeAnswer
from modules.textnorm import best_match, gold_recall, normalize, numbers

METHODS = (
    "exact",
    "llm",
    "number_guard",
    "overlap_guard",
    "screened",
    "empty",
    "llm_failed",
    "undecided",
)


@dataclass
class Judgement:
    """Whether one response answers the question with the gold answer."""

    correct: bool
    method: str  # one of METHODS
    extracted: str | None = None
    f1: float = 0.0
    reasoning: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def number_guard(response: str, golds: list[str]) -> bool:
    """True when some gold answer holds numbers and the response holds no gold's numbers
    (compared as values: "7,531" = "7531", "3 million" = "3,000,000", "3.0" = "3")."""
    gold_sets = [n for n in (numbers(g) for g in golds) if n]
    return bool(gold_sets) and not any(g <= numbers(response) for g in gold_sets)


def quoted(response: str) -> str:
    """The answer as the judge sees it: a JSON string literal (untrusted data)."""
    return json.dumps(str(response), ensure_ascii=False)


class Judge(dspy.Module):
    """Correctness of a response against gold answers (and aliases).

    An exact match after normalisation with the gold or an alias is the only verdict made
    without a model. A response lacking the gold's numbers is wrong (``number_guard``; off
    under the ``paper`` profile, where the LLM judge decides, as in the SAGE code).
    An answer ``screen_answer`` refuses is wrong (``screened``) and never reaches a model.
    Everything else goes to the LLM judge at temperature 0; its "correct" also needs at
    least ``min_gold_recall`` of some gold answer's content words in the response (small
    models over-accept: the 0.5B local judge accepted "Tarvassa Island" for "Ilvaro" and
    "Tom T. Hall …" for "G. Stanley Hall"). ``min_gold_recall=0`` (setting
    ``judge_min_gold_recall``, the ``paper`` profile) turns that guard off for a strong
    judge that must accept token-disjoint paraphrases ("JFK" for "John F. Kennedy"). With
    ``use_llm=False`` the cases a model would decide are ``undecided`` (not correct).
    """

    def __init__(
        self,
        lm: Any | None = None,
        adapter: Any | None = None,
        use_llm: bool = True,
        min_gold_recall: float = 0.5,
        number_guard: bool = True,
        temperature: float = 0.0,
    ):
        super().__init__()
        self.lm = lm
        self.adapter = adapter if adapter is not None else json_adapter()
        self.use_llm = use_llm
        self.min_gold_recall = min_gold_recall
        self.number_guard = number_guard
        self.temperature = temperature
        self.judge = dspy.Predict(JudgeAnswer)

    def forward(
        self,
        question: str,
        gold: str,
        response: str | None,
        aliases: list[str] | None = None,
        meter: Meter | None = None,
    ) -> Judgement:
        golds = [g for g in (gold, *(aliases or [])) if g and str(g).strip()]
        if not response or not normalize(response):
            return Judgement(False, "empty")
        em, f1 = best_match(response, golds)
        if em:
            return Judgement(True, "exact", response, 1.0)
        if self.number_guard and number_guard(response, golds):
            return Judgement(False, "number_guard", response, f1)
        refused = screen_answer(response, golds)
        if refused:
            return Judgement(False, "screened", None, f1, refused)
        if not self.use_llm:
            return Judgement(False, "undecided", None, f1)
        pred, err = safe_predict(
            self.judge,
            meter or Meter(),
            self.lm,
            self.adapter,
            {"temperature": self.temperature},
            question=question,
            gold_answers=" | ".join(golds),
            response=quoted(response),
        )
        if pred is None:
            return Judgement(False, "llm_failed", None, f1, err)
        extracted, reasoning = str(pred.extracted_answer), str(pred.reasoning)
        guarded = pred.correct and self.min_gold_recall > 0
        if guarded and max(gold_recall(response, g) for g in golds) < self.min_gold_recall:
            return Judgement(False, "overlap_guard", extracted, f1, reasoning)
        return Judgement(bool(pred.correct), "llm", extracted, f1, reasoning)
