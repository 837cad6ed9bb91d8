"""The SAGE generation flow: seeds -> per-seed Prefect task (rounds checkpointed) -> artifacts."""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Literal

from dspy.utils.exceptions import LMError
from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from pydantic import field_validator, model_validator

from flows.engine import futures
from flows.engine.artifacts import artifact_key
from flows.engine.concurrency import AdaptiveWindow, FixedWindow
from flows.engine.interrupts import prompt_exit
from flows.engine.params import (
    Attempts,
    AttemptWorkers,
    Collection,
    FlowParams,
    GeneratorSearches,
    MaxSearches,
    Rounds,
    RunId,
    Steps,
    hidden,
    option,
)
from flows.engine.progress import generate_tracker, round_done, round_line, say
from flows.engine.retrying import retried
from flows.reports.run_reports import write_run_reports
from flows.runs import finalise as ds
from flows.runs.manifest import endpoints_of, git_commit, run_manifest, versions
from flows.runs.records import RoundRecord
from flows.runs.seeds import parse_answer_types, parse_steps, plan_seeds
from flows.runs.store import RunStore, new_run_id, rounds_in_order
from flows.seed_runtime import Runtime, SeedJob, register_runtime, runtime_for
from modules.config import SageConfig
from modules.errors import SageError
from modules.llm.lm import lm_failure
from modules.settings import Settings, load_settings


class GenerateParams(FlowParams):
    """Everything `sage generate` takes (recorded in the manifest; resumes must match)."""

    RESUME_KEYS: ClassVar[tuple[str, ...]] = (
        "collection",
        "steps",
        "attempts",
        "rounds",
        "strategy",
        "seed",
        "n",
        "seeds",
        "answer_types",
        "answer_source",
        "relaxed_final_round",
        "corpus",
    )

    collection: Collection = option(None, "Collection to seed from and search [SAGE_COLLECTION].")
    n: int | None = option(None, "Accepted items wanted.", flag="--n", ge=1)
    seeds: int | None = option(None, "Or: process exactly this many seeds.", ge=1)
    steps: Steps = option("2-4", "Target searches S: N, LO-HI or S:COUNT,...")
    rounds: Rounds = option(2, "Feedback rounds R after round 0.")
    attempts: Attempts = option(4, "Search-agent attempts K per round.")
    strategy: Literal["feedback", "resample"] = option("feedback", "feedback | resample.")
    seed: int = option(0, "Random seed for the seed plan.")
    run_id: RunId = None
    concurrency: str = option(
        "auto", "Seeds at once: N, or auto (AIMD against a served model; 1 on the local one)."
    )
    max_concurrency: int | None = option(
        None, "Most seeds at once under auto [SAGE_MAX_CONCURRENCY].", ge=1
    )
    attempt_workers: AttemptWorkers = option(1, "K attempts run at once (a served LLM, slots).")
    budget_tokens: int | None = option(None, "Stop cleanly after this many tokens.", ge=1)
    keep_unverified: bool = option(False, "Keep never-verified pairs (never exported).")
    max_searches: MaxSearches = 10
    generator_searches: GeneratorSearches = 20
    program: str | None = option(None, "Optimized program file to load.")
    answer_types: str = option(
        "entity,date,number", "Answer types drawn per seed: entity,date,number or entity:2,date:1."
    )
    answer_source: Literal["seed", "any"] = option(
        "seed", "seed: the answer is stated in the seed document; any: in any passage found."
    )
    relaxed_final_round: bool = option(
        False, "Also keep last-round items solved in < S searches (>= 2), marked relaxed."
    )
    corpus: str | None = option(
        None, "With a Search-R1 retriever: its corpus JSONL, to draw seeds from."
    )
    prefer_docs: list[str] | None = hidden(None)  # seed these documents first (new ones)

    @field_validator("concurrency", mode="before")
    @classmethod
    def _concurrency(cls, v: Any) -> str:
        if str(v) == "auto" or (str(v).isdigit() and int(v) >= 1):
            return str(v)
        raise ValueError(f"{v!r}: use a number >= 1 or auto")

    def window(self, settings: Settings) -> AdaptiveWindow | FixedWindow:
        """Seeds in flight: N, or under auto an AIMD window against a served generator or
        agent (with Dask workers, whose calls it cannot see: the maximum), and 1 against the
        local model (its slots are fixed)."""
        if self.concurrency != "auto":
            return FixedWindow(int(self.concurrency))
        served = any(settings.endpoint(role)[0] for role in ("generator", "agent"))
        if not served:
            return FixedWindow(1)
        widest = self.max_concurrency or settings.max_concurrency
        if settings.task_runner != "thread":  # the LM calls (the signals) are in other processes
            return FixedWindow(widest)
        return AdaptiveWindow(widest)

    def widest(self, settings: Settings) -> int:
        """The most seeds ever in flight (threads and local slots are sized for it)."""
        return self.window(settings).maximum

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: str) -> str:
        parse_steps(v)
        return v

    @field_validator("answer_types")
    @classmethod
    def _answer_types(cls, v: str) -> str:
        parse_answer_types(v)
        return v

    @model_validator(mode="after")
    def _n_or_seeds(self) -> GenerateParams:
        if (self.n is None) == (self.seeds is None):
            raise SageError("give exactly one of --n (accepted items wanted) or --seeds")
        return self

    @classmethod
    def of(cls, source: FlowParams, **more: Any) -> GenerateParams:
        """Generate's parameters from the flow that runs it (refresh, demo): the options it
        shares (``source.SHARES``), with ``more`` on top."""
        return cls(**{k: getattr(source, k) for k in source.SHARES} | more)

    def planned_seeds(self) -> int:
        """How many seeds the plan holds: --seeds, or enough to find --n accepted items."""
        return self.seeds or max(4 * (self.n or 0), (self.n or 0) + 8)


