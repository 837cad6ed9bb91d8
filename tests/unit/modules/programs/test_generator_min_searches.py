"""The small profile's `generator_min_searches`: a generator that would write from the seed
alone searches first: a name the seed mentions that leads away from the seed, else its title
(scripted LM; real BM25 over toy passages)."""

from __future__ import annotations

import dspy

from modules.config import profile_config
from modules.index.passages import Passage
from modules.programs.adapter import json_adapter
from modules.programs.generator import Generator, seed_names
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


# A seed naming two entities beyond its title: "Halden Mor" (whose search returns what the
# title's search returns: the seed's neighbourhood) and "Treaty of Vaunt" (a passage the
# title's search never reaches: the bridge).
BRIDGE_PASSAGES = [
    Passage("c", "d1", "Corn Exchange", "The Corn Exchange is a hall of Halden Mor. It was "
            "opened in the year the Treaty of Vaunt was signed."),
    Passage("h", "d2", "Halden Mor", "Halden Mor is a region; its market hall is the Corn "
            "Exchange."),
    Passage("t", "d3", "Treaty of Vaunt", "The Treaty of Vaunt was signed in 1798."),
    Passage("w", "d4", "War of the Nets", "The war ended with the Treaty of Vaunt."),
]  # fmt: skip
BRIDGE_SEED = f"Corn Exchange\n{BRIDGE_PASSAGES[0].text}"


def test_seed_names_are_the_multiword_names_beyond_the_title():
    text = "The Tollins Reach Corn Exchange is in Tollins Reach, Halden Mor. The Treaty of Vaunt."
    assert seed_names(text, "Tollins Reach Corn Exchange") == ["Halden Mor", "Treaty of Vaunt"]
    assert seed_names(SEED, "Ada Venn") == []  # "Brennick" is one word: the title is searched


def test_the_required_search_follows_the_name_the_title_search_does_not_reach():
    retriever = OverlapRetriever(BRIDGE_PASSAGES)
    lm = ScriptedLM([WRITE_NOW, WRITE_NOW, PAIR])
    gen = Generator(retriever, lm, json_adapter(), k=2, max_searches=4, min_searches=1)
    with dspy.context(lm=lm):
        res = gen(document=BRIDGE_SEED, target_steps=2, doc_id="c", answer_type="date")
    searched = [t["query"] for t in res.trace if t["type"] == "search"]
    assert searched == ["Treaty of Vaunt"]  # first in text order is Halden Mor: not it
    required = next(t for t in res.trace if t["type"] == "required_search")
    assert required["probed"]["Treaty of Vaunt"] > required["probed"]["Halden Mor"]
    assert "signed in 1798" in lm.prompts[-1]  # the bridge's year reaches WriteQA
