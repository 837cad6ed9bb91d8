"""Evaluate the search agent on a QA set over a collection: accuracy, Avg@K, searches, cost.

Per-question results are checkpointed to ``runs/<eval_id>/checkpoints.jsonl`` as they finish,
so re-running with the same ``--run-id`` resumes. Artifacts: ``evaluation.parquet`` (one row
per attempt), ``eval_metrics.json``, ``eval_report.md`` and ``traces.jsonl``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, ClassVar, Literal

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.data.qa_sets import QAItem, load_qa
from flows.engine import futures
from flows.engine.artifacts import artifact_key
from flows.engine.interrupts import prompt_exit
from flows.engine.params import (
    Attempts,
    AttemptWorkers,
    Collection,
    FlowParams,
    MaxSearches,
    RunId,
    argument,
    option,
)
from flows.engine.progress import RunTracker, Snapshot
from flows.engine.retrying import retried
from flows.engine.runtime import open_verifier
from flows.reports.tables import md_table
from flows.runs.manifest import run_manifest
from flows.runs.records import QuestionRecord
from flows.runs.store import RunStore, new_run_id
from modules.errors import SageError
from modules.programs.attempts import Verifier
from modules.seeding import stable_int
from modules.settings import Settings, load_settings


class EvaluateParams(FlowParams):
    """What `sage evaluate` takes."""

    RESUME_KEYS: ClassVar[tuple[str, ...]] = (
        "dataset",
        "fmt",
        "collection",
        "attempts",
        "max_searches",
        "offset",
        "seed",
    )

    dataset: str = argument("QA file, or a sage run directory.")
    fmt: Literal["sage", "hotpotqa", "musique", "qa"] = option(
        "sage", "sage | hotpotqa | musique | qa (JSON lines).", flag="--format"
    )
    collection: Collection = None
    attempts: Attempts = option(1, "Agent attempts K per question.")
    limit: int | None = option(None, "Evaluate at most N questions.", ge=1)
    offset: int = option(0, "Skip the first N questions.", ge=0)
    max_searches: MaxSearches = 10
    temperature: float | None = option(
        None, "Agent sampling temperature (default: the profile's).", ge=0.0, le=2.0
    )
    seed: int = option(0, "Sampling seed.")
    run_id: RunId = option(None, "Evaluation id; re-use to resume.")
    attempt_workers: AttemptWorkers = option(1, "Attempts run in parallel.")
    concurrency: int = option(
        1, "Questions at once (a served LLM; the local model gets as many slots).", ge=1
    )


@task(
    **retried(),
    task_run_name="question-{item.id}",
)
def solve_question(
    item: QAItem, verifier: Verifier, seed: int, store: RunStore, index: int
) -> QuestionRecord:
    """K judged agent attempts at one question, appended durably to the checkpoint log."""
    attempts = verifier(item.question, item.answers, stable_int(seed, item.id, digits=6) * 16)
    rec = QuestionRecord(item.id, item.question, item.answers, item.group, attempts, index)
    store.append_record(rec.to_dict())
    return rec


ATTEMPT_SCHEMA: dict[str, pl.DataType] = {
    "qid": pl.String(),
    "group": pl.String(),
    "attempt": pl.Int64(),
    "answer": pl.String(),
    "gold": pl.String(),
    "correct": pl.Boolean(),
    "judge_method": pl.String(),
    "n_searches": pl.Int64(),
    "step_calls": pl.Int64(),
    "parse_failures": pl.Int64(),
    "forced": pl.Boolean(),
    "forced_right": pl.Boolean(),
    "lm_calls": pl.Int64(),
    "tokens": pl.Int64(),
    "seconds": pl.Float64(),
}


def attempts_frame(records: list[QuestionRecord]) -> pl.DataFrame:
    rows = []
    for r in records:
        for a in r.attempts:
            m = a.meter or {}
            rows.append(
                {
                    "qid": r.qid,
                    "group": r.group,
                    "attempt": a.index,
                    "answer": a.answer,
                    "gold": r.answers[0],
                    "correct": bool(a.correct),
                    "judge_method": (a.judgement or {}).get("method"),
                    "n_searches": a.n_searches,
                    "step_calls": a.step_calls,
                    "parse_failures": a.parse_failures,
                    "forced": bool(a.forced),
                    "forced_right": bool(a.forced and (a.judgement or {}).get("correct")),
                    "lm_calls": int(m.get("lm_calls", 0)),
                    "tokens": int(m.get("prompt_tokens", 0)) + int(m.get("completion_tokens", 0)),
                    "seconds": float(m.get("seconds", 0.0)),
                }
            )
    return pl.DataFrame(rows, schema=ATTEMPT_SCHEMA)


def _summ(df: pl.DataFrame) -> dict[str, Any]:
    """Accuracy (pass@K over questions), Avg@K, searches, parse rate and cost of attempts."""
    if df.is_empty():
        return {"questions": 0}
    per_q = df.group_by("qid").agg(
        pl.col("correct").any().alias("pass"), pl.col("correct").mean().alias("avg")
    )
    steps = int(df["step_calls"].sum())
    correct = df.filter(pl.col("correct"))
    return {
        "questions": per_q.height,
        "attempts": df.height,
        "accuracy": round(float(per_q["pass"].mean()), 3),
        "avg_at_k": round(float(per_q["avg"].mean()), 3),
        "mean_searches": round(float(df["n_searches"].mean()), 2),
        "mean_searches_correct": (
            round(float(correct["n_searches"].mean()), 2) if correct.height else None
        ),
        "step_parse_rate": (
            round(1 - int(df["parse_failures"].sum()) / steps, 3) if steps else None
        ),
        "forced_rate": round(float(df["forced"].mean()), 3),
        # forced answers (budget spent) judged right: shown, never counted in accuracy
        "forced_right_rate": round(float(df["forced_right"].mean()), 3),
        "seconds_per_attempt": round(float(df["seconds"].mean()), 1),
        "lm_calls_per_attempt": round(float(df["lm_calls"].mean()), 2),
        "tokens_per_attempt": round(float(df["tokens"].mean()), 1),
    }


def eval_metrics(df: pl.DataFrame) -> dict[str, Any]:
    groups = sorted(set(df["group"].to_list())) if not df.is_empty() else []
    return {
        "overall": _summ(df),
        "by_group": [{"group": g, **_summ(df.filter(pl.col("group") == g))} for g in groups],
        "judge_methods": (
            dict(df["judge_method"].value_counts().iter_rows()) if not df.is_empty() else {}
        ),
    }


COLS = [
    "questions",
    "accuracy",
    "avg_at_k",
    "mean_searches",
    "mean_searches_correct",
    "step_parse_rate",
    "forced_rate",
    "forced_right_rate",
    "seconds_per_attempt",
    "lm_calls_per_attempt",
]


def eval_report(manifest: dict[str, Any], metrics: dict[str, Any]) -> str:
    p = manifest["params"]
    return f"""# sage evaluation `{manifest["run_id"]}`

