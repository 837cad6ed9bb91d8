"""The SAGE generation flow: seeds -> per-seed Prefect task (rounds checkpointed) -> artifacts."""

from __future__ import annotations

import datetime as dt
import hashlib
import importlib.metadata as md
import subprocess
import time
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import (
    create_markdown_artifact,
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from flows import dataset as ds
from flows import futures
from flows.interrupts import prompt_exit
from flows.progress import round_line, say
from flows.retrying import is_transient
from flows.run_store import RunStore
from flows.runtime import Runtime, register_runtime, runtime_for
from flows.seeds import parse_answer_types, parse_steps, plan_seeds
from modules.errors import SageError
from modules.settings import Settings, load_settings
from modules.signatures import ANSWER_SOURCES

RESUME_KEYS = (
    "collection", "steps", "attempts", "rounds", "strategy", "seed", "n", "seeds",
    "answer_types", "answer_source", "relaxed_final_round", "corpus",
)  # fmt: skip


@dataclass
class GenerateParams:
    """Everything `sage generate` takes (recorded in the manifest; resumes must match)."""

    collection: str = "corpus"
    n: int | None = None  # accepted items wanted
    seeds: int | None = None  # or: exactly this many seeds
    steps: str = "2-4"
    rounds: int = 2
    attempts: int = 4
    strategy: str = "feedback"
    seed: int = 0
    run_id: str | None = None
    concurrency: int = 1
    attempt_workers: int = 1
    budget_tokens: int | None = None
    keep_unverified: bool = False
    max_searches: int = 10
    generator_searches: int = 20
    program: str | None = None
    prefer_docs: list[str] | None = None  # seed these documents first (e.g. new ones)
    answer_types: str = "entity,date,number"  # drawn per seed; weights as 'entity:2,date:1'
    answer_source: str = "seed"  # seed: the answer is in the seed document; any: any passage
    relaxed_final_round: bool = False  # the SAGE code's last round: keep too-easy solved items
    corpus: str | None = None  # seed documents for a Search-R1 retriever (its wiki-18 JSONL)

    def planned_seeds(self) -> int:
        """How many seeds the plan holds: --seeds, or enough to find --n accepted items."""
        return self.seeds or max(4 * (self.n or 0), (self.n or 0) + 8)

    def validate(self) -> None:
        if self.strategy not in ("feedback", "resample"):
            raise SageError(f"--strategy {self.strategy!r}: use feedback or resample")
        if self.attempts < 1 or self.rounds < 0:
            raise SageError("--attempts must be >= 1 and --rounds >= 0")
        if self.concurrency < 1 or self.attempt_workers < 1:
            raise SageError("--concurrency and --attempt-workers must be >= 1")
        if (self.n is None) == (self.seeds is None):
            raise SageError("give exactly one of --n (accepted items wanted) or --seeds")
        if (self.n or 1) < 1 or (self.seeds or 1) < 1:
            raise SageError("--n/--seeds must be >= 1")
        parse_steps(self.steps)
        parse_answer_types(self.answer_types)
        if self.answer_source not in ANSWER_SOURCES:
            raise SageError(f"--answer-source {self.answer_source!r}: use seed or any")


def _git_commit() -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def _versions() -> dict[str, str]:
    names = ["prefect", "dspy", "qdrant-client", "fastembed", "polars", "xllamacpp"]
    out = {}
    for n in names:
        try:
            out[n] = md.version(n)
        except md.PackageNotFoundError:
            out[n] = "missing"
    return out


def _new_run_id() -> str:
    return dt.datetime.now().strftime("%Y%m%d-%H%M%S")


def build_manifest(
    params: GenerateParams,
    settings: Settings,
    run_id: str,
    plan: list[dict],
    collection_version: str | None,
    program_hash: str,
) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "params": asdict(params) | {"run_id": run_id},
        "settings": settings.public_dict(),
        "models": {
            "generator": settings.lm,
            "agent": settings.agent_lm_name,
            "judge": settings.judge_lm_name,
        },
        "collection_version": collection_version,
        "program_hash": program_hash,
        "packages": _versions(),
        "git_commit": _git_commit(),
        "seeds": plan,
    }


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
        self.add(store.iter_rounds())

    def rounds(self, seed_id: str) -> list[dict[str, Any]]:
        return list(self.done.get(seed_id, []))

    def add(self, records: Iterable[dict[str, Any]]) -> None:
        for rec in records:
            rounds = self.done.setdefault(rec["seed_id"], [])
            if all(int(r["round"]) != int(rec["round"]) for r in rounds):  # first one wins
                rounds.append(ds.summary_of(rec))
                rounds.sort(key=lambda r: int(r["round"]))
                self.spent += int(rec.get("tokens") or 0)

    def reload(self, seed_id: str) -> None:
        """Take a seed's rounds from the checkpoint log (after its task failed)."""
        self.add(self.store.seed_rounds(seed_id))

    @property
    def exhausted(self) -> bool:
        return self.limit is not None and self.spent >= self.limit

    def accepted(self) -> int:
        return ds.count_accepted(self.done)


