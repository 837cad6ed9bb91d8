"""What the demo shows at its end: the accepted item, or the best candidate and why."""

from __future__ import annotations

import json
from pathlib import Path

from flows.runs.showcase import showcase, showcase_lines


def _attempt(i: int, queries: list[str], answer: str, correct: bool) -> dict:
    trace = [{"type": "search", "query": q, "passages": [], "new": True} for q in queries]
    return {"index": i, "answer": answer, "n_searches": len(queries), "correct": correct,
            "judgement": {}, "trace": trace, "meter": {}}  # fmt: skip


def _round(seed: str, r: int, status: str, attempts: list[dict], cand: dict | None) -> dict:
    error = None if cand else "bad json"
    return {"seed_id": seed, "round": r, "status": status, "target_steps": 2,
            "candidate": cand, "attempts": attempts, "error": error}  # fmt: skip


def _write(tmp_path: Path, rounds: list[dict]) -> Path:
    (tmp_path / "traces.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rounds))
    return tmp_path


PAIR = {"question": "What is the population of Tarvessa's capital?", "answer": "702,000"}


def test_the_accepted_item_with_its_fewest_search_queries(tmp_path):
    slow = _attempt(0, ["capital of Tarvessa?", "Brennick population?", "again?"], "702,000", True)
    fast = _attempt(1, ["capital of Tarvessa?", "population of Brennick?"], "702,000", True)
    run = _write(tmp_path, [_round("s0", 0, "too_easy", [], PAIR),
                            _round("s0", 1, "accepted", [slow, fast], PAIR)])  # fmt: skip
    item = showcase(run)
    assert (item["status"], item["searches"], item["round"]) == ("accepted", 2, 1)
    text = showcase_lines(item)
    assert text.splitlines()[0] == "accepted item"
    assert "S=2, solved in 2 searches:" in text and "2. population of Brennick?" in text


def test_a_repeated_search_is_shown_as_not_counted(tmp_path):
    """The demo's fresh run showed 3 queries under "solved in 2 searches" (query 3 repeated
    query 1): the repeat is marked so the list matches the count."""
    att = _attempt(
        0, ["When was it opened?", "When was the treaty signed?", "When opened?"], "1798", True
    )
    att["trace"][2]["new"] = False
    att["n_searches"] = 2
    text = showcase_lines(showcase(_write(tmp_path, [_round("s0", 0, "accepted", [att], PAIR)])))
    assert "solved in 2 searches:" in text
    assert "    2. When was the treaty signed?\n" in text
    assert text.endswith("3. When opened?  (a repeat: not counted)")


def test_no_accepted_item_shows_the_best_candidate_and_why(tmp_path):
    easy = _attempt(0, ["population of Halden Mor?"], "702,000", True)
    wrong = _attempt(0, ["Halden Mor?"], "Brennick", False)
    run = _write(tmp_path, [_round("s0", 0, "generation_failed", [], None),
                            _round("s1", 0, "incorrect", [wrong], PAIR),
                            _round("s2", 0, "too_easy", [easy], PAIR)])  # fmt: skip
    item = showcase(run)
    assert item["seed_id"] == "s2"
    assert item["reason"] == "too easy: solved in 1 search(es), fewer than S=2"
    assert "the best candidate (too_easy, round 0)" in showcase_lines(item)
    only_failed = showcase(_write(tmp_path, [_round("s0", 0, "discarded", [], None)]))
    assert only_failed["reason"] == "no valid pair was written (bad json)"
    assert showcase(tmp_path / "nowhere") is None
