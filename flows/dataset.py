"""Turning checkpointed rounds into the run's dataset, candidates, traces, metrics and report."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import polars as pl

from flows.html_report import write_html_report
from flows.metrics import candidates_frame, compute_metrics
from flows.report import write_report
from flows.run_store import RunStore

TERMINAL = {"accepted", "discarded", "unverified"}

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
}


def group_rounds(records: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Checkpoint records by seed, in round order, one record per round (first wins)."""
    out: dict[str, dict[int, dict[str, Any]]] = defaultdict(dict)
    for rec in records:
        out[rec["seed_id"]].setdefault(int(rec["round"]), rec)
    return {sid: [rs[r] for r in sorted(rs)] for sid, rs in out.items()}


def seed_finished(rounds: list[dict[str, Any]], params: Any) -> bool:
    if not rounds:
        return False
    last = rounds[-1]
    return last["status"] in TERMINAL or int(last["round"]) >= params.rounds


def count_accepted(done: dict[str, list[dict[str, Any]]]) -> int:
    return sum(1 for rs in done.values() if rs and rs[-1]["status"] == "accepted")


def dataset_rows(done: dict[str, list[dict[str, Any]]], keep_unverified: bool) -> list[dict]:
    rows = []
    for sid, rs in sorted(done.items()):
        last = rs[-1] if rs else None
        if not last or last["status"] not in (
            {"accepted", "unverified"} if keep_unverified else {"accepted"}
        ):
            continue
        rows.append(
            {
                "id": f"{last['run_id']}:{sid}",
                "question": last["question"],
                "answer": last["answer"],
                "answer_type": last.get("answer_type"),
                "target_steps": last["target_steps"],
                "min_searches": last.get("min_searches"),
                "pass_at_k": bool(last.get("pass_at_k")),
                "n_correct": last.get("n_correct"),
                "attempts": last.get("attempts"),
                "avg_at_k": last.get("avg_at_k"),
                "round_accepted": last["round"],
                "seed_doc_id": last["doc_id"],
                "supporting_ids": last.get("supporting_ids") or [],
                "verified": last["status"] == "accepted",
            }
        )
    return rows


def finalise(store: RunStore, plan: list[dict[str, Any]], params: Any) -> dict[str, Any]:
    """Rebuild every derived artifact from the checkpoints (idempotent)."""
    records = store.load_rounds()
    done = group_rounds(records)
    flat = [r for rs in done.values() for r in rs]
    cands = candidates_frame(flat)
    store.write_parquet("candidates.parquet", cands)
    rows = dataset_rows(done, params.keep_unverified)
    data = pl.DataFrame(rows, schema=DATASET_SCHEMA)
    store.write_parquet("dataset.parquet", data)
    store.write_jsonl("dataset.jsonl", rows)
    store.write_jsonl(
        "traces.jsonl",
        (
            {
                "seed_id": r["seed_id"],
                "round": r["round"],
                "status": r["status"],
                **(r.get("detail") or {}),
            }
            for r in flat
        ),
    )
    metrics = compute_metrics(cands, params.rounds)
    metrics["planned_seeds"] = len(plan)
    metrics["processed_seeds"] = len(done)
    store.write_json("metrics.json", metrics)
    write_report(store.path, store.read_manifest(), metrics)
    write_html_report(store.path)
    store.mark_latest()
    return {"accepted": len(rows), "metrics": metrics}