@dataclass(frozen=True)
class SeedJob:
    """What a seed task needs besides its seed, as plain data: it runs in any process
    (a thread of the flow, a Dask worker) and opens its services from a per-process cache."""

    runs_dir: str
    run_id: str
    params: dict[str, Any]
    settings_overrides: dict[str, Any]  # secrets come from each process's environment
    collection: str  # the exact collection version (or retriever) the run searches


@task(
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=is_transient,
    cache_policy=NO_CACHE,
    task_run_name="seed-{seed[seed_id]}",
)
def process_seed(seed: dict[str, Any], job: SeedJob, resume: bool) -> list[dict[str, Any]]:
    """Run (or, with ``resume``, finish) one seed's SAGE rounds, checkpointing every round
    as it ends; returns the new rounds."""
    from prefect.runtime import task_run

    store = RunStore(Path(job.runs_dir), job.run_id)
    sid = seed["seed_id"]
    # a resumed seed, or a retry (maybe in another process): continue after its saved rounds
    done = store.seed_rounds(sid) if resume or (task_run.run_count or 1) > 1 else []
    new: list[dict[str, Any]] = []

    def on_round(record: dict[str, Any]) -> None:
        rec = {"seed_id": sid, "run_id": job.run_id, **record}
        store.append_round(rec)  # durable first
        new.append(rec)
        say(round_line(rec))

    runtime_for(job).run_seed(seed, done, on_round)
    return new


