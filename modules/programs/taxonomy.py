"""LLM tagging for validation: why a rejected pair failed, and what reasoning an accepted
pair needs. Tags are constrained to fixed vocabularies (see modules/programs/signatures.py)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, get_args

import dspy

from modules.programs.adapter import json_adapter
from modules.programs.predict import Meter, predict_twice, safe_predict
from modules.programs.reviser import render_attempt
from modules.programs.signatures import (
    IncorrectCause,
    ReasoningType,
    TagIncorrect,
    TagReasoning,
    TagTooEasy,
    TooEasyCause,
)
from modules.programs.status import Status

TOO_EASY_CAUSES: tuple[str, ...] = get_args(TooEasyCause)
INCORRECT_CAUSES: tuple[str, ...] = get_args(IncorrectCause)
REASONING_TYPES: tuple[str, ...] = get_args(ReasoningType)
UNTAGGED = "untagged"  # the model's output did not parse twice


@dataclass
class Tag:
    label: str | list[str]
    explanation: str = ""
    meter: Meter = field(default_factory=Meter)


def render_plan(candidate: dict[str, Any] | None) -> str:
    plan = (candidate or {}).get("plan") or []
    hops = [f"{i}. {p.get('sub_question')} -> {p.get('sub_answer')}" for i, p in enumerate(plan, 1)]
    return "\n".join(hops) or "(no plan)"


class Tagger(dspy.Module):
    """Failure-cause and reasoning-type tags from a candidate, its plan and agent traces."""

    def __init__(self, lm: Any | None = None, adapter: Any | None = None):
        super().__init__()
        self.lm = lm
        self.adapter = adapter if adapter is not None else json_adapter()
        self.too_easy = dspy.Predict(TagTooEasy)
        self.incorrect = dspy.Predict(TagIncorrect)
        self.reasoning = dspy.Predict(TagReasoning)

    def _predict(self, predictor: dspy.Predict, meter: Meter, **inputs: Any) -> Any:
        def call(retry: int, _hint: str) -> tuple[Any, str | None]:
            cfg = {"rollout_id": 1000 + retry, "temperature": 0.7} if retry else None
            return safe_predict(predictor, meter, self.lm, self.adapter, cfg, **inputs)

        return predict_twice(call)[0]

    def failure(
        self, kind: str, candidate: dict[str, Any], target_steps: int, attempt: dict | None
    ) -> Tag:
        """Cause of a ``too_easy`` or ``incorrect`` verdict."""
        meter = Meter()
        common = {
            "question": candidate.get("question") or "",
            "answer": candidate.get("answer") or "",
            "plan": render_plan(candidate),
            "search_trace": render_attempt(attempt, 160, 1800),
        }
        if kind == Status.TOO_EASY:
            pred = self._predict(self.too_easy, meter, target_steps=target_steps, **common)
        elif kind == Status.INCORRECT:
            pred = self._predict(self.incorrect, meter, **common)
        else:
            raise ValueError(f"unknown failure kind {kind!r}")
        if pred is None:
            return Tag(UNTAGGED, "", meter)
        return Tag(str(pred.cause), str(pred.explanation), meter)

    def reasoning_types(self, candidate: dict[str, Any]) -> Tag:
        meter = Meter()
        pred = self._predict(
            self.reasoning,
            meter,
            question=candidate.get("question") or "",
            answer=candidate.get("answer") or "",
            plan=render_plan(candidate),
        )
        if pred is None:
            return Tag([UNTAGGED], "", meter)
        kinds = [k for k in dict.fromkeys(pred.reasoning_types or []) if k in REASONING_TYPES]
        return Tag(kinds[:3] or ["other"], "", meter)
