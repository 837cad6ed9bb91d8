"""The bridge rule's constrained retry with the real local model: llama.cpp's grammar makes
the written question name the seed's subject and nothing of the passage that gives the
answer, even where the model, left free, asks about that passage (issue #25's one-hop
treaty questions)."""

from __future__ import annotations

import pytest

from modules.programs.generator import Draft, Generator
from modules.programs.question_pattern import question_words
from modules.programs.signatures import ANSWER_SOURCES
from tests.helpers import OverlapRetriever

pytestmark = pytest.mark.llm

SEED = (
    "Tollins Reach Corn Exchange\nThe Tollins Reach Corn Exchange is a covered market hall "
    "of Halden Mor. It was opened in the year the Treaty of Vaunt was signed."
)
TREATY = (
    "The Treaty of Vaunt ended the War of the Nets. It was signed in Vaunt Harbour on "
    "30 November 1798."
)


def test_the_written_question_names_the_seed_subject(local_lm):
    gen = Generator(OverlapRetriever([]), local_lm, answer_source="any")
    assert gen.answer_from == ANSWER_SOURCES["any"]
    notes = gen.seed_notes(SEED, "w086")
    notes.append({"ref": "P2", "id": "w048", "title": "Treaty of Vaunt", "text": TREATY})
    draft = Draft(SEED, 2, "date", "none", 5, notes=notes, must_name="Tollins Reach Corn Exchange")
    draft.must_words = question_words(SEED, ("treaty", "vaunt"))
    res = gen.write_pair(draft)
    written = [t for t in res.trace if t["type"] == "written"]
    assert written, res.trace  # the grammar keeps the output parseable
    for t in written:
        assert "Tollins Reach Corn Exchange" in t["question"], t
        assert "treaty" not in t["question"].lower() and "vaunt" not in t["question"].lower(), t
        assert t["question"].endswith("?")
