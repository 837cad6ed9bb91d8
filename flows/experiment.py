"""`sage experiment`: the SAGE paper's intrinsic table on your model and corpus, paired.

runs/<id>/experiment/ holds one run folder per arm (``feedback``, ``resample``,
``no-target``, each a complete generate run: checkpoints, candidates, dataset, report) and
``round0``, the shared first round: every seed's round 0 runs once (the generate flow's
seed runtime, stopped after its first round) and its checkpoint line is copied, byte for
byte, into the feedback and resample arms, which then continue it with the generate flow's
own seed tasks (``run_seeds`` / ``process_seed``, resuming from the checkpointed round). So
each seed is a paired observation: the same question, the same attempts, then revision
against resampling. Every round of every arm is checkpointed; the same --run-id resumes.
"""

from __future__ import annotations

import contextlib
import os
import socket
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar, Literal

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from pydantic import Field, field_validator

from flows.engine import futures
from flows.engine import runtime as engine
from flows.engine.artifacts import artifact_key
from flows.engine.interrupts import prompt_exit
from flows.engine.params import (
    Attempts,
    AttemptWorkers,
    Collection,
    FlowParams,
    GeneratorSearches,
    MaxSearches,
    RunId,
    Steps,
    option,
)
from flows.engine.progress import RunTracker, Snapshot, round_done, round_line, say
from flows.engine.retrying import retried
from flows.generate import GenerateParams, Ledger, build_manifest, check_retriever, run_seeds
from flows.generate import open_runtime as open_generate_runtime
from flows.reports.experiment import write_outputs
from flows.reports.experiment_table import NO_TARGET, build_table
from flows.reports.run_reports import write_run_reports
from flows.runs import finalise as ds
from flows.runs.manifest import run_manifest
from flows.runs.seeds import parse_answer_types, parse_steps, plan_seeds
from flows.runs.store import LATEST, RunStore, config_conflict, new_run_id
from flows.seed_runtime import Runtime, SeedJob, register_runtime, runtime_for
from modules.config import LM_ROLES
from modules.errors import SageError
from modules.programs.program_file import load_program
from modules.programs.sage import Sage, SageLMs
from modules.settings import Settings, load_settings

ARMS = (NO_TARGET, "feedback", "resample")
ROUND0 = "round0"  # the shared round 0's run folder
SHARED = "shared"  # the strategy recorded on a shared round 0
EXPERIMENT = "experiment"


def parse_arms(spec: str) -> tuple[str, ...]:
    """'no-target,feedback' -> ('no-target', 'feedback'); an unknown arm is an error."""
    arms = tuple(dict.fromkeys(a.strip() for a in spec.split(",") if a.strip()))
    bad = [a for a in arms if a not in ARMS]
    if bad or not arms:
        raise SageError(
            f"--arms {spec!r}: unknown arm {bad[0] if bad else ''!r} (use {', '.join(ARMS)})"
        )
    return arms


