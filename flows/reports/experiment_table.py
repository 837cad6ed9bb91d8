"""The experiment's table: per arm and round, the per-round metrics of
``flows/runs/metrics.py`` (each seed's latest candidate with round <= r, so an accepted pair
stays accepted) with 95 % bootstrap intervals over seeds, and per round the paired
difference feedback − resample (the same seeds, the same shared round 0).

Intervals are percentile intervals of ``B`` resamples of the seeds, drawn with numpy from
the experiment's ``--seed`` (the same seed gives the same intervals); with fewer than
``MIN_SEEDS_FOR_CI`` seeds they are None (``n/a``)."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from flows.runs.metrics import state_at_round
from modules.programs.status import Status

MIN_SEEDS_FOR_CI = 5
NO_TARGET = "no-target"
PAIRED = ("feedback", "resample")
PAIRED_METRICS = ("pct_pass", "pct_correct")


class Resampler:
    """Bootstrap indices of n seeds (B x n), one draw per n, seeded by the run's --seed: every
    row of the same seeds uses the same resamples (and a pair's two arms too)."""

    def __init__(self, seed: int, n_boot: int):
        self.seed, self.n_boot = seed, n_boot
        self._idx: dict[int, np.ndarray] = {}

    def indices(self, n: int) -> np.ndarray | None:
        if n < MIN_SEEDS_FOR_CI:
            return None
        if n not in self._idx:
            rng = np.random.default_rng([self.seed, n])
            self._idx[n] = rng.integers(0, n, size=(self.n_boot, n), dtype=np.int32)
        return self._idx[n]


def seed_values(df: pl.DataFrame, r: int) -> pl.DataFrame:
    """One row per seed at round r: correct, passed, avg@K, min searches (correct seeds only),
    and its LM calls and tokens through round r (the cost of reaching this state)."""
    state = state_at_round(df, r)
    cost = (
        df.filter(pl.col("round") <= r)
        .group_by("seed_id")
        .agg(pl.col("lm_calls").fill_null(0).sum(), pl.col("tokens").fill_null(0).sum())
    )
    return (
        state.select(
            "seed_id",
            pl.col("pass_at_k").fill_null(False).cast(pl.Float64).alias("correct"),
            (pl.col("status") == Status.ACCEPTED.value).cast(pl.Float64).alias("passed"),
            pl.col("avg_at_k").cast(pl.Float64),
            pl.when(pl.col("pass_at_k"))
            .then(pl.col("min_searches"))
            .cast(pl.Float64)
            .alias("searches"),
        )
        .join(cost, on="seed_id", how="left")
        .sort("seed_id")
    )


def _mean(values: np.ndarray, idx: np.ndarray | None = None) -> np.ndarray | float | None:
    """The mean of the non-NaN values (None if there are none); with ``idx``, the mean of
    every resample (NaN where a resample has none)."""
    if idx is None:
        ok = values[~np.isnan(values)]
        return float(ok.mean()) if len(ok) else None
    sample = values[idx]
    good = ~np.isnan(sample)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(good, sample, 0.0).sum(axis=1) / good.sum(axis=1)


def interval(values: np.ndarray, idx: np.ndarray | None, scale: float = 1.0) -> list | None:
    """The 95 % percentile interval of the mean of ``values`` over seed resamples."""
    if idx is None:
        return None
    stats = _mean(values, idx)
    stats = stats[np.isfinite(stats)]
    if not len(stats):
        return None
    lo, hi = np.percentile(stats * scale, [2.5, 97.5])
    return [round(float(lo), 2), round(float(hi), 2)]


def _pct(values: np.ndarray) -> float | None:
    m = _mean(values)
    return None if m is None else round(100 * m, 2)


def _num(values: np.ndarray, digits: int = 3) -> float | None:
    m = _mean(values)
    return None if m is None else round(m, digits)


def table_row(arm: str, r: int, v: pl.DataFrame, boot: Resampler) -> dict[str, Any]:
    """One row of the table: the arm at round r over its seeds, each value with its interval
    (point values as ``compute_metrics``'s per-round summary gives them)."""
    col = {c: v[c].to_numpy().astype(float) for c in v.columns if c != "seed_id"}
    idx = boot.indices(v.height)
    avg_correct = np.where(col["correct"] > 0, col["avg_at_k"], np.nan)
    no_s = arm == NO_TARGET  # without a target S "pass" is undefined (accepted = correct)
    return {
        "arm": arm,
        "round": r,
        "n_seeds": v.height,
        "pct_correct": _pct(col["correct"]),
        "pct_correct_ci": interval(col["correct"], idx, 100),
        "pct_pass": None if no_s else _pct(col["passed"]),
        "pct_pass_ci": None if no_s else interval(col["passed"], idx, 100),
        "avg_at_k": _num(col["avg_at_k"]),
        "avg_at_k_ci": interval(col["avg_at_k"], idx),
        "avg_at_k_correct": _num(avg_correct),
        "mean_searches": _num(col["searches"]),
        "mean_searches_ci": interval(col["searches"], idx),
        "lm_calls": _num(col["lm_calls"], 1),
        "lm_calls_ci": interval(col["lm_calls"], idx),
        "tokens": _num(col["tokens"], 1),
        "tokens_ci": interval(col["tokens"], idx),
    }


def arm_rows(arm: str, df: pl.DataFrame, rounds: int, boot: Resampler) -> list[dict[str, Any]]:
    """The arm's rows, round 0 to ``rounds`` (the no-target arm: round 0 only)."""
    last = 0 if arm == NO_TARGET else rounds
    return [table_row(arm, r, seed_values(df, r), boot) for r in range(last + 1)]


def paired_rows(
    frames: dict[str, pl.DataFrame], rounds: int, boot: Resampler
) -> list[dict[str, Any]]:
    """Per round, feedback − resample in % pass and % correct over the seeds both arms hold:
    the mean of the per-seed differences, with its interval."""
    if not all(a in frames for a in PAIRED):
        return []
    out = []
    for r in range(rounds + 1):
        fb, rs = (seed_values(frames[a], r) for a in PAIRED)
        both = fb.join(rs, on="seed_id", suffix="_rs")
        idx = boot.indices(both.height)
        for metric, column in zip(PAIRED_METRICS, ("passed", "correct"), strict=True):
            d = (both[column] - both[f"{column}_rs"]).to_numpy().astype(float)
            out.append(
                {
                    "round": r,
                    "metric": metric,
                    "n_seeds": both.height,
                    "diff": _pct(d),
                    "ci": interval(d, idx, 100),
                }
            )
    return out


def build_table(
    frames: dict[str, pl.DataFrame], rounds: int, seed: int, n_boot: int
) -> dict[str, Any]:
    """The whole table from each arm's candidates frame: rows, paired rows, warnings."""
    boot = Resampler(seed, n_boot)
    rows = [row for arm, df in frames.items() for row in arm_rows(arm, df, rounds, boot)]
    warnings = []
    few = sorted({r["n_seeds"] for r in rows if r["n_seeds"] < MIN_SEEDS_FOR_CI})
    if few:
        warnings.append(
            f"only {few[0]} seed(s): bootstrap intervals need at least {MIN_SEEDS_FOR_CI} "
            "seeds, so they are n/a (run more --seeds)"
        )
    return {"table": rows, "paired": paired_rows(frames, rounds, boot), "warnings": warnings}
