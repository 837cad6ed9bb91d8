"""The small profile's bridge rule (`bridge_rule`): a question whose answer only a searched
passage holds must ask about the seed's subject, not name that passage's subject. The cases
are the demo's one-hop questions of issue #25 (docs/BENCHMARKS.md, "The CPU demo")."""

from __future__ import annotations

import re

import dspy
import pytest

from modules.config import profile_config
from modules.index.passages import Passage
from modules.programs.adapter import json_adapter
from modules.programs.generator import Generator
from modules.programs.question_pattern import question_pattern, question_words
from modules.programs.rules import asks_past_seed, holder_words
from tests.helpers import OverlapRetriever, ScriptedLM

SEED_TEXT = (
    "The Tollins Reach Corn Exchange is a covered market hall of Halden Mor. It was opened "
    "in the year the Treaty of Vaunt was signed."
)
NOTES = [
    {"ref": "P1", "id": "w086", "title": "Tollins Reach Corn Exchange", "text": SEED_TEXT},
    {
        "ref": "P2",
        "id": "w048",
        "title": "Treaty of Vaunt",
        "text": "The Treaty of Vaunt ended the War of the Nets. It was signed on 30 November 1798.",
    },
    {"ref": "P3", "id": "w002", "title": "Halden Mor", "text": "Halden Mor has 702,000 people."},
]


@pytest.mark.parametrize(
    ("question", "answer", "error"),
    [
        # seeds 0 and 2, round 0: the year's own passage asked about directly
        (
            "In what year did the Treaty of Vaunt end the War of the Nets?",
            "1798",
            "names Treaty of Vaunt",
        ),
        # seed 2, round 1: the seed's subject left out
        ("In which year did the War of the Nets end?", "1798", "seed's subject"),
        # both named: still one search of the treaty answers it
        (
            "In what year was the Tollins Reach Corn Exchange, opened when the Treaty of Vaunt "
            "was signed, built?",
            "1798",
            "names Treaty of Vaunt",
        ),
        # the two-search question the demo is for
        ("In what year was the Tollins Reach Corn Exchange opened?", "1798", None),
        ("When did the Corn Exchange of Tollins Reach open?", "1798", None),
        # an answer the seed holds: the rule does not apply
        ("Which region is the Tollins Reach Corn Exchange in?", "Halden Mor", None),
        # an answer no note holds is the judge's business, not this rule's
        ("In what year did the Treaty of Vaunt end?", "1801", None),
    ],
)
def test_a_question_must_go_through_the_seed(question, answer, error):
    got = asks_past_seed(question, answer, NOTES)
    assert got is None if error is None else (got is not None and error in got), got


PASSAGES = [Passage(n["id"], n["id"], n["title"], n["text"]) for n in NOTES]
ONE_HOP = {
    "reasoning": "P2 gives the treaty's year.",
    "question": "In what year did the Treaty of Vaunt end the War of the Nets?",
    "answer": "1798",
    "plan": [
        {"sub_question": "When was the treaty signed?", "sub_answer": "1798", "passage": "P2"}
    ],
}
TWO_HOP = {
    **ONE_HOP,
    "question": "In what year was the Tollins Reach Corn Exchange opened?",
}
SEARCH = {
    "reasoning": "P1 gives no year: search the treaty",
    "action": "search",
    "query": "Treaty of Vaunt",
}
WRITE = {"reasoning": "enough", "action": "write", "query": ""}


def _spy(gen: Generator) -> list[dict]:
    """The LM config of every call of the generator's WriteQA predictor."""
    configs: list[dict] = []
    forward = gen.write.forward

    def spy(**kwargs):
        configs.append(dict(kwargs.get("config") or {}))
        return forward(**kwargs)

    gen.write.forward = spy
    return configs


def _pattern(config: dict) -> str | None:
    fmt = config.get("response_format")
    return fmt.model_json_schema()["properties"]["question"].get("pattern") if fmt else None


