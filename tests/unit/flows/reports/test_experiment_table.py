"""The experiment's table: per-round values as the run metrics give them, seeded bootstrap
intervals that contain their point, n/a below 5 seeds, paired differences, bad options."""

from __future__ import annotations

import numpy as np
import pytest

from flows.experiment import ExperimentParams, parse_arms
from flows.reports.experiment import display_rows, table_markdown
from flows.reports.experiment_table import build_table, interval
from flows.runs.metrics import candidates_frame, compute_metrics
from modules.errors import SageError


def _row(sid: str, r: int, status: str, n_correct: int, fewest: int | None, k: int = 4) -> dict:
    return {"seed_id": sid, "round": r, "status": status, "target_steps": 3, "attempts": k,
            "n_correct": n_correct, "pass_at_k": n_correct > 0, "avg_at_k": n_correct / k,
            "min_searches": fewest, "mean_searches": 2.0, "lm_calls": 10 + r, "tokens": 100,
            "question": "q", "answer": "a"}  # fmt: skip


def _frames(n: int = 8) -> dict:
    """Round 0 shared: seeds too easy (even) or incorrect (odd). Feedback: every too-easy seed
    accepted at round 1, the incorrect ones solved too easily; resample: seed 0 accepted at
    round 1, the rest unchanged; round 2 leaves both arms as they were (discarded/too easy)."""
    r0 = [_row(f"s{i}", 0, "too_easy" if i % 2 == 0 else "incorrect", 2 * (i % 2 == 0),
               1 if i % 2 == 0 else None) for i in range(n)]  # fmt: skip
    fb, rs = list(r0), list(r0)
    for i in range(n):
        if i % 2 == 0:
            fb.append(_row(f"s{i}", 1, "accepted", 4, 3))
        else:
            fb += [_row(f"s{i}", 1, "too_easy", 1, 2), _row(f"s{i}", 2, "too_easy", 1, 2)]
        if i == 0:
            rs.append(_row("s0", 1, "accepted", 1, 4))
        else:
            rs += [_row(f"s{i}", 1, r0[i]["status"], r0[i]["n_correct"], r0[i]["min_searches"]),
                   _row(f"s{i}", 2, "discarded", 0, None)]  # fmt: skip
    return {"feedback": candidates_frame(fb), "resample": candidates_frame(rs)}


def test_point_values_are_the_run_metrics_per_round():
    frames = _frames()
    res = build_table(frames, 2, seed=0, n_boot=500)
    for arm, df in frames.items():
        per_round = compute_metrics(df, 2)["per_round"]
        rows = [t for t in res["table"] if t["arm"] == arm]
        assert [t["round"] for t in rows] == [0, 1, 2]
        for t, m in zip(rows, per_round, strict=True):
            assert (t["pct_correct"], t["pct_pass"], t["avg_at_k"], t["mean_searches"]) == (
                m["pct_correct"], m["pct_pass"], m["avg_at_k"], m["mean_min_searches"]
            )  # fmt: skip
    fb1 = next(t for t in res["table"] if t["arm"] == "feedback" and t["round"] == 1)
    assert (fb1["pct_correct"], fb1["pct_pass"], fb1["mean_searches"]) == (100.0, 50.0, 2.5)
    assert fb1["lm_calls"] == 10 + 11  # round 0 and round 1, every seed
    assert fb1["avg_at_k_correct"] == round((4 * 1.0 + 4 * 0.25) / 8, 3)


def test_paired_differences_have_the_expected_sign_and_size():
    res = build_table(_frames(), 2, seed=0, n_boot=500)
    diff = {(p["round"], p["metric"]): p for p in res["paired"]}
    assert diff[(0, "pct_pass")]["diff"] == 0.0 and diff[(0, "pct_pass")]["ci"] == [0.0, 0.0]
    # round 1: feedback accepts seeds 0,2,4,6; resample only seed 0 -> (4 - 1) / 8
    assert diff[(1, "pct_pass")]["diff"] == 37.5
    lo, hi = diff[(1, "pct_pass")]["ci"]
    assert 0 <= lo < 37.5 < hi <= 100
    # % correct: feedback solves every seed at round 1; resample keeps the 4 even seeds
    assert diff[(1, "pct_correct")]["diff"] == 50.0
    # round 2: resample's new pairs are all wrong; only seed 0 (accepted at round 1) stays
    assert diff[(2, "pct_correct")]["diff"] == 100 - 12.5


def test_intervals_are_deterministic_for_a_seed_and_contain_the_point():
    a, b = (build_table(_frames(12), 2, seed=7, n_boot=800) for _ in range(2))
    assert a == b
    c = build_table(_frames(12), 2, seed=8, n_boot=800)
    assert [t["pct_pass_ci"] for t in c["table"]] != [t["pct_pass_ci"] for t in a["table"]]
    for t in a["table"]:
        for key in ("pct_correct", "pct_pass", "avg_at_k", "mean_searches", "lm_calls"):
            lo, hi = t[f"{key}_ci"]
            assert lo <= t[key] <= hi, (t["arm"], t["round"], key)
    for p in a["paired"]:
        assert p["ci"][0] <= p["diff"] <= p["ci"][1]


def test_skewed_values_interval_contains_the_mean():
    rng = np.random.default_rng(3)
    for n in (5, 6, 9, 30):
        values = (rng.random(n) < 0.15).astype(float)
        idx = rng.integers(0, n, size=(2000, n))
        lo, hi = interval(values, idx, 100)
        assert lo <= 100 * values.mean() <= hi


def test_fewer_than_five_seeds_gives_na_and_a_warning():
    res = build_table(_frames(4), 2, seed=0, n_boot=500)
    assert all(t["pct_pass_ci"] is None and t["pct_correct_ci"] is None for t in res["table"])
    assert all(p["ci"] is None for p in res["paired"])
    assert res["warnings"] and "at least 5 seeds" in res["warnings"][0]
    manifest = {"run_id": "x", "collection_version": "demo@1", "models": dict.fromkeys(
        ("generator", "agent", "judge"), "m"), "params": ExperimentParams(
        collection="demo", seeds=4).record()}  # fmt: skip
    md = table_markdown(manifest, res)
    assert "[n/a]" in md and "> warning: only 4 seed(s)" in md


def test_rows_show_the_papers_numbers_beside_and_round_0_once():
    res = build_table(_frames(), 2, seed=0, n_boot=200)
    rows = display_rows(res["table"])
    labels = [r["row"] for r in rows]
    assert labels == ["A_gen (round 0)", "+1 feedback", "+2 feedback", "+1 resample",
                      "+2 resample"]  # fmt: skip
    paper = [v for k, v in rows[1].items() if k.startswith("paper")][0]
    assert paper == "77 / 31 / 83.2 / 4.1"  # the paper's +1 feedback row
    assert rows[0]["% pass [95% CI]"].startswith("0.0 [")


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"arms": "feedback,revise"}, "unknown arm 'revise'"),
        ({"rounds": 0}, "--rounds"),
        ({"steps": "any"}, "need a target S"),
        ({"seeds": 0}, "--seeds"),
    ],
)
def test_bad_options_are_one_line_errors(values, message):
    with pytest.raises(SageError, match=message) as err:
        ExperimentParams.build(**({"collection": "demo", "seeds": 6} | values))
    assert "\n" not in str(err.value)


def test_arms_parse_in_order_without_duplicates():
    assert parse_arms("resample, feedback,resample") == ("resample", "feedback")
    with pytest.raises(SageError):
        parse_arms(" , ")
