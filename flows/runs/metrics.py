"""Run metrics from the flat candidate table (one row per seed and round).

``shown_chars`` / ``cut_chars``: retrieved text the round's prompts showed and left out
(``modules/programs/context.py``); ``cost.shown_share`` makes truncation visible per run.

Per-round numbers follow the paper's view: at round r each seed is represented by its
candidate after r feedback rounds (or its last one, if it stopped earlier because it was
accepted or discarded). %correct = share whose candidate had pass@K >= 1; %pass = share
accepted (correct and min searches among correct attempts >= S).
"""

from __future__ import annotations

from typing import Any

import polars as pl

from modules.programs.status import Status

CANDIDATE_SCHEMA: dict[str, pl.DataType] = {
    "run_id": pl.String(),
    "seed_id": pl.String(),
    "doc_id": pl.String(),
    "target_steps": pl.Int64(),
    "round": pl.Int64(),
    "strategy": pl.String(),
    "status": pl.String(),
    "question": pl.String(),
    "answer": pl.String(),
    "answer_type": pl.String(),
    "supporting_ids": pl.List(pl.String()),
    "attempts": pl.Int64(),
    "n_correct": pl.Int64(),
    "pass_at_k": pl.Boolean(),
    "avg_at_k": pl.Float64(),
    "min_searches": pl.Int64(),
    "mean_searches": pl.Float64(),
    "repeated_searches": pl.Int64(),
    "lm_calls": pl.Int64(),
    "tokens": pl.Int64(),
    "seconds": pl.Float64(),
    "shown_chars": pl.Int64(),
    "cut_chars": pl.Int64(),
}


def candidates_frame(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows -> a typed frame (empty rows give an empty frame with the schema)."""
    clean = [{k: r.get(k) for k in CANDIDATE_SCHEMA} for r in rows]
    return pl.DataFrame(clean, schema=CANDIDATE_SCHEMA)


def state_at_round(df: pl.DataFrame, r: int) -> pl.DataFrame:
    """Each seed's latest candidate with round <= r."""
    return (
        df.filter(pl.col("round") <= r)
        .sort(["seed_id", "round"])
        .group_by("seed_id", maintain_order=True)
        .last()
    )


def _summary(df: pl.DataFrame) -> dict[str, Any]:
    n = df.height
    if n == 0:
        return {
            "seeds": 0,
            "pct_correct": None,
            "pct_pass": None,
            "avg_at_k": None,
            "mean_min_searches": None,
            "mean_searches": None,
        }
    correct = df.filter(pl.col("pass_at_k"))
    return {
        "seeds": n,
        "pct_correct": round(100 * correct.height / n, 2),
        "pct_pass": round(100 * df.filter(pl.col("status") == Status.ACCEPTED.value).height / n, 2),
        "avg_at_k": _mean(df["avg_at_k"]),
        "mean_min_searches": _mean(correct["min_searches"]),
        "mean_searches": _mean(df["mean_searches"]),
    }


def _mean(s: pl.Series) -> float | None:
    s = s.drop_nulls()
    return round(float(s.mean()), 3) if len(s) else None


# a round that wrote a pair (a failed generation is generation_failed, or discarded when it
# ends the seed: the last round, or the paper profile, which does not regenerate)
_WRITTEN = pl.col("question").is_not_null()


def _target_is(s: int | None) -> pl.Expr:
    """Rows with target S ``s`` (None: no target, ``--steps any``)."""
    return pl.col("target_steps").is_null() if s is None else pl.col("target_steps") == s


def compute_metrics(df: pl.DataFrame, rounds: int) -> dict[str, Any]:
    """Everything metrics.json holds: per round, per target S, the funnel and tokens."""
    per_round = [{"round": r, **_summary(state_at_round(df, r))} for r in range(rounds + 1)]
    final = state_at_round(df, rounds)
    per_s = [
        {"target_steps": s, **_summary(final.filter(_target_is(s)))}
        for s in sorted(final["target_steps"].unique().to_list(), key=lambda s: s or 0)
    ]
    funnel_rounds = []
    for r in range(rounds + 1):
        at = df.filter(pl.col("round") == r)
        funnel_rounds.append(
            {
                "round": r,
                "candidates": at.filter(_WRITTEN).height,
                "correct": at.filter(pl.col("pass_at_k")).height,
                "accepted": at.filter(pl.col("status") == Status.ACCEPTED.value).height,
            }
        )
    accepted = final.filter(pl.col("status") == Status.ACCEPTED.value).height
    tokens = int(df["tokens"].fill_null(0).sum())
    calls = int(df["lm_calls"].fill_null(0).sum())
    shown = int(df["shown_chars"].fill_null(0).sum())
    cut = int(df["cut_chars"].fill_null(0).sum())
    return {
        "per_round": per_round,
        "per_target_steps": per_s,
        "funnel": {
            "seeds": final.height,
            "generated": df.filter((pl.col("round") == 0) & _WRITTEN).height,
            "ever_correct": df.filter(pl.col("pass_at_k"))["seed_id"].n_unique(),
            "generation_failed": df.filter(pl.col("question").is_null()).height,
            "accepted": accepted,
            "per_round": funnel_rounds,
        },
        "status_counts": dict(final["status"].value_counts().iter_rows()) if final.height else {},
        "cost": {
            "lm_calls": calls,
            "tokens": tokens,
            "seconds": round(float(df["seconds"].fill_null(0).sum()), 2),
            "tokens_per_accepted": round(tokens / accepted, 1) if accepted else None,
            "lm_calls_per_accepted": round(calls / accepted, 1) if accepted else None,
            "retrieved_chars_shown": shown,
            "retrieved_chars_cut": cut,
            "shown_share": round(shown / (shown + cut), 4) if shown + cut else None,
            "tokens_per_round": [
                int(df.filter(pl.col("round") == r)["tokens"].fill_null(0).sum())
                for r in range(rounds + 1)
            ],
        },
    }
