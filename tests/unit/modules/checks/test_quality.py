"""Deterministic quality checks and the QA-set loaders (no model needed)."""

from __future__ import annotations

import json

import pytest

from flows.data.qa_sets import load_qa
from modules.checks import dedup, quality
from modules.errors import SageError
from tests.helpers import DEMO_QUESTIONS, TOY_PASSAGES, OverlapRetriever


def test_leakage_exact_variant_and_clean() -> None:
    assert quality.leakage("Who founded Brennick in 1602?", "Brennick") == "answer_in_question"
    assert (
        quality.leakage("Which founder of Drenn's institute led Halvards?", "Halvard Drenn")
        == "variant_in_question"
    )
    assert quality.leakage("Who composed the Symphony of the Shoals?", "Ada Venn") is None
    assert quality.leakage("In which year was it founded?", "1602") is None
    assert quality.leakage("Was it founded in 1603?", "1602") is None  # numbers need equality


def test_shortcut_probe_finds_answer_bearing_passage() -> None:
    r = OverlapRetriever(TOY_PASSAGES)
    assert quality.shortcut_probe(r, "Who composed the Symphony of the Shoals?", "Ada Venn") == 1
    assert quality.shortcut_probe(r, "Which island has lighthouses?", "Ada Venn", k=1) is None


def test_near_duplicates_points_later_item_at_earliest() -> None:
    vecs = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.99, 0.05, 0.0], [0.0, 0.0, 1.0]]
    dups = dedup.near_duplicates(vecs, 0.95)
    assert [(d.index, d.of) for d in dups] == [(2, 0)]
    assert dedup.near_duplicates(vecs, 0.9999) == []


def test_ambiguity_needs_converging_wrong_answers_and_a_correct_one() -> None:
    ok = {"answer": "Ada Venn", "correct": True}
    rival = {"answer": "the Brennick Choir", "correct": False}
    assert quality.ambiguity([ok, rival, dict(rival)]) == "brennick choir"
    assert quality.ambiguity([ok, rival]) is None  # one wrong attempt is not convergence
    assert quality.ambiguity([rival, rival]) is None  # nothing correct: just wrong
    forced = {**rival, "forced": True}
    assert quality.ambiguity([ok, forced, forced]) is None  # guesses do not count


def test_diversity_counts_repeats() -> None:
    d = quality.diversity(["d1", "d1", "d2"], ["Ada Venn", "ada venn", "1602"])
    assert d["distinct_seed_docs"] == 2 and d["distinct_answers"] == 2
    assert d["top_answers"] == [{"answer": "ada venn", "count": 2}]


def test_loaders_read_each_format(tmp_path) -> None:
    demo = load_qa(DEMO_QUESTIONS, "qa")
    assert len(demo) == 25 and demo[0].answers[0] == "1602" and demo[0].group == "3hop"
    hp = tmp_path / "hp.jsonl"
    hp.write_text(
        json.dumps(
            {
                "question_id": "h1",
                "question_text": "Q?",
                "answers_objects": [{"spans": ["A", "A2"]}],
                "contexts": [{"title": "T", "paragraph_text": "x", "is_supporting": True}],
            }
        )
        + "\n"
    )
    (item,) = load_qa(hp, "hotpotqa")
    assert item.answers == ["A", "A2"] and item.meta["supporting_titles"] == ["T"]
    mq = tmp_path / "mq.json"
    mq.write_text(json.dumps([{"id": "3hop1__1_2", "question": "Q?", "answer": "B",
                               "answer_aliases": ["Bee"]}]))  # fmt: skip
    (m,) = load_qa(mq, "musique")
    assert m.group == "3hop" and m.answers == ["B", "Bee"]


def test_loader_errors_name_file_line_and_field(tmp_path) -> None:
    hp = tmp_path / "hp.jsonl"
    hp.write_text('{"question_id": "h1", "question_text": "Q?", "answers_objects": []}\n')
    with pytest.raises(SageError, match=r"hp.jsonl:1: field 'answers_objects\[\]\.spans'"):
        load_qa(hp, "hotpotqa")
    hp.write_text('{"question_id": "h1"}\n{not json\n')
    with pytest.raises(SageError, match=r"hp.jsonl:2: invalid JSON"):
        load_qa(hp, "hotpotqa")
    mq = tmp_path / "mq.json"
    mq.write_text(json.dumps([{"id": "2hop__1", "question": "Q?", "answer": "x"}, {"id": "2"}]))
    with pytest.raises(SageError, match=r"mq.json\[1\]: missing field 'question'"):
        load_qa(mq, "musique")
    with pytest.raises(SageError, match="--format 'squad'"):
        load_qa(mq, "squad")
    dup = tmp_path / "dup.jsonl"
    dup.write_text('{"id": "a", "question": "Q", "answer": "x"}\n' * 2)
    with pytest.raises(SageError, match="duplicate question id 'a'"):
        load_qa(dup, "qa")