`{p["dataset"]}` ({p["fmt"]}), collection `{p["collection"]}` ({manifest["collection_version"]}),
K={p["attempts"]} attempts, max {p["max_searches"]} searches, agent `{manifest["models"]["agent"]}`,
judge `{manifest["models"]["judge"]}`.

## Overall

{md_table([metrics["overall"]], COLS)}
## By group

{md_table(metrics["by_group"], ["group", *COLS])}
Judge decisions by method: {metrics["judge_methods"]}
"""


def finalise_eval(store: RunStore) -> dict[str, Any]:
    """Rebuild every evaluation artifact from the checkpoints (idempotent)."""
    ordered = sorted(store.questions().values(), key=lambda r: r.index)
    df = attempts_frame(ordered)
    store.write_parquet("evaluation.parquet", df)
    store.write_jsonl("traces.jsonl", (r.to_dict() for r in ordered))
    metrics = eval_metrics(df)
    store.write_json("eval_metrics.json", metrics)
    store.write_text("eval_report.md", eval_report(store.read_manifest(), metrics))
    return metrics


def _open_verifier(params: EvaluateParams, settings: Settings) -> tuple[Verifier, str]:
    if params.temperature is not None:
        settings = settings.with_overrides(agent_temperature=params.temperature)
    config = params.sage_config(settings)
    return open_verifier(
        settings,
        str(params.collection),
        config,
        force_answer=True,
        questions_at_once=params.concurrency,
    )


@flow(name="evaluate-agent", log_prints=True)
def evaluate_agent(
    params: EvaluateParams, settings_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Run the search agent K times per question and report accuracy and searches by group."""
    settings = load_settings(**(settings_overrides or {}))
    params = params.model_copy(
        update={
            "dataset": str(Path(params.dataset).resolve()),
            "collection": params.collection or settings.collection,
            "run_id": params.run_id or new_run_id("eval-"),
        }
    )
    items = load_qa(params.dataset, params.fmt)
    items = items[params.offset : params.offset + params.limit if params.limit else None]
    store = RunStore(settings.runs_dir, params.run_id)
    verifier, version = _open_verifier(params, settings)
    manifest = run_manifest(
        "evaluation",
        params.run_id,
        params,
        settings,
        ("agent", "judge"),
        collection_version=version,
        questions=[it.id for it in items],
    )
    resumed = store.start(manifest, params.RESUME_KEYS)
    t0 = time.perf_counter()
    solve_all(items, verifier, params.seed, store, params.concurrency)
    metrics = finalise_eval(store)
    _publish(metrics, store, params)
    return {
        "run_id": params.run_id,
        "run_dir": str(store.path.resolve()),
        "resumed": resumed,
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "metrics": metrics,
    }