def _write(
    bridge_rule: bool, script: list[dict] | None = None, doc_chars: int | None = None
) -> tuple[object, list[dict]]:
    lm = ScriptedLM(script or [SEARCH, WRITE, ONE_HOP, TWO_HOP])
    gen = Generator(
        OverlapRetriever(PASSAGES),
        lm,
        json_adapter(),
        k=2,
        max_searches=2,
        answer_source="any",
        bridge_rule=bridge_rule,
        doc_chars=doc_chars,
    )
    configs = _spy(gen)
    with dspy.context(lm=lm):
        res = gen(
            document=f"{NOTES[0]['title']}\n{SEED_TEXT}",
            target_steps=2,
            doc_id="w086",
            answer_type="date",
        )
    return res, configs


def test_the_generator_feeds_the_rule_back_and_keeps_the_rewrite():
    res, configs = _write(bridge_rule=True)
    written = [t for t in res.trace if t["type"] == "written"]
    assert "names Treaty of Vaunt" in written[0]["rule_violation"]
    assert written[1]["rule_violation"] is None
    assert res.candidate.question == TWO_HOP["question"]
    assert len(configs) == 2


def test_without_the_rule_the_one_hop_question_stands():
    res, configs = _write(bridge_rule=False)
    assert res.candidate.question == ONE_HOP["question"]
    assert len(configs) == 1 and _pattern(configs[0]) is None


def test_the_rule_is_small_only():
    assert profile_config("small").bridge_rule is True
    assert profile_config("paper").bridge_rule is False


def test_the_retry_after_the_rule_must_name_the_seed_subject():
    """The second write's response format holds a pattern naming the seed's subject (the
    local engine's grammar enforces it: tests/e2e/modules/programs/test_named_question.py)."""
    _res, configs = _write(bridge_rule=True)
    assert _pattern(configs[0]) is None  # the first write is free
    assert "Tollins Reach Corn Exchange" in _pattern(configs[1])
    # and it cannot write the treaty's title words, in any case (this session's bench,
    # seeds 1 and 2: "In what year was the treaty of vaunt signed Tollins Reach Corn ...")
    free = "In what year was the treaty of vaunt signed Tollins Reach Corn Exchange opened?"
    assert re.fullmatch(_pattern(configs[1]), "When was the Tollins Reach Corn Exchange opened?")
    assert not re.fullmatch(_pattern(configs[1]), free)


def test_the_retry_vocabulary_is_the_document_as_the_model_was_shown_it():
    """ "signed" is in the seed's last sentence: a clipped document does not offer it."""
    asked = "When was the Tollins Reach Corn Exchange signed?"
    assert re.fullmatch(_pattern(_write(True)[1][1]), asked)
    clipped = _pattern(_write(True, doc_chars=90)[1][1])
    assert not re.fullmatch(clipped, asked)
    assert re.fullmatch(
        clipped, "When was the covered market hall Tollins Reach Corn Exchange opened?"
    )


def test_the_retry_may_use_the_seeds_lower_case_words_and_no_name():
    words = set(question_words(SEED_TEXT, ("treaty",)))
    assert {"opened", "covered", "market", "hall", "signed", "what", "year"} <= words
    assert not words & {"tollins", "halden", "mor", "vaunt", "treaty"}  # names, the holder
    assert "treaty" in question_words("the treaty was signed") and "treaty" not in words


def test_word_fragments_are_not_words_and_bad_words_are_refused():
    words = question_words("It was built in the 1840s beside a café, the 19th hall.")
    assert {"built", "beside", "hall"} <= set(words)
    assert not {"s", "th", "caf"} & set(words)  # pieces of "1840s", "19th", "café"
    with pytest.raises(ValueError, match="lower-case letters"):
        question_pattern("Mercury", ["what", "a|b"])


def test_a_name_with_punctuation_is_matched_literally():
    """A hyphen stays unescaped (older llama.cpp converters refused "\\-"); the rest of
    the regex metacharacters are escaped."""
    pattern = question_pattern("St. Mary's-on-Sea (Kent)")
    assert "\\-" not in pattern and "St\\. Mary's-on-Sea \\(Kent\\)" in pattern
    assert re.fullmatch(pattern, "When was St. Mary's-on-Sea (Kent) founded?")
    assert not re.fullmatch(pattern, "When was StX Mary's-on-Sea (Kent) founded?")