class ExperimentParams(FlowParams):
    """Everything `sage experiment` takes (recorded; a resume must keep RESUME_KEYS)."""

    RESUME_KEYS: ClassVar[tuple[str, ...]] = (
        "collection",
        "seeds",
        "steps",
        "rounds",
        "attempts",
        "arms",
        "seed",
        "max_searches",
        "generator_searches",
        "program",
        "answer_types",
        "answer_source",
        "corpus",
    )

    SHARES: ClassVar[tuple[str, ...]] = (
        "collection",
        "seeds",
        "attempts",
        "seed",
        "concurrency",
        "attempt_workers",
        "max_searches",
        "generator_searches",
        "program",
        "answer_types",
        "answer_source",
        "corpus",
    )

    collection: Collection = option(None, "Collection to seed from and search [SAGE_COLLECTION].")
    seeds: int = Field(..., description="Seeds: paired observations per arm.", ge=1)
    steps: Steps = option(
        "2-5", "Target searches S of the feedback/resample arms: N, LO-HI, S:N,..."
    )
    rounds: int = option(3, "Rounds R after round 0 (the table's +1 ... +R).", ge=1)
    attempts: Attempts = option(4, "Search-agent attempts K per round.")
    arms: str = option(",".join(ARMS), "Arms: no-target,feedback,resample (any of them).")
    seed: int = option(0, "Random seed: the seed plan and the bootstrap.")
    run_id: RunId = None
    bootstrap: int = option(2000, "Bootstrap resamples for the 95 % intervals.", ge=100)
    concurrency: int = option(1, "Seeds processed at once.", ge=1)
    attempt_workers: AttemptWorkers = option(1, "K attempts run at once (a served LLM, slots).")
    max_searches: MaxSearches = 10
    generator_searches: GeneratorSearches = 20
    program: str | None = option(None, "Optimized program file to load.")
    answer_types: str = option("entity,date,number", "Answer types drawn per seed.")
    answer_source: Literal["seed", "any"] = option("seed", "seed | any: where the answer is.")
    corpus: str | None = option(None, "With a Search-R1 retriever: its corpus JSONL.")

    @field_validator("arms")
    @classmethod
    def _arms(cls, v: str) -> str:
        return ",".join(parse_arms(v))

    @field_validator("steps")
    @classmethod
    def _steps(cls, v: str) -> str:
        if None in parse_steps(v):
            raise SageError(
                "--steps any: the feedback and resample arms need a target S "
                "(the no-target arm already runs without one)"
            )
        return v

    def arm_list(self) -> tuple[str, ...]:
        return parse_arms(self.arms)

    def arm_params(self, arm: str) -> GenerateParams:
        """The generate parameters of one arm (or of the shared round 0)."""
        no_s = arm == NO_TARGET
        return GenerateParams.of(
            self,
            steps="any" if no_s else self.steps,
            rounds=0 if no_s else self.rounds,
            strategy=arm if arm in ("feedback", "resample") else "feedback",
            run_id=arm,
        )


class _RoundZeroDone(Exception):
    """Raised once the shared round 0 is checkpointed: the arms continue it."""


@task(**retried(), task_run_name="round0-{seed[seed_id]}")
def shared_round_zero(seed: dict[str, Any], job: SeedJob) -> bool:
    """Run one seed's round 0 with the SAGE program (as the generate flow's seed task does)
    and checkpoint it; False when it was already checkpointed."""
    store = RunStore(Path(job.runs_dir), job.run_id)
    sid = seed["seed_id"]
    if store.seed_rounds(sid):
        return False

    def on_round(record: dict[str, Any]) -> None:
        rec = {
            "seed_id": sid,
            "run_id": job.run_id,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            **record,
            "strategy": SHARED,
        }
        store.append_record(rec)
        say(round_line(rec))
        round_done(rec)  # the round-0 progress line's cost
        raise _RoundZeroDone

    with contextlib.suppress(_RoundZeroDone):
        runtime_for(job).run_seed(seed, [], on_round)
    return True


def run_round_zero(plan: list[dict], runtime: Runtime, job: SeedJob, concurrency: int) -> None:
    """Every planned seed's shared round 0 (``concurrency`` at once), skipping finished ones."""
    logger = get_run_logger()
    done = {r["seed_id"] for r in RunStore(Path(job.runs_dir), job.run_id).iter_records()}
    pending = [s for s in plan if s["seed_id"] not in done]
    tracker = RunTracker(Snapshot(str(job.run_id), len(plan) - len(pending), len(plan)))

    def submit(s: dict[str, Any]) -> Any:
        return shared_round_zero.submit({**s, "document": runtime.document(s["doc_id"])}, job)

    def finished(s: dict[str, Any], fut: Any) -> None:
        try:
            futures.result(fut)
        except Exception as exc:  # a seed that keeps failing is logged, not fatal
            logger.error("seed %s round 0 failed: %s", s["seed_id"], exc)
        tracker.finished()

    with prompt_exit(), tracker:
        futures.in_window(pending, submit, concurrency, finished)


