"""How an agent's trace is shown to the model: its own next step, the reviser and the tagger."""

from __future__ import annotations

from modules.programs.agent import render_trajectory
from modules.programs.reviser import render_attempt


def _search(query: str, *passages: tuple[str, str, str]) -> dict:
    return {
        "type": "search",
        "query": query,
        "passages": [{"id": i, "title": t, "text": x} for i, t, x in passages],
    }


P1 = ("p1", "Oskarrow", "Mount Oskarrow was first climbed by Ferrin Vashti in 1881. " * 4)
P2 = ("p2", "Vashti", "Ferrin Vashti was born in Brennick and sailed the Gull. " * 4)


def test_no_searches_yet():
    assert render_trajectory([{"type": "think", "reasoning": "hm"}], 100, 1000) == (
        "(no searches yet)"
    )


def test_searches_are_numbered_and_a_passage_read_twice_is_shown_once():
    trace = [_search("first ascent Oskarrow", P1), {"type": "think"}, _search("Vashti", P1, P2)]
    text = render_trajectory(trace, 400, 10_000)
    lines = text.splitlines()
    assert lines[0] == "Search 1: first ascent Oskarrow"
    assert lines[1].startswith("- Oskarrow: Mount Oskarrow was first climbed")
    assert lines[2] == "Search 2: Vashti"
    assert lines[3] == "- Oskarrow: (shown above)"
    assert lines[4].startswith("- Vashti: Ferrin Vashti was born")


def test_older_passages_shrink_first_and_the_newest_keeps_its_text():
    trace = [_search(f"q{i}", (f"p{i}", f"T{i}", "word " * 100)) for i in range(4)]
    full = render_trajectory(trace, 400, 100_000)
    tight = render_trajectory(trace, 400, 900)
    assert len(tight) <= 900 < len(full)
    last = tight.splitlines()[-1]
    first_passage = tight.splitlines()[1]
    assert last.startswith("- T3: word") and len(last) > len(first_passage)


def test_a_budget_too_small_for_titles_is_clipped_to_the_budget():
    trace = [_search(f"query number {i}", (f"p{i}", "Title " * 5, "x")) for i in range(30)]
    assert len(render_trajectory(trace, 50, 200)) <= 200


def test_render_attempt_states_the_answer_and_verdict():
    att = {"trace": [_search("q", P1)], "answer": "Ferrin Vashti", "correct": True,
           "n_searches": 1}  # fmt: skip
    text = render_attempt(att, 100, 2000)
    assert text.startswith("Search 1: q")
    assert text.endswith("Final answer: Ferrin Vashti (correct, 1 searches)")
    assert render_attempt(None, 100, 2000) == "(no attempt)"
    assert "(wrong, 0 searches)" in render_attempt({"answer": "x", "n_searches": 0}, 100, 2000)
