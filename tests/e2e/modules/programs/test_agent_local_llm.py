"""The search agent and the judge with the real local model over a real embedded index.

The agent test asserts structure (trace, counts, budgets), never that the 0.5B model
answers right. The judge test asserts verdicts on clear-cut cases (the gold inside a
sentence; another entity of the same type), listed in the test, that the local judge
gets right.
"""

from __future__ import annotations

import json

import pytest

from modules.index.retriever import QdrantRetriever
from modules.programs.agent import SearchAgent
from modules.programs.judge import Judge
from tests.helpers import DEMO_QUESTIONS

pytestmark = pytest.mark.llm


@pytest.fixture(scope="module")
def retriever(indexed_workdir, models_dir):
    qdrant = indexed_workdir("agent") / ".sage" / "qdrant"
    return QdrantRetriever(str(qdrant), "demo", models_dir, k=3)


def test_agent_trace_is_complete_and_within_budget(retriever, local_lm):
    q = json.loads(DEMO_QUESTIONS.read_text().splitlines()[0])
    agent = SearchAgent(
        retriever, lm=local_lm, max_searches=1, passage_chars=250, force_answer=True
    )  # as in evaluation: a best guess when out of budget
    res = agent(q["question"], rollout_id=3, temperature=0.7)
    searches = [t for t in res.trace if t["type"] == "search"]
    assert res.n_searches == len(searches) <= 1
    for s in searches:  # every search records its query and the top-3 passages it read
        assert s["query"] and 1 <= len(s["passages"]) <= 3
        assert all(p["id"].split("#")[0].startswith("w") for p in s["passages"])
    assert res.answer and res.answer.strip()
    assert res.trace[-1]["type"] in ("answer", "forced_answer")
    assert res.meter.lm_calls >= res.step_calls >= res.n_searches and res.meter.tokens > 0
    assert res.forced == (res.trace[-1]["type"] == "forced_answer")


SHIP = "Which ship carried the first survey of Skellis?"
ASCENT = "Who led the first ascent of Mount Oskarrow?"
SYMPHONY = "Who composed the Symphony of the Shoals?"
CAPITAL = "What is the capital of Tarvessa?"
# Clear-cut cases the local 0.5B model decides right by itself (method "llm"): the gold in a
# sentence is correct. None is an exact match or has a number.
MODEL_DECIDES = [
    (SHIP, "Marrow Gull", "The first survey of Skellis was carried by the Marrow Gull.", True),
    (ASCENT, "Ferrin Vashti", "The first ascent of Mount Oskarrow was led by Ferrin Vashti.",
     True),
    (SYMPHONY, "Ada Venn", "It was composed by Ada Venn.", True),
    (CAPITAL, "Brennick", "The capital of Tarvessa is Brennick.", True),
]  # fmt: skip
# Another person or city in a sentence is just as clear-cut, but the 0.5B model says
# "correct" to these (measured: it over-accepts entities of the gold's type); the judge still
# rejects them, because none shares a word with the gold (the overlap guard). Which of the
# two decides is not asserted: a better judge prompt may let the model get them right.
# "Grey Heron" for "Marrow Gull" was rejected by the model itself until the judge showed the
# response as quoted, untrusted data (the injection defence); since then it says "correct"
# to it as well.
JUDGE_REJECTS = [
    (SHIP, "Marrow Gull", "Grey Heron"),
    (ASCENT, "Ferrin Vashti", "The first ascent of Mount Oskarrow was led by Osric Tarn."),
    (SYMPHONY, "Ada Venn", "It was composed by Halvard Drenn."),
    (CAPITAL, "Brennick", "The capital of Tarvessa is Quessel."),
]


def test_judge_uses_the_model_only_when_string_matching_cannot_decide(local_lm):
    judge = Judge(local_lm)
    assert judge("Q?", "Marrow Gull", "the Marrow Gull").method == "exact"
    assert judge("Q?", "820 metres", "It is 640 metres long").method == "number_guard"
    verdicts = [judge(q, gold, response) for q, gold, response, _ in MODEL_DECIDES]
    # the model itself decided each case (its output parsed; no guard overruled it) ...
    assert [j.method for j in verdicts] == ["llm"] * len(MODEL_DECIDES), verdicts
    # ... and decided it right
    assert [j.correct for j in verdicts] == [want for *_, want in MODEL_DECIDES], verdicts
    rejected = [judge(q, gold, response) for q, gold, response in JUDGE_REJECTS]
    assert [j.correct for j in rejected] == [False] * len(JUDGE_REJECTS), rejected
