"""The markdown report of a validation (``validation.md``, its Prefect artifact)."""

from __future__ import annotations

from typing import Any

from flows.reports.tables import md_table


def validation_markdown(manifest: dict[str, Any], vid: str, s: dict[str, Any]) -> str:
    table = md_table(
        [{"check": k, "flagged": v} for k, v in s["flags"].items()], ["check", "flagged"]
    )
    tax = md_table(
        [
            {"failure": kind, "cause": cause, "count": c}
            for kind, causes in s["failure_taxonomy"].items()
            for cause, c in causes.items()
        ],
        ["failure", "cause", "count"],
    )
    rtypes = ", ".join(f"{k} {v}" for k, v in s["reasoning_types"].items()) or "(not tagged)"
    d = s["diversity"]
    rv = s["reverification"]
    sc = s.get("solver_checks") or {}
    warn = "".join(f"\n**warning**: {w}\n" for w in s.get("warnings") or [])
    return f"""# validation `{vid}` of run `{manifest["run_id"]}`

{s["items"]} items, {s["kept"]} kept in `dataset.filtered.parquet` (dropped: flags
{", ".join(s.get("drops") or [])}; `sage export` drops the same unless `--keep FLAG`).
{warn}
{table}
Single-passage and closed-book checks: {sc.get("items")} items, {sc.get("lm_calls")} LM
calls ({sc.get("lm_calls_per_item")} per item). Decontaminated against
{s.get("eval_items", 0)} eval questions.

Re-verification: {rv["items"]} items, {rv["pct_pass"]}% still solved,
{rv["pct_difficulty_confirmed"]}% with min searches >= S.

Diversity: {d["distinct_seed_docs"]} distinct seed documents, {d["distinct_answers"]} distinct
answers over {d["items"]} items.

Reasoning types: {rtypes}

## Failure taxonomy of {s["rejected"]} rejected seeds

{tax}"""
