"""The search agent and the judge with the real local model over a real embedded index.

Asserts structure (trace, counts, budgets), never that the 0.5B model gets it right.
"""

from __future__ import annotations

import json

import pytest

from modules.agent import SearchAgent
from modules.judge import Judge
from modules.retriever import QdrantRetriever
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


def test_judge_uses_the_model_only_when_string_matching_cannot_decide(local_lm):
    judge = Judge(local_lm)
    assert judge("Q?", "Marrow Gull", "the Marrow Gull").method == "exact"
    assert judge("Q?", "820 metres", "It is 640 metres long").method == "number_guard"
    j = judge("Which ship?", "Marrow Gull", "It was the brig named Marrow Swift")
    assert j.method in ("llm", "llm_failed") and isinstance(j.correct, bool)
