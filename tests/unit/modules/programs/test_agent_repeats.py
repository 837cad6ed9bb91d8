"""A repeated search is not a search: the same content words in other words (issue #25's
"When did the Land League form?" then "When was the Land League formed?", which retrieved
different passages and so passed S=2) count once. Scripted agent LM; a retriever that
returns a passage never seen before for every query, so only the query rule can tell."""

from __future__ import annotations

import itertools

import dspy

from modules.index.passages import Passage
from modules.programs.adapter import json_adapter
from modules.programs.agent import SearchAgent
from modules.textnorm import query_key
from tests.helpers import ScriptedLM


class FreshRetriever:
    """Every search finds a new passage (scripted retrieval for a control-flow test)."""

    def __init__(self) -> None:
        self.ids = itertools.count()

    def search(self, query: str, k: int | None = None) -> list[Passage]:
        i = next(self.ids)
        return [Passage(f"p{i}", f"d{i}", f"Doc {i}", f"Fact {i} about {query}.")]


def _attempt(queries: list[str]) -> object:
    steps = [{"reasoning": "look", "action": "search", "text": q} for q in queries]
    lm = ScriptedLM([*steps, {"reasoning": "done", "action": "answer", "text": "1882"}])
    agent = SearchAgent(FreshRetriever(), lm, json_adapter(), 3, 5)
    with dspy.context(lm=lm):
        return agent(question="In what year did the Land League form?")


def test_a_reworded_repeat_is_made_but_not_counted():
    res = _attempt(["When did the Land League form?", "When was the Land League formed?"])
    assert res.n_searches == 2 and res.new_searches == 1
    res = _attempt(["When did the Land League form?", "Who led the Land League in 1961?"])
    assert res.new_searches == 2


def test_query_keys():
    same = [("When did the Land League form?", "when was the land league formed"),
            ("Population of Halden Mor", "What is the population of Halden Mor?"),
            ("When was the Land League founded?", "Who founded the Land League?")]  # fmt: skip
    for a, b in same:
        assert query_key(a) == query_key(b), (a, b)
    differ = [("When was the Land League founded?", "Who led the Land League?"),
              ("Petra Solvaine birthplace", "Petra Solvaine university")]  # fmt: skip
    for a, b in differ:
        assert query_key(a) != query_key(b), (a, b)