def build_manifest(
    params: GenerateParams,
    settings: Settings,
    plan: list[dict],
    collection_version: str | None,
    program_hash: str,
) -> dict[str, Any]:
    """A generation run's manifest (an experiment's arms have one too)."""
    return run_manifest(
        None,
        params.run_id,
        params,
        settings,
        endpoints=endpoints_of(settings),
        collection_version=collection_version,
        program_hash=program_hash,
        packages=versions(),
        git_commit=git_commit(),
        seeds=plan,
    )


class Ledger:
    """The flow's view of the run: each seed's checkpointed rounds (their summaries, not
    their traces: memory stays flat however long the run) and the tokens spent.

    Only the flow reads and updates it (from what seed tasks return), so seed tasks take
    plain data and can run in any process.
    """

    def __init__(self, store: RunStore, limit: int | None):
        self.store = store
        self.limit = limit
        self.done: dict[str, list[dict[str, Any]]] = {}
        self.spent = 0
        self.add(store.iter_records())

    def rounds(self, seed_id: str) -> list[dict[str, Any]]:
        return list(self.done.get(seed_id, []))

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        for rec in records:
            rounds = self.done.get(rec["seed_id"], [])
            merged = rounds_in_order([*rounds, ds.summary_of(rec)])
            if len(merged) > len(rounds):  # a new round, not a re-appended one
                self.spent += int(rec.get("tokens") or 0)
            self.done[rec["seed_id"]] = merged

    def reload(self, seed_id: str) -> None:
        """Take a seed's rounds from the checkpoint log (after its task failed)."""
        self.add(self.store.seed_rounds(seed_id))

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def accepted(self) -> int:
        return ds.count_accepted(self.done)


