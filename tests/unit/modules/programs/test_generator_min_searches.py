"""The small profile's `generator_min_searches`: a generator that would write from the seed
alone searches the seed's title first (scripted LM; real BM25 over toy passages)."""

from __future__ import annotations

import dspy

from modules.config import profile_config
from modules.programs.adapter import json_adapter
from modules.programs.generator import Generator
from tests.helpers import TOY_PASSAGES, OverlapRetriever, ScriptedLM

SEED = "Ada Venn\nAda Venn is a composer born in Brennick in 1950."
WRITE_NOW = {"reasoning": "the seed is enough", "action": "write", "query": ""}
PAIR = {
    "reasoning": "P2 names the town Ada Venn was born in.",
    "question": "In what year was the capital where Ada Venn was born founded?",
    "answer": "1602",
    "plan": [{"sub_question": "Where was Ada Venn born?", "sub_answer": "Brennick",
              "passage": "P1"}],
}  # fmt: skip


def _run(min_searches: int) -> tuple[list[dict], OverlapRetriever, ScriptedLM]:
    retriever = OverlapRetriever(TOY_PASSAGES)
    lm = ScriptedLM([WRITE_NOW] * (1 + min_searches) + [PAIR])
    gen = Generator(retriever, lm, json_adapter(), k=3, max_searches=4,
                    min_searches=min_searches)  # fmt: skip
    with dspy.context(lm=lm):
        res = gen(document=SEED, target_steps=2, doc_id="p3", answer_type="date")
    return res.trace, retriever, lm


def test_writing_first_is_overruled_by_one_search_of_the_seed_title():
    trace, retriever, lm = _run(1)
    assert retriever.queries == ["Ada Venn"]
    kinds = [t["type"] for t in trace]
    assert kinds[:2] == ["required_search", "search"]
    assert "write" in kinds  # the second "write" is honoured: one search was required
    assert lm.calls == 3
    assert "Symphony of the Shoals" in lm.prompts[-1]  # the found note reaches WriteQA


def test_without_the_knob_the_generator_writes_from_the_seed():
    trace, retriever, lm = _run(0)
    assert retriever.queries == []
    assert [t["type"] for t in trace][0] == "write"
    assert lm.calls == 2
    assert "Symphony of the Shoals" not in lm.prompts[-1]


def test_the_knob_is_small_only():
    assert profile_config("small").generator_min_searches == 1
    assert profile_config("paper").generator_min_searches == 0
