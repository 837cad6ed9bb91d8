"""The demo's seed document is a bridge by construction: its only date is "the year the
Treaty of Vaunt was signed", which only the treaty's passage (never naming the hall) gives,
so the natural one-hop question already needs two searches (issue #25)."""

from __future__ import annotations

import json
import re

from flows.demo import DEMO_SEEDS, DemoParams
from tests.helpers import DEMO_CORPUS, OverlapRetriever, load_corpus

DOCS = {d["id"]: d for d in map(json.loads, DEMO_CORPUS.read_text().splitlines())}
SEED = DOCS[DEMO_SEEDS[0]]
TREATY = DOCS["w048"]


def test_the_seed_states_no_year_and_names_the_treaty():
    assert SEED["title"] == "Tollins Reach Corn Exchange"
    assert not re.search(r"\b1\d{3}\b|\b20\d{2}\b", SEED["text"])  # no date to ask one hop
    assert "opened in the year the Treaty of Vaunt was signed" in SEED["text"]
    assert "30 November 1798" in TREATY["text"]


def test_no_other_passage_names_the_hall():
    named = [i for i, d in DOCS.items() if "Corn Exchange" in d["text"]]
    assert named == [DEMO_SEEDS[0]]


def test_the_natural_question_finds_the_hall_not_the_year():
    """Ranked lexically (BM25 over the demo corpus, k=3): the hall's question returns the
    hall and not the treaty; only the second query, built from the hall's passage, does."""
    retriever = OverlapRetriever(load_corpus(DEMO_CORPUS))
    first = [p.id for p in retriever.search("When was the Tollins Reach Corn Exchange opened?")]
    assert first[0] == SEED["id"] and TREATY["id"] not in first
    second = [p.id for p in retriever.search("When was the Treaty of Vaunt signed?")]
    assert second[0] == TREATY["id"]


def test_the_demo_takes_its_answer_from_any_note():
    params = DemoParams()
    assert params.answer_source == "any" and params.answer_types == "date"
