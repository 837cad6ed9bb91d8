"""The validation tagger (scripted LM, named as such): constrained causes and reasoning types,
one retry on unparseable output, then "untagged"."""

from __future__ import annotations

import pytest

from modules.programs.taxonomy import (
    INCORRECT_CAUSES,
    REASONING_TYPES,
    TOO_EASY_CAUSES,
    UNTAGGED,
    Tagger,
)
from tests.helpers import ScriptedLM

CAND = {
    "question": "Which climber led the first ascent of the highest peak of Tarvessa?",
    "answer": "Ferrin Vashti",
    "plan": [{"sub_question": "Highest peak?", "sub_answer": "Mount Oskarrow"},
             {"sub_question": "Who led its first ascent?", "sub_answer": "Ferrin Vashti"}],
}  # fmt: skip
ATTEMPT = {"trace": [], "answer": "Ferrin Vashti", "correct": True, "n_searches": 1}


def test_too_easy_cause_and_the_prompt_it_was_given():
    lm = ScriptedLM([{"cause": TOO_EASY_CAUSES[0], "explanation": "one search found it"}])
    tag = Tagger(lm).failure("too_easy", CAND, 3, ATTEMPT)
    assert (tag.label, tag.explanation) == (TOO_EASY_CAUSES[0], "one search found it")
    assert "1. Highest peak? -> Mount Oskarrow" in lm.prompts[0]
    assert "Final answer: Ferrin Vashti (correct, 1 searches)" in lm.prompts[0]
    assert tag.meter.lm_calls == 1


def test_incorrect_cause_retries_once_after_unparseable_output():
    lm = ScriptedLM([{"__raw__": "not json"}, {"cause": INCORRECT_CAUSES[-1], "explanation": "x"}])
    tag = Tagger(lm).failure("incorrect", CAND, 2, None)
    assert tag.label == INCORRECT_CAUSES[-1] and lm.calls == 2


def test_two_unparseable_outputs_leave_the_item_untagged():
    lm = ScriptedLM([{"__raw__": "no"}, {"__raw__": "still no"}])
    assert Tagger(lm).failure("incorrect", CAND, 2, None).label == UNTAGGED


def test_an_unknown_failure_kind_is_an_error():
    with pytest.raises(ValueError, match="unknown failure kind"):
        Tagger(ScriptedLM([])).failure("generation_failed", CAND, 2, None)


def test_reasoning_types_are_deduplicated_and_capped_at_three():
    kinds = [REASONING_TYPES[0], REASONING_TYPES[0], *REASONING_TYPES[1:4]]
    tag = Tagger(ScriptedLM([{"reasoning_types": kinds}])).reasoning_types(CAND)
    assert tag.label == list(REASONING_TYPES[:3])


def test_reasoning_types_untagged_when_unparseable():
    lm = ScriptedLM([{"__raw__": "?"}, {"__raw__": "?"}])
    assert Tagger(lm).reasoning_types(CAND).label == [UNTAGGED]