def copy_round_zero(root: Path, arm: str) -> int:
    """Append each seed's shared round 0 to the arm's checkpoints (the same JSON line) when
    the arm does not have it yet; returns how many were copied."""
    shared, target = RunStore(root, ROUND0), RunStore(root, arm)
    have = {r["seed_id"] for r in target.iter_records() if int(r["round"]) == 0}
    copied = 0
    for rec in shared.iter_records():
        if rec["seed_id"] not in have:
            target.append_record(rec)
            have.add(rec["seed_id"])
            copied += 1
    return copied


def arm_runtime(
    base: Runtime, settings: Settings, params: GenerateParams, runs_dir: Path
) -> Runtime:
    """The seed runtime of one arm: the arm's configuration (strategy, rounds) on the base
    runtime's retriever and seed documents, with each role's LM from ``role_lm``; registered
    for this process's seed tasks (other processes open their own from the job)."""
    config = params.sage_config(settings)
    job = replace(base.job, runs_dir=str(runs_dir), run_id=str(params.run_id), config=config)
    retriever = base.program.generator.retriever
    lms = SageLMs(*(engine.role_lm(settings, role, job.in_flight) for role in LM_ROLES))
    program = Sage(retriever, lms, config)
    if job.program:
        load_program(program, Path(job.program))
    runtime = Runtime(job, program, base.collection_version, base.docs, base.program_hash)
    register_runtime(job, runtime)
    return runtime


def _check_resume(root: Path, run_id: str, manifest: dict[str, Any]) -> bool:
    """Refuse to resume an experiment whose recorded settings differ; True = resuming."""
    store = RunStore(root.parent, EXPERIMENT)
    if not store.exists():
        return False
    old = store.read_manifest()
    for key in ExperimentParams.RESUME_KEYS:
        was, now = old["params"].get(key), manifest["params"].get(key)
        if was != now:
            raise SageError(
                f"experiment {run_id!r} exists with {key}={was!r}, not {now!r}: "
                "use another --run-id to change it"
            )
    config_conflict(run_id, old.get("config"), manifest.get("config"))
    return True


def start_experiment(
    root: Path, params: ExperimentParams, settings: Settings, runtime: Runtime
) -> tuple[list[dict[str, Any]], bool]:
    """Plan the seeds (as the generate flow does) and write the experiment's manifest, or
    check a resumed one: (the plan, resumed?)."""
    plan = plan_seeds(
        runtime.doc_ids(),
        parse_steps(params.steps),
        params.seeds,
        params.seed,
        None,
        parse_answer_types(params.answer_types),
    )
    manifest = run_manifest(
        EXPERIMENT,
        params.run_id,
        params,
        settings,
        collection_version=runtime.collection_version,
        config=runtime.job.config.record(),
        seeds=plan,
    )
    resumed = _check_resume(root, str(params.run_id), manifest)
    store = RunStore(root.parent, EXPERIMENT)
    store.start(manifest, ExperimentParams.RESUME_KEYS)
    return store.read_manifest()["seeds"], resumed


def run_arm(
    arm: str,
    plan: list[dict[str, Any]],
    base: Runtime,
    settings: Settings,
    params: ExperimentParams,
    root: Path,
) -> pl.DataFrame:
    """One arm to the end with the generate flow's seed tasks: the shared round 0 copied in
    first (feedback, resample), finished seeds skipped; returns the arm's candidates."""
    gp = params.arm_params(arm)
    arm_plan = [{**s, "target_steps": None} for s in plan] if arm == NO_TARGET else plan
    runtime = arm_runtime(base, settings, gp, root)
    store = RunStore(root, arm)
    manifest = build_manifest(gp, settings, arm_plan, base.collection_version, base.program_hash)
    manifest["config"] = runtime.job.config.record()
    store.start(manifest, GenerateParams.RESUME_KEYS)
    if arm != NO_TARGET:
        copy_round_zero(root, arm)
    ledger = Ledger(store, None)
    say(f"arm {arm}: {len(arm_plan)} seeds, {len(ledger.done)} with checkpoints")
    run_seeds(arm_plan, gp, runtime, runtime.job, ledger)
    ds.finalise(store, arm_plan, gp)
    write_run_reports(store.path)
    (root / LATEST).unlink(missing_ok=True)  # finalise points <runs>/latest at its run
    return pl.read_parquet(store.path / "candidates.parquet")