def solve_all(
    items: list[QAItem], verifier: Verifier, seed: int, store: RunStore, concurrency: int = 1
) -> None:
    """Every question not answered yet, ``concurrency`` at once (a served LM's requests in
    flight; the local model gets as many slots), checkpointed as each finishes."""
    records = store.questions()
    done = set(records)
    todo = [(i, it) for i, it in enumerate(items) if it.id not in done]
    logger = get_run_logger()
    logger.info("evaluation %s: %d questions, %d already done", store.run_id, len(items), len(done))
    tracker = eval_tracker(store.run_id, len(items), list(records.values()))

    def finished(todo_item: tuple[int, QAItem], fut: Any) -> None:
        it = todo_item[1]
        try:
            records[it.id] = futures.result(fut)
        except Exception as exc:  # a question that keeps failing is logged, not fatal
            logger.error("question %s failed: %s", it.id, exc)
        tracker.cost(it.id, *question_cost(records.get(it.id)))
        tracker.finished(accepted=sum(r.solved for r in records.values()))

    def submit(todo_item: tuple[int, QAItem]) -> Any:
        i, it = todo_item
        return solve_question.submit(it, verifier, seed, store, i)

    with prompt_exit(), tracker:  # Ctrl-C / SIGTERM leave at once; answered questions are kept
        futures.in_window(todo, submit, concurrency, finished)


def question_cost(rec: QuestionRecord | None) -> tuple[int, int]:
    """(LM calls, tokens) of a question's attempts."""
    meters = [a.meter or {} for a in (rec.attempts if rec else [])]
    calls = sum(int(m.get("lm_calls", 0)) for m in meters)
    tokens = sum(
        int(m.get("prompt_tokens", 0)) + int(m.get("completion_tokens", 0)) for m in meters
    )
    return calls, tokens


def eval_tracker(run_id: str, total: int, records: list[QuestionRecord]) -> RunTracker:
    """The progress of an evaluation: questions done and solved, LM calls, tokens."""
    n_solved = sum(r.solved for r in records)
    snap = Snapshot(run_id, len(records), total, "questions", n_solved, label="solved")
    return RunTracker(snap, {r.qid: question_cost(r) for r in records})


def _publish(metrics: dict[str, Any], store: RunStore, params: EvaluateParams) -> None:
    key = artifact_key("sage", store.run_id, "evaluation")
    create_table_artifact(
        table=[{"group": "all", **metrics["overall"]}, *metrics["by_group"]],
        key=key,
        description=f"agent evaluation {store.run_id} on {Path(params.dataset).name}",
    )
    create_markdown_artifact(
        markdown=(store.path / "eval_report.md").read_text(),
        key=artifact_key("sage", store.run_id, "evaluation", "report"),
    )


def compare_evaluations(run_dirs: list[Path]) -> str:
    """A markdown table of mean searches and accuracy per evaluated dataset (paper-style)."""
    rows = []
    for d in run_dirs:
        store = RunStore(Path(d).resolve().parent, Path(d).resolve().name)
        man = store.read_manifest()
        if man.get("kind") != "evaluation":
            raise SageError(f"{d}: not an evaluation run (run `sage evaluate` first)")
        m = finalise_eval(store)
        rows.append(
            {"dataset": f"{Path(man['params']['dataset']).name} ({man['params']['fmt']})"}
            | m["overall"]
        )
    return md_table(rows, ["dataset", *COLS])
