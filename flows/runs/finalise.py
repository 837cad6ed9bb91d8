"""Turning checkpointed rounds into the run's dataset, candidates, traces, metrics and report."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator
from typing import Any, Protocol

import polars as pl

from flows.runs.metrics import candidates_frame, compute_metrics
from flows.runs.records import RoundRecord
from flows.runs.store import RunStore, latest_in, rounds_in_order
from modules.checks import flags
from modules.programs.status import Status, seed_done

DATASET_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "question": pl.String(),
    "answer": pl.String(),
    "answer_type": pl.String(),
    "target_steps": pl.Int64(),
    "min_searches": pl.Int64(),
    "pass_at_k": pl.Boolean(),
    "n_correct": pl.Int64(),
    "attempts": pl.Int64(),
    "avg_at_k": pl.Float64(),
    "round_accepted": pl.Int64(),
    "seed_doc_id": pl.String(),
    "supporting_ids": pl.List(pl.String()),
    "verified": pl.Boolean(),
    "relaxed": pl.Boolean(),
}
FLAG_COLUMNS = tuple(flags.column(f) for f in flags.FLAGS)
RELAXED_MIN_SEARCHES = 2  # the SAGE code's --min_search_step for its relaxed last round


class KeepRules(Protocol):
    """What decides which seeds enter the dataset (``GenerateParams`` has them)."""

    rounds: int
    keep_unverified: bool
    relaxed_final_round: bool


def summary_of(record: dict[str, Any]) -> dict[str, Any]:
    """A checkpoint record without its traces (``detail``)."""
    return {k: v for k, v in record.items() if k != "detail"}


def group_rounds(records: Iterable[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Checkpoint records (plain dicts, as the flow's ledger keeps them) by seed, in round
    order, one record per round (first wins); ``RunStore.rounds`` gives them typed."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for rec in records:
        out[rec["seed_id"]].append(rec)
    return {sid: rounds_in_order(rs) for sid, rs in out.items()}


def seed_finished(rounds: list[dict[str, Any]], params: KeepRules) -> bool:
    return bool(rounds) and seed_done(rounds[-1]["status"], int(rounds[-1]["round"]), params.rounds)


def count_accepted(done: dict[str, list[dict[str, Any]]]) -> int:
    return sum(1 for rs in done.values() if rs and rs[-1]["status"] == Status.ACCEPTED)


def kept_status(last: RoundRecord, params: KeepRules) -> str | None:
    """Why a seed's last round enters the dataset: accepted, unverified (kept on request) or
    relaxed (the SAGE code's last round: solved in the final round, too easy included, with
    at least 2 searches); None when it does not."""
    if last.status == Status.ACCEPTED:
        return Status.ACCEPTED
    if last.status == Status.UNVERIFIED and params.keep_unverified:
        return Status.UNVERIFIED
    if (
        params.relaxed_final_round
        and last.status == Status.TOO_EASY
        and last.round >= params.rounds
        and (last.min_searches or 0) >= RELAXED_MIN_SEARCHES
    ):
        return "relaxed"
    return None


def question_key(question: str | None) -> str:
    """Exact-duplicate key of a question: whitespace and case folded."""
    return " ".join(str(question or "").split()).casefold()


def dataset_row(last: RoundRecord, why: str) -> dict[str, Any]:
    """The dataset item of a seed's kept last round (``why``: kept_status)."""
    return {
        "id": last.item_id,
        "question": last.question,
        "answer": last.answer,
        "answer_type": last.answer_type,
        "target_steps": last.target_steps,
        "min_searches": last.min_searches,
        "pass_at_k": bool(last.pass_at_k),
        "n_correct": last.n_correct,
        "attempts": last.attempts,
        "avg_at_k": last.avg_at_k,
        "round_accepted": last.round,
        "seed_doc_id": last.doc_id,
        "supporting_ids": last.supporting_ids,
        "verified": why != Status.UNVERIFIED,
        "relaxed": why == "relaxed",
    }


def dataset_rows(
    done: dict[str, list[RoundRecord]], params: KeepRules
) -> tuple[list[dict[str, Any]], int]:
    """The dataset items in seed order, and how many exact-duplicate questions were dropped
    (the first occurrence is kept, as the SAGE code does)."""
    rows, seen, dropped = [], set(), 0
    for _, rs in sorted(done.items()):
        why = kept_status(rs[-1], params) if rs else None
        if why is None:
            continue
        key = question_key(rs[-1].question)
        if key in seen:
            dropped += 1
            continue
        seen.add(key)
        rows.append(dataset_row(rs[-1], why))
    return rows, dropped


def _traces(records: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    """One trace line per round, the first record of a round winning, as in group_rounds."""
    seen: set[tuple[str, int]] = set()
    for r in records:
        key = (r["seed_id"], int(r["round"]))
        if key not in seen:
            seen.add(key)
            yield {
                "seed_id": r["seed_id"],
                "round": r["round"],
                "status": r["status"],
                **(r.get("detail") or {}),
            }


def latest_flags(store: RunStore) -> dict[str, dict[str, Any]] | None:
    """The ``flag_*`` columns of the run's latest validation, by item id (None: no
    validation with flags), so a dataset rewritten after it keeps them."""
    latest = latest_in(store.path / "validation")
    path = latest / "validation.parquet" if latest else None
    if path is None or not path.exists():
        return None
    frame = pl.read_parquet(path)
    if not set(FLAG_COLUMNS) <= set(frame.columns):
        return None
    return {r["id"]: r for r in frame.select(["id", *FLAG_COLUMNS]).iter_rows(named=True)}


def write_dataset(
    store: RunStore, rows: list[dict[str, Any]], flagged: dict[str, dict[str, Any]] | None
) -> None:
    """``dataset.parquet`` / ``.jsonl``: the items, with a validation's ``flag_*`` columns
    when ``flagged`` ({id: flags}) is given (an item it did not check: null flags)."""
    schema = dict(DATASET_SCHEMA)
    if flagged is not None:
        none = dict.fromkeys(FLAG_COLUMNS)
        rows = [r | {c: (flagged.get(r["id"]) or none)[c] for c in FLAG_COLUMNS} for r in rows]
        schema |= {c: pl.Boolean() for c in FLAG_COLUMNS}
    store.write_parquet("dataset.parquet", pl.DataFrame(rows, schema=schema))
    store.write_jsonl("dataset.jsonl", rows)


def finalise(store: RunStore, plan: list[dict[str, Any]], params: KeepRules) -> dict[str, Any]:
    """Rebuild every derived data artifact from the checkpoints (idempotent; the reports are
    ``flows/reports/run_reports.py``'s). The log is streamed: only round summaries are held
    in memory, traces go straight to traces.jsonl."""
    done = store.rounds(detail=False)
    flat = [r.summary() for rs in done.values() for r in rs]
    cands = candidates_frame(flat)
    store.write_parquet("candidates.parquet", cands)
    rows, duplicates = dataset_rows(done, params)
    write_dataset(store, rows, latest_flags(store))
    store.write_jsonl("traces.jsonl", _traces(store.iter_records()))
    metrics = compute_metrics(cands, params.rounds)
    metrics["planned_seeds"] = len(plan)
    metrics["processed_seeds"] = len(done)
    metrics["duplicate_questions_dropped"] = duplicates
    store.write_json("metrics.json", metrics)
    store.mark_latest()
    return {"accepted": len(rows), "metrics": metrics}
