"""Evaluate the search agent on a QA set over a collection: accuracy, Avg@K, searches, cost.

Per-question results are checkpointed to ``runs/<eval_id>/checkpoints.jsonl`` as they finish,
so re-running with the same ``--run-id`` resumes. Artifacts: ``evaluation.parquet`` (one row
per attempt), ``eval_metrics.json``, ``eval_report.md`` and ``traces.jsonl``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from flows import futures
from flows.interrupts import prompt_exit
from flows.qa_sets import FORMATS, QAItem, load_qa
from flows.retrying import is_transient
from flows.run_store import RunStore
from flows.runtime import open_solver
from modules.agent import SearchAgent
from modules.errors import SageError
from modules.judge import Judge
from modules.settings import Settings, load_settings
from modules.solver import run_attempts

RESUME_KEYS = ("dataset", "fmt", "collection", "attempts", "max_searches", "offset", "seed")


@dataclass
class EvaluateParams:
    dataset: str
    fmt: str = "sage"
    collection: str = "corpus"
    attempts: int = 1
    limit: int | None = None
    offset: int = 0
    max_searches: int = 10
    temperature: float = 0.7
    seed: int = 0
    run_id: str | None = None
    attempt_workers: int = 1

    def validate(self) -> None:
        if self.fmt not in FORMATS:
            raise SageError(f"--format {self.fmt!r}: use one of {', '.join(FORMATS)}")
        if self.attempts < 1 or self.max_searches < 0 or self.offset < 0:
            raise SageError("--attempts must be >= 1, --max-searches and --offset >= 0")
        if self.limit is not None and self.limit < 1:
            raise SageError("--limit must be >= 1")


@dataclass
class Solver:
    agent: SearchAgent
    judge: Judge
    params: EvaluateParams


def question_record(item: QAItem, attempts: list[Any]) -> dict[str, Any]:
    return {
        "qid": item.id,
        "question": item.question,
        "answers": item.answers,
        "group": item.group,
        "attempts": [asdict(a) for a in attempts],
    }


@task(
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=is_transient,
    cache_policy=NO_CACHE,
    task_run_name="question-{item.id}",
)
def solve_question(item: QAItem, solver: Solver, store: RunStore, index: int) -> dict[str, Any]:
    """K judged agent attempts at one question, appended durably to the checkpoint log."""
    p = solver.params
    base = int(hashlib.sha256(f"{p.seed}:{item.id}".encode()).hexdigest()[:6], 16) * 16
    attempts = run_attempts(
        solver.agent, solver.judge, item.question, item.answers, p.attempts, base,
        p.temperature, p.attempt_workers,
    )  # fmt: skip
    rec = question_record(item, attempts) | {"index": index}
    store.append_round(rec)
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


def attempts_frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    rows = []
    for r in records:
        for a in r["attempts"]:
            m = a.get("meter") or {}
            rows.append(
                {
                    "qid": r["qid"],
                    "group": r["group"],
                    "attempt": a["index"],
                    "answer": a.get("answer"),
                    "gold": r["answers"][0],
                    "correct": bool(a["correct"]),
                    "judge_method": (a.get("judgement") or {}).get("method"),
                    "n_searches": a["n_searches"],
                    "step_calls": a.get("step_calls", 0),
                    "parse_failures": a.get("parse_failures", 0),
                    "forced": bool(a.get("forced")),
                    "forced_right": bool(
                        a.get("forced") and (a.get("judgement") or {}).get("correct")
                    ),
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


COLS = ["questions", "accuracy", "avg_at_k", "mean_searches", "mean_searches_correct",
        "step_parse_rate", "forced_rate", "forced_right_rate", "seconds_per_attempt",
        "lm_calls_per_attempt"]  # fmt: skip


def md_table(rows: list[dict[str, Any]], cols: list[str]) -> str:
    head = "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"
    return head + "".join(
        "| " + " | ".join("" if r.get(c) is None else str(r.get(c)) for c in cols) + " |\n"
        for r in rows
    )


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
    records: dict[str, dict[str, Any]] = {}
    for r in store.load_rounds():
        records.setdefault(r["qid"], r)
    ordered = sorted(records.values(), key=lambda r: r.get("index", 0))
    df = attempts_frame(ordered)
    store.write_parquet("evaluation.parquet", df)
    store.write_jsonl("traces.jsonl", ordered)
    metrics = eval_metrics(df)
    store.write_json("eval_metrics.json", metrics)
    store.write_text("eval_report.md", eval_report(store.read_manifest(), metrics))
    return metrics


def _open_solver(params: EvaluateParams, settings: Settings) -> tuple[Solver, str]:
    agent, judge, version = open_solver(
        settings, params.collection, params.max_searches, params.attempt_workers, True
    )
    return Solver(agent, judge, params), version


@flow(name="evaluate-agent", log_prints=True, validate_parameters=False)
def evaluate_agent(
    dataset: str,
    fmt: str = "sage",
    collection: str = "corpus",
    attempts: int = 1,
    limit: int | None = None,
    offset: int = 0,
    max_searches: int = 10,
    temperature: float = 0.7,
    seed: int = 0,
    run_id: str | None = None,
    attempt_workers: int = 1,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Run the search agent K times per question and report accuracy and searches by group."""
    params = EvaluateParams(
        dataset=str(Path(dataset).resolve()), fmt=fmt, collection=collection, attempts=attempts,
        limit=limit, offset=offset, max_searches=max_searches, temperature=temperature,
        seed=seed, run_id=run_id, attempt_workers=attempt_workers,
    )  # fmt: skip
    params.validate()
    settings = load_settings(**(settings_overrides or {}))
    logger = get_run_logger()
    items = load_qa(params.dataset, params.fmt)
    items = items[params.offset : params.offset + params.limit if params.limit else None]
    run_id = params.run_id or "eval-" + dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    params.run_id = run_id
    store = RunStore(settings.runs_dir, run_id)
    solver, version = _open_solver(params, settings)
    manifest = {
        "kind": "evaluation",
        "run_id": run_id,
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "params": asdict(params) | {"limit": params.limit},
        "settings": settings.public_dict(),
        "models": {"agent": settings.agent_lm_name, "judge": settings.judge_lm_name},
        "collection_version": version,
        "questions": [it.id for it in items],
    }
    resumed = store.start(manifest, RESUME_KEYS)
    done = {r["qid"] for r in store.load_rounds()}
    todo = [(i, it) for i, it in enumerate(items) if it.id not in done]
    logger.info("evaluation %s: %d questions, %d already done", run_id, len(items), len(done))
    t0 = time.perf_counter()
    with prompt_exit():  # Ctrl-C / SIGTERM leave at once; answered questions are kept
        for i, it in todo:  # one question at a time: the agent's LM is the bottleneck
            try:
                futures.result(solve_question.submit(it, solver, store, i))
            except Exception as exc:  # a question that keeps failing is logged, not fatal
                logger.error("question %s failed: %s", it.id, exc)
    metrics = finalise_eval(store)
    key = "sage-eval-" + hashlib.sha1(run_id.encode()).hexdigest()[:10]
    create_table_artifact(
        table=[{"group": "all", **metrics["overall"]}, *metrics["by_group"]],
        key=key,
        description=f"agent evaluation {run_id} on {Path(params.dataset).name}",
    )
    create_markdown_artifact(
        markdown=(store.path / "eval_report.md").read_text(), key=f"{key}-report"
    )
    return {
        "run_id": run_id,
        "run_dir": str(store.path.resolve()),
        "resumed": resumed,
        "wall_seconds": round(time.perf_counter() - t0, 2),
        "metrics": metrics,
    }


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
