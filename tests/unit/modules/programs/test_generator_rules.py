"""The generator's rule checks on a written pair (no model involved)."""

import pytest

from modules.programs.rules import check_candidate


@pytest.mark.parametrize(
    ("question", "answer", "error"),
    [
        ("Which village is the largest on Dunmarra?", "Caddow", None),
        ("Which city hosts the Vell Assembly?", "New Vell", None),
        ("", "Caddow", "empty question or answer"),
        ("Why did Ilvaro flood?", "rain", "how/why questions are not allowed"),
        ("Which village is largest?", "a b c d e f g h i j k", "the answer must be short"),
        ("Where is Caddow harbour?", "Caddow", "the question contains its answer"),
        ("What does the passage name?", "Ilvaro", "the question must stand alone"),
        # seen from the local 0.5B generator (docs/BENCHMARKS.md, run cost3)
        ("What was the festival called?", "P2 Quessel", "not a note reference like P2"),
        ("Which village is the largest?", "Caddow Caddow", "the answer repeats itself"),
    ],
)
def test_rules(question, answer, error):
    got = check_candidate(question, answer)
    assert got is None if error is None else (got is not None and error in got)


LONG_Q = "Which " + "very " * 60 + "old village is the largest?"


@pytest.mark.parametrize(
    ("question", "answer", "answer_type", "error"),
    [
        # the demo's round 0 on the 0.5B model (issue #25): a measurement for an entity
        ("What is the sound of Brennick Sound on the Corve Strait?",
         "9 kilometres long and up to 4 kilometres wide", "entity", "not a measurement"),
        # its revision copied the feedback's rendering of the attempt
        ("Which strait does the sound open onto?", "None (wrong, 3 searches)", "entity",
         "not text from these instructions"),
        ("Which strait does the sound open onto?", "None", "entity",
         "not text from these instructions"),
        # a statement, with the answer type's name as the answer
        ("The capital of Tarvessa is Brennick.", "number", "number", "ending with '?'"),
        ("How many people live in Halden Mor?", "number", "number", "not text from"),
        ("Which population does Halden Mor have?", "Brennick", "number", "contain a number"),
        ("When was the lighthouse of Skellis lit?", "Brennick", "date", "day, month or year"),
        ("Who wrote the Symphony of the Shoals?", "Mireille Doucane was born in Brennick.",
         "entity", "not a sentence"),
        (LONG_Q, "Caddow", "entity", "at most 60 words"),
        ("Which strait does the sound open onto?", "Final answer: Corve", "entity",
         "not text from"),
        # good pairs of each type pass
        ("When was the harbour of Brennick opened?", "10 January 1888", "date", None),
        ("In which century was the abbey founded?", "twelfth century", "date", None),
        ("In which decade did the ferry start?", "the 1880s", "date", None),
        ("How many people live in Halden Mor?", "702,000", "number", None),
        ("How many bridges cross the Vell?", "twelve", "number", None),
        ("Which mission first landed on the moon of Ilvaro?", "Apollo 11", "entity", None),
        ("Who founded the Vell Assembly?", "Mireille Doucane", "entity", None),
    ],
)  # fmt: skip
def test_rules_for_what_every_model_gets_wrong(question, answer, answer_type, error):
    got = check_candidate(question, answer, answer_type)
    assert got is None if error is None else (got is not None and error in got), got


@pytest.mark.parametrize(
    ("answer", "error"),
    [
        # the demo's seed 1, round 0 (issue #25): a two-part question's answer
        ("1798, Vaunt Harbour", "the date alone"),
        ("1798 and Vaunt Harbour", "the date alone"),
        ("30 November 1798", None),
        ("March 3, 1798", None),
        ("1620 and 1847", None),
        ("the 1880s", None),
    ],
)
def test_a_date_answer_holds_no_name_beside_the_date(answer, error):
    got = check_candidate("When was the Treaty of Vaunt signed?", answer, "date")
    assert got is None if error is None else (got is not None and error in got), got