@flow(name="sage-experiment", log_prints=True)
def run_experiment(
    params: ExperimentParams, settings_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The paired ablation: the shared round 0, then each arm with the generate flow's seed
    tasks, then the table. Re-running a run id resumes every arm where it stopped."""
    overrides = dict(settings_overrides or {})
    settings = load_settings(**overrides)
    params = params.model_copy(
        update={
            "run_id": params.run_id or new_run_id(),
            "collection": params.collection or settings.collection,
        }
    )
    base_params = params.arm_params(ROUND0)
    check_retriever(base_params, settings)
    root = Path(settings.runs_dir) / str(params.run_id) / EXPERIMENT
    base = open_generate_runtime(
        base_params, settings, base_params.sage_config(settings), overrides
    )
    base.job = replace(base.job, runs_dir=str(root))
    register_runtime(base.job, base)
    plan, resumed = start_experiment(root, params, settings, base)
    arms = params.arm_list()
    say(
        f"experiment {params.run_id}: {len(plan)} seeds, arms {', '.join(arms)}; "
        f"K={params.attempts}, R={params.rounds}{' (resumed)' if resumed else ''}"
    )
    wall: dict[str, float] = {}
    t0 = time.perf_counter()
    if {"feedback", "resample"} & set(arms):
        RunStore(root, ROUND0).path.mkdir(parents=True, exist_ok=True)
        run_round_zero(plan, base, base.job, params.concurrency)
        wall[ROUND0] = round(time.perf_counter() - t0, 2)
    frames = {}
    for arm in arms:
        t = time.perf_counter()
        frames[arm] = run_arm(arm, plan, base, settings, params, root)
        wall[arm] = round(time.perf_counter() - t, 2)
    return finish(
        root, params, frames, resumed, wall | {"total": round(time.perf_counter() - t0, 2)}
    )


def finish(
    root: Path,
    params: ExperimentParams,
    frames: dict[str, pl.DataFrame],
    resumed: bool,
    wall: dict[str, float],
) -> dict[str, Any]:
    """The table from every arm's candidates, written and published; the summary."""
    result = build_table(frames, params.rounds, params.seed, params.bootstrap)
    manifest = RunStore(root.parent, EXPERIMENT).read_manifest()
    write_outputs(root, manifest, result)
    for w in result["warnings"]:
        say(f"warning: {w}")
    _publish(root, str(params.run_id), result)
    calls = {
        ROUND0: sum(int(r.get("lm_calls") or 0) for r in RunStore(root, ROUND0).iter_records())
    }
    for arm, df in frames.items():  # each arm's own rounds: its round 0 is the shared one
        own = df if arm == NO_TARGET else df.filter(pl.col("round") > 0)
        calls[arm] = int(own["lm_calls"].fill_null(0).sum())
    return {
        "run_dir": str(root.parent.resolve()),
        "experiment_dir": str(root.resolve()),
        "resumed": resumed,
        "table": result["table"],
        "paired": result["paired"],
        "warnings": result["warnings"],
        "lm_calls": calls,
        "wall_seconds": wall,
    }


def _publish(root: Path, run_id: str, result: dict[str, Any]) -> None:
    rows = [{k: v for k, v in t.items() if not k.endswith("_ci")} for t in result["table"]]
    create_table_artifact(
        table=rows,
        key=artifact_key("sage", run_id, "experiment-table"),
        description=f"experiment {run_id}: per arm and round",
    )
    create_markdown_artifact(
        markdown=(root / "table.md").read_text(),
        key=artifact_key("sage", run_id, "experiment-report"),
        description=f"experiment {run_id}: the table",
    )
