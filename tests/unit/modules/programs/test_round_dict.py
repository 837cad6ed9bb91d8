"""A round's checkpoint dict: the same as ``dataclasses.asdict`` made, and a copy."""

from __future__ import annotations

from dataclasses import asdict

from modules.programs.attempts import Attempt
from modules.programs.sage import RoundResult, plain
from modules.programs.status import Status


def a_round() -> RoundResult:
    trace = [
        {"type": "search", "query": "q", "new": True, "passages": [{"id": "p1", "chars": 3}]},
        {"type": "answer", "answer": "Ada", "score": 0.5, "pair": ("a", 1), "none": None},
    ]
    attempts = [
        Attempt(i, "Ada", 2, i % 2 == 0, {"verdict": "ok", "scores": [1, 0]}, trace, {"n": 1})
        for i in range(3)
    ]
    return RoundResult(
        1,
        Status.TOO_EASY,
        3,
        "revise:too_easy",
        {"question": "Who?", "answer": "Ada", "supporting_ids": ["p1"]},
        attempts,
        [{"type": "research", "notes": ["x", "y"]}],
        [{"n": {"deep": [1.5, True]}}],
        {"lm_calls": 7, "seconds": 1.25},
        None,
    )


def test_to_dict_is_what_asdict_made():
    rr = a_round()
    got = rr.to_dict()
    assert got == asdict(rr)
    assert type(got["status"]) is Status and got["attempts"][0]["trace"][1]["pair"] == ("a", 1)
    assert RoundResult.from_dict(got) == rr


def test_to_dict_is_a_copy():
    rr = a_round()
    got = rr.to_dict()
    got["attempts"][0]["trace"][0]["passages"][0]["id"] = "changed"
    got["candidate"]["supporting_ids"].append("p9")
    got["meter"]["lm_calls"] = 0
    assert rr.attempts[0].trace[0]["passages"][0]["id"] == "p1"
    assert rr.candidate == {"question": "Who?", "answer": "Ada", "supporting_ids": ["p1"]}
    assert rr.meter["lm_calls"] == 7


def test_plain_deep_copies_what_it_does_not_know():
    class Box:
        def __init__(self, items: list[int]):
            self.items = items

    box = Box([1, 2])
    out = plain({"box": box})["box"]
    assert out is not box and out.items == [1, 2] and out.items is not box.items