def test_the_words_to_avoid_are_the_answer_notes_titles():
    assert holder_words("1798", NOTES) == ("treaty", "vaunt")  # "of" links, P3 lacks 1798
    assert holder_words("702,000", NOTES) == ("halden", "mor")
    assert holder_words("Halden Mor", NOTES) == ()  # the seed gives it: no bridge


def test_a_generator_retry_after_any_rule_names_the_seed_subject():
    """The demo's seed 0 (issue #25): a three-part question broke the date rule, and its
    free retry asked about the treaty; a question that skipped the seed's subject is
    retried naming it, whichever rule it broke."""
    question = "When was the Treaty of Vaunt signed, and what ended the War of the Nets?"
    three_parts = {**ONE_HOP, "question": question, "answer": "1798, the War of the Nets"}
    res, configs = _write(True, [SEARCH, WRITE, three_parts, TWO_HOP])
    written = [t for t in res.trace if t["type"] == "written"]
    assert "the date alone" in written[0]["rule_violation"]
    assert "Tollins Reach Corn Exchange" in _pattern(configs[1])
    assert res.candidate.question == TWO_HOP["question"]


def test_the_named_question_schema_and_its_validation():
    from pydantic import TypeAdapter, ValidationError

    from modules.programs.generator import named_question, subject_name
    from modules.programs.signatures import WriteQA

    assert named_question(WriteQA, "") == {}
    mercury = named_question(WriteQA, subject_name("Mercury (planet)"))
    # no words given: the function words only ("discovered" is none of them)
    assert re.fullmatch(_pattern(mercury), "When was Mercury named?")
    assert not re.fullmatch(_pattern(mercury), "Who discovered Mercury?")
    assert not re.fullmatch(_pattern(mercury), "When was Mercury (planet) named?")
    words = question_words(SEED_TEXT, ("treaty", "vaunt"))
    fmt = named_question(WriteQA, "Tollins Reach Corn Exchange", words)["response_format"]
    check = TypeAdapter(fmt.model_fields["question"].annotation)
    for good in (
        TWO_HOP["question"],
        "Tollins Reach Corn Exchange opened in which year?",
        "Which city is the Tollins Reach Corn Exchange's market hall in?",
        "When was the Tollins Reach Corn Exchange opened, and by whom?",
    ):
        assert check.validate_python(good) == good
    for bad in (
        ONE_HOP["question"],
        # the demo's constrained retries (issue #25): the name jammed in after the treaty
        "In what year was the Treaty of Vaunt theTollins Reach Corn Exchange opened?",
        "What was the treaty that ended the War of the Nets and made it possible for farmers "
        "to hTollins Reach Corn Exchange?",
        # this session's bench (seeds 0-2, and the reviser of seed 2): another name first
        "In what year did the Treatyof Tollins Reach Corn Exchange open?",
        "When was the Treaty of Vaunt, Tollins Reach Corn Exchange's opening year, signed?",
        # the next bench (seeds 1 and 2): the holder's title written in lower case
        "In what year was the treaty of vaunt signed Tollins Reach Corn Exchange opened?",
        "In which year was the treaty of vaunt signed Tollins Reach Corn Exchange and leave "
        "Treaty of Vaunt for the searh?",
        "When was the Tollins Reach Corn Exchange opened, the year the treaty was signed?",
        # the bench at 8069073, seeds 1 and 2: the holder's title glued into new words
        "When was the treatyof vauntsigned and Tollins Reach Corn Exchange opened?",
        "In what year was the treatyofvauntsignedinvauntharbourbyon Tollins Reach Corn Exchange?",
        # seed 4 of the bench at 87bf91b: another subject stuffed in before the name
        "In which year was the first professional football club based Tollins Reach Corn "
        "Exchange founded?",
    ):
        with pytest.raises(ValidationError):
            check.validate_python(bad)
