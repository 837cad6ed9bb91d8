"""Run metrics from the candidate table: the paper's per-round view, per S, funnel and cost."""

from __future__ import annotations

from flows.runs.metrics import candidates_frame, compute_metrics


def _row(seed, rnd, status, s=2, n_correct=0, k=4, min_s=None, tokens=100, written=True):
    return {
        "seed_id": seed, "round": rnd, "status": status, "target_steps": s,
        "question": f"q {seed}{rnd}?" if written else None,
        "attempts": k, "n_correct": n_correct, "pass_at_k": n_correct > 0,
        "avg_at_k": n_correct / k if k else None, "min_searches": min_s,
        "mean_searches": 2.0 if k else None,
        "lm_calls": 10, "tokens": tokens, "seconds": 1.5,
    }  # fmt: skip


ROWS = [
    _row("a", 0, "accepted", s=2, n_correct=2, min_s=3),  # accepted at once
    _row("b", 0, "too_easy", s=3, n_correct=4, min_s=1),  # revised, then accepted
    _row("b", 1, "accepted", s=3, n_correct=1, min_s=3),
    _row("c", 0, "incorrect", s=3),  # never right
    _row("c", 1, "discarded", s=3),
    _row("d", 0, "generation_failed", s=2, k=0, tokens=50, written=False),
]


def test_per_round_carries_a_stopped_seed_forward():
    m = compute_metrics(candidates_frame(ROWS), rounds=1)
    r0, r1 = m["per_round"]
    assert (r0["seeds"], r0["pct_correct"], r0["pct_pass"]) == (4, 50.0, 25.0)
    # round 1: a (accepted in round 0) still counts, b is now accepted
    assert (r1["seeds"], r1["pct_correct"], r1["pct_pass"]) == (4, 50.0, 50.0)
    assert r1["mean_min_searches"] == 3.0


def test_per_target_steps_and_funnel():
    m = compute_metrics(candidates_frame(ROWS), rounds=1)
    by_s = {r["target_steps"]: r for r in m["per_target_steps"]}
    assert by_s[2]["seeds"] == 2 and by_s[2]["pct_pass"] == 50.0
    assert by_s[3]["seeds"] == 2 and by_s[3]["pct_pass"] == 50.0
    f = m["funnel"]
    assert (f["seeds"], f["generated"], f["ever_correct"], f["accepted"]) == (4, 3, 2, 2)
    assert f["per_round"][0] == {"round": 0, "candidates": 3, "correct": 2, "accepted": 1}
    assert f["per_round"][1] == {"round": 1, "candidates": 2, "correct": 1, "accepted": 1}
    assert m["status_counts"] == {"accepted": 2, "discarded": 1, "generation_failed": 1}


def test_cost_per_accepted_item():
    m = compute_metrics(candidates_frame(ROWS), rounds=1)
    c = m["cost"]
    assert (c["lm_calls"], c["tokens"]) == (60, 550)
    assert (c["lm_calls_per_accepted"], c["tokens_per_accepted"]) == (30.0, 275.0)
    assert c["tokens_per_round"] == [350, 200]


def test_an_empty_run_has_the_schema_and_no_rates():
    m = compute_metrics(candidates_frame([]), rounds=2)
    assert [r["seeds"] for r in m["per_round"]] == [0, 0, 0]
    assert m["per_round"][0]["pct_pass"] is None
    assert m["cost"]["tokens_per_accepted"] is None and m["status_counts"] == {}


def test_a_failed_generation_that_ends_its_seed_is_not_counted_as_generated():
    """Under the paper profile a failed generation is closed at once (discarded), not
    regenerated: it must still not count as a written pair."""
    rows = [_row("a", 0, "accepted", n_correct=2, min_s=3),
            _row("e", 0, "discarded", k=0, written=False)]  # fmt: skip
    f = compute_metrics(candidates_frame(rows), rounds=1)["funnel"]
    assert (f["seeds"], f["generated"], f["generation_failed"]) == (2, 1, 1)
    assert f["per_round"][0]["candidates"] == 1