def _worker() -> dict[str, Any]:
    """The process that ran a round (a thread of the flow or a Dask worker), for its record."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


@task(
    **retried(),
    task_run_name="seed-{seed[seed_id]}",
)
def process_seed(seed: dict[str, Any], job: SeedJob, resume: bool) -> list[dict[str, Any]]:
    """Run (or, with ``resume``, finish) one seed's SAGE rounds, checkpointing every round
    as it ends; returns the new rounds without their traces."""
    store = RunStore(Path(job.runs_dir), job.run_id)
    sid = seed["seed_id"]
    # a resumed seed, a retry or a rerun (maybe in another process): continue after its rounds
    done = store.rounds_of(sid) if resume or not store.first_start(sid) else []
    new: list[dict[str, Any]] = []
    logger = get_run_logger()

    def on_round(record: dict[str, Any]) -> None:
        rec = {"seed_id": sid, "run_id": job.run_id, **_worker(), **record}
        typed = RoundRecord.from_dict(rec)
        store.append_round(typed)  # durable first
        new.append(typed.summary())  # the flow keeps summaries; traces stay on disk
        line = round_line(rec)
        say(line)
        logger.info(line)  # the task run's log says what each round did
        round_done(rec)  # the run's progress line, when the flow runs in this process

    try:
        runtime_for(job).run_seed(seed, done, on_round)
    except LMError as exc:  # a 4xx, or still failing after the client's retries
        raise SageError(lm_failure(exc) or f"{type(exc).__name__}: {exc}") from None
    return new


@flow(name="generate-dataset", log_prints=True)
def generate_dataset(
    params: GenerateParams, settings_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """SAGE generation with per-round checkpoints; re-running a run id resumes it.

    Settings come from SAGE_* / sage.toml, with ``settings_overrides`` (e.g. lm, qdrant) on top.
    """
    settings = load_settings(**(settings_overrides or {}))
    check_retriever(params, settings)
    params = params.model_copy(
        update={
            "run_id": params.run_id or new_run_id(),
            "collection": params.collection or settings.collection,
        }
    )
    config = params.sage_config(settings)
    store = RunStore(settings.runs_dir, params.run_id)
    runtime = open_runtime(params, settings, config, dict(settings_overrides or {}))
    job = runtime.job
    plan, resumed = start_run(store, params, settings, runtime)
    ledger = Ledger(store, params.budget_tokens)
    say(
        f"run {params.run_id}: {len(plan)} seeds planned, {len(ledger.done)} with checkpoints"
        f"{' (resumed)' if resumed else ''}; K={params.attempts} attempts, "
        f"up to {params.rounds} revision round(s) per seed"
    )
    t0 = time.perf_counter()
    window = params.window(settings)
    stop_reason = run_seeds(plan, params, runtime, job, ledger, window)
    finalised = ds.finalise(store, plan, params)
    write_run_reports(store.path)
    summary = finalised | {
        "concurrency": window.record(),
        "run_id": params.run_id,
        "run_dir": str(store.path.resolve()),
        "resumed": resumed,
        "stop_reason": stop_reason,
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }
    (store.path / "concurrency.json").write_text(json.dumps(summary["concurrency"], indent=1))
    _publish_artifacts(summary, store)
    return summary


def open_runtime(
    params: GenerateParams, settings: Settings, config: SageConfig, overrides: dict[str, Any]
) -> Runtime:
    """The flow's Runtime with the seed documents, registered for this process's seed tasks
    under a job naming the exact collection version (other processes open their own)."""
    job = SeedJob(
        str(settings.runs_dir),
        str(params.run_id),
        config,
        overrides,
        str(params.collection),
        params.program,
        params.widest(settings) * params.attempt_workers,
        params.seed,
    )
    runtime = Runtime.open(job, settings)
    runtime.job = replace(job, collection=runtime.collection_version)
    runtime.load_seed_documents(params.corpus, params.planned_seeds(), params.seed)
    register_runtime(runtime.job, runtime)
    return runtime


def check_retriever(params: GenerateParams, settings: Settings) -> None:
    """A Search-R1 retriever needs a corpus file for seeds; the Qdrant index has its own."""
    if bool(settings.searchr1_url) != bool(params.corpus):
        raise SageError(
            "a Search-R1 retriever needs --corpus (its JSONL, for seed documents)"
            if settings.searchr1_url
            else "--corpus is for a Search-R1 retriever (setting retriever = URL)"
        )


def start_run(
    store: RunStore, params: GenerateParams, settings: Settings, runtime: Runtime
) -> tuple[list[dict[str, Any]], bool]:
    """Plan the seeds and write the manifest, or resume: (the run's plan, resumed?)."""
    plan = plan_seeds(
        runtime.doc_ids(),
        parse_steps(params.steps),
        params.planned_seeds(),
        params.seed,
        params.prefer_docs,
        parse_answer_types(params.answer_types),
    )
    manifest = build_manifest(
        params, settings, plan, runtime.collection_version, runtime.program_hash
    )
    manifest["config"] = runtime.job.config.record()
    resumed = store.start(manifest, params.RESUME_KEYS)
    return store.read_manifest()["seeds"], resumed


def run_seeds(
    plan: list[dict[str, Any]],
    params: GenerateParams,
    runtime: Runtime,
    job: SeedJob,
    ledger: Ledger,
    window: AdaptiveWindow | FixedWindow | None = None,
) -> str:
    """Keep ``window.level`` unfinished seeds in flight (a sliding window; ``--concurrency
    auto`` moves the level, flows/engine/concurrency.py) until the plan, the wanted items or
    the token budget runs out; returns why it stopped."""
    window = window or FixedWindow(int(params.concurrency))
    window.on_change = lambda old, new, why: say(f"concurrency {old} -> {new} ({why})")
    logger = get_run_logger()
    key = artifact_key("sage", job.run_id, "progress")
    progress = create_progress_artifact(0.0, key=key, description=f"sage run {job.run_id}")
    pending = [s for s in plan if not ds.seed_finished(ledger.rounds(s["seed_id"]), params)]
    finished, stop = len(plan) - len(pending), {"reason": "plan exhausted"}
    tracker = generate_tracker(str(job.run_id), len(plan), params.n, finished, ledger.done)

    def seeds() -> Iterator[dict[str, Any]]:  # asked for one when a seed may start
        for s in pending:
            if params.n is not None and ledger.accepted() >= params.n:
                stop["reason"] = f"{params.n} accepted items reached"
                return
            if ledger.exhausted:
                stop["reason"] = f"token budget {params.budget_tokens} spent"
                return
            yield s

    def submit(s: dict[str, Any]) -> Any:
        seed = {**s, "document": runtime.document(s["doc_id"])}
        return process_seed.submit(seed, job, bool(ledger.rounds(s["seed_id"])))

    def seed_done(s: dict[str, Any], fut: Any) -> None:
        nonlocal finished
        try:
            ledger.add(futures.result(fut))
        except Exception as exc:  # a seed that keeps failing is logged, not fatal
            logger.error("seed %s failed: %s", s["seed_id"], exc)
            say(f"seed {s['seed_id']} failed: {exc}")
            ledger.reload(s["seed_id"])  # the rounds it did finish
        finished += 1
        tracker.seed_done(ledger.rounds(s["seed_id"]), ledger.accepted())
        update_progress_artifact(progress, progress=100.0 * finished / max(1, len(plan)))

    with prompt_exit(), tracker, window:  # Ctrl-C / SIGTERM leave at once (checkpointed)
        futures.in_window(seeds(), submit, lambda: window.level, seed_done)
    update_progress_artifact(progress, progress=100.0)
    return stop["reason"]


def _publish_artifacts(summary: dict[str, Any], store: RunStore) -> None:
    create_table_artifact(
        table=summary["metrics"]["per_round"],
        key=artifact_key("sage", store.run_id, "rounds"),
        description=f"per-round metrics of run {store.run_id}",
    )
    create_markdown_artifact(
        markdown=(store.path / "report.md").read_text(),
        key=artifact_key("sage", store.run_id, "report"),
        description=f"report of run {store.run_id}",
    )