@flow(name="generate-dataset", log_prints=True, validate_parameters=False)
def generate_dataset(
    collection: str = "corpus",
    n: int | None = None,
    seeds: int | None = None,
    steps: str = "2-4",
    rounds: int = 2,
    attempts: int = 4,
    strategy: str = "feedback",
    seed: int = 0,
    run_id: str | None = None,
    concurrency: int = 1,
    attempt_workers: int = 1,
    budget_tokens: int | None = None,
    keep_unverified: bool = False,
    max_searches: int = 10,
    generator_searches: int = 20,
    program: str | None = None,
    prefer_docs: list[str] | None = None,
    answer_types: str = "entity,date,number",
    answer_source: str = "seed",
    relaxed_final_round: bool = False,
    corpus: str | None = None,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """SAGE generation with per-round checkpoints; re-running a run id resumes it.

    Settings come from SAGE_* / sage.toml, with ``settings_overrides`` (e.g. lm, qdrant) on top.
    """
    params = GenerateParams(
        collection=collection,
        n=n,
        seeds=seeds,
        steps=steps,
        rounds=rounds,
        attempts=attempts,
        strategy=strategy,
        seed=seed,
        run_id=run_id,
        concurrency=concurrency,
        attempt_workers=attempt_workers,
        budget_tokens=budget_tokens,
        keep_unverified=keep_unverified,
        max_searches=max_searches,
        generator_searches=generator_searches,
        program=program,
        prefer_docs=prefer_docs,
        answer_types=answer_types,
        answer_source=answer_source,
        relaxed_final_round=relaxed_final_round,
        corpus=corpus,
    )
    settings = load_settings(**(settings_overrides or {}))
    logger = get_run_logger()
    params.validate()
    if bool(settings.searchr1_url) != bool(params.corpus):
        raise SageError(
            "a Search-R1 retriever needs --corpus (its JSONL, for seed documents)"
            if settings.searchr1_url
            else "--corpus is for a Search-R1 retriever (setting retriever = URL)"
        )
    run_id = params.run_id or _new_run_id()
    params.run_id = run_id
    store = RunStore(settings.runs_dir, run_id)
    runtime = Runtime.open(params, settings)
    job = SeedJob(str(settings.runs_dir), run_id, asdict(params),
                  dict(settings_overrides or {}), runtime.collection_version)  # fmt: skip
    register_runtime(job, runtime)  # threads of this process use it; other processes open theirs
    steps = parse_steps(params.steps)
    plan = plan_seeds(
        runtime.doc_ids(), steps, params.planned_seeds(), params.seed, params.prefer_docs,
        parse_answer_types(params.answer_types),
    )  # fmt: skip
    manifest = build_manifest(
        params, settings, run_id, plan, runtime.collection_version, runtime.program_hash
    )
    resumed = store.start(manifest, RESUME_KEYS)
    plan = store.read_manifest()["seeds"]
    ledger = Ledger(store, params.budget_tokens)
    say(
        f"run {run_id}: {len(plan)} seeds planned, {len(ledger.done)} with checkpoints"
        f"{' (resumed)' if resumed else ''}; K={params.attempts} attempts, "
        f"up to {params.rounds} revision round(s) per seed"
    )
    progress = create_progress_artifact(progress=0.0, description=f"sage run {run_id}")
    t0 = time.perf_counter()
    limit = max(1, params.concurrency)
    pending = [s for s in plan if not ds.seed_finished(ledger.rounds(s["seed_id"]), params)]
    finished = len(plan) - len(pending)
    stop_reason = "plan exhausted"
    inflight: dict[Any, dict[str, Any]] = {}
    with prompt_exit():  # Ctrl-C / SIGTERM leave at once; rounds are checkpointed
        while pending or inflight:
            # keep `concurrency` seeds in flight; stop submitting once the goal is met
            while pending and len(inflight) < limit:
                if params.n is not None and ledger.accepted() >= params.n:
                    stop_reason, pending = f"{params.n} accepted items reached", []
                elif ledger.exhausted:
                    stop_reason, pending = f"token budget {params.budget_tokens} spent", []
                else:
                    s = pending.pop(0)
                    seed = {**s, "document": runtime.document(s["doc_id"])}
                    resume = bool(ledger.rounds(s["seed_id"]))
                    inflight[process_seed.submit(seed, job, resume)] = s
            if not inflight:
                break
            fut = futures.first_done(list(inflight))
            s = inflight.pop(fut)
            try:
                ledger.add(futures.result(fut))
            except Exception as exc:  # a seed that keeps failing is logged, not fatal
                logger.error("seed %s failed: %s", s["seed_id"], exc)
                ledger.reload(s["seed_id"])  # the rounds it did finish
            finished += 1
            update_progress_artifact(progress, progress=100.0 * finished / max(1, len(plan)))
    summary = ds.finalise(store, plan, params)
    summary |= {
        "run_id": run_id,
        "run_dir": str(store.path.resolve()),
        "resumed": resumed,
        "stop_reason": stop_reason,
        "wall_seconds": round(time.perf_counter() - t0, 2),
    }
    update_progress_artifact(progress, progress=100.0)
    _publish_artifacts(summary, store)
    return summary


def _publish_artifacts(summary: dict[str, Any], store: RunStore) -> None:
    key = "sage-" + hashlib.sha1(store.run_id.encode()).hexdigest()[:10]
    create_table_artifact(
        table=summary["metrics"]["per_round"],
        key=f"{key}-rounds",
        description=f"per-round metrics of run {store.run_id}",
    )
    create_markdown_artifact(
        markdown=(store.path / "report.md").read_text(),
        key=f"{key}-report",
        description=f"report of run {store.run_id}",
    )
