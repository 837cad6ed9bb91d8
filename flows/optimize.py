"""`optimize_module`: DSPy optimization of the search agent, generator or reviser on data from
previous runs, scored by execution feedback (see modules/programs/optimization.py).

Writes ``<out_dir>/<module>-<YYYYmmdd-HHMMSS>.json`` (the optimized sub-module's DSPy state,
loadable with ``sage generate --program``) and ``<same>.meta.json``, and reports the held-out
dev score before and after optimization, whatever it is.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import dspy
from prefect import flow, get_run_logger, task
from pydantic import model_validator

import flows.engine.runtime as runtime
from flows.data.optimize_data import (
    collect_examples,
    open_runs,
    qa_examples,
    runs_collection,
    split,
)
from flows.data.qa_sets import FORMATS as QA_FORMATS
from flows.engine.params import (
    Attempts,
    Collection,
    FlowParams,
    GeneratorSearches,
    MaxSearches,
    option,
)
from flows.engine.retrying import retried
from flows.runs.manifest import run_manifest
from flows.runs.store import new_run_id
from modules.errors import SageError
from modules.programs.attempts import Verifier
from modules.programs.optimization import (
    MODULES,
    OPTIMIZERS,
    Metric,
    Task,
    build_task,
    compile_task,
    score_task,
)
from modules.programs.program_file import meta_path, save_program
from modules.settings import Settings, load_settings

RETRY = retried(attempts=2)


class OptimizeParams(FlowParams):
    """Everything `sage optimize` takes (recorded in the program's meta file)."""

    module: str = option(..., "agent | generator | reviser.")
    runs: list[str] = option([], "A previous run directory (repeatable).")
    qa: list[str] = option(
        [],
        "A QA set to train and score the agent on (repeatable); needs --collection when no --runs.",
    )
    qa_format: str = option("qa", "Format of --qa: sage | hotpotqa | musique | qa.")
    optimizer: str = option("bootstrap", "bootstrap | mipro | gepa.")
    dev_frac: float = option(0.3, "Held-out dev fraction.", gt=0.0, lt=1.0)
    seed: int = option(0, "Split and optimizer seed.")
    max_train: int | None = option(None, "At most N train examples.", ge=1)
    max_dev: int | None = option(None, "At most N dev examples.", ge=1)
    collection: Collection = option(None, "Collection to search (default: the runs').")
    out_dir: str = option("programs", "Where program files go.")
    attempts: Attempts = option(1, "Agent attempts K verifying a pair.")
    max_searches: MaxSearches = 10
    generator_searches: GeneratorSearches = 20
    max_demos: int = option(2, "Bootstrapped demos per predictor.", ge=0)
    trials: int = option(4, "MIPROv2 trials / GEPA iterations.", ge=1)

    @model_validator(mode="after")
    def _consistent(self) -> OptimizeParams:
        if self.module not in MODULES:
            raise SageError(f"--module {self.module!r}: use one of {', '.join(MODULES)}")
        if self.optimizer not in OPTIMIZERS:
            raise SageError(f"--optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
        if not self.runs and not self.qa:
            raise SageError("no data given: pass previous run directories with --runs")
        if self.qa and self.module != "agent":
            raise SageError("--qa trains the agent only: the generator and reviser need --runs")
        if self.qa_format not in QA_FORMATS:
            raise SageError(f"--qa-format {self.qa_format!r}: use one of {', '.join(QA_FORMATS)}")
        if self.qa and not self.runs and not self.collection:
            raise SageError("--qa without --runs needs --collection (the corpus to search)")
        return self


@task(**RETRY, task_run_name="score-dev-{label}")
def score_dev(
    opt: Task, dev: list[dspy.Example], metric: Metric, prompt_lm: Any, label: str
) -> list[float]:
    """The metric on every dev example (held out from the optimizer)."""
    with dspy.context(lm=prompt_lm):
        return score_task(opt, dev, metric)


@task(**RETRY, task_run_name="compile-{optimizer}")
def compile_program(
    opt: Task,
    optimizer: str,
    train: list[dspy.Example],
    verifier: Verifier,
    prompt_lm: Any,
    params: OptimizeParams,
) -> Task:
    return compile_task(
        opt, optimizer, train, verifier, prompt_lm, params.max_demos, params.trials, params.seed
    )


def _program_path(out_dir: Path, module: str) -> Path:
    stamp = new_run_id()
    path, i = out_dir / f"{module}-{stamp}.json", 1
    while path.exists() or meta_path(path).exists():
        path, i = out_dir / f"{module}-{stamp}-{i}.json", i + 1
    return path


def _mean(xs: list[float]) -> float:
    return round(sum(xs) / len(xs), 4) if xs else 0.0


def _open(
    params: OptimizeParams, settings: Settings, collection: str
) -> tuple[Task, Verifier, Any, str]:
    """The task to optimize, its verifier, the prompt LM and the collection version."""
    config = params.sage_config(settings)
    verifier, version = runtime.open_verifier(settings, collection, config)
    agent = verifier.agent
    prompt_lm = runtime.role_lm(settings, "generator")
    lms = {"generator": prompt_lm, "agent": agent.lm}
    opt = build_task(params.module, agent.retriever, lms, config)
    return opt, verifier, prompt_lm, version


def _train_dev(params: OptimizeParams, stores: list[Any]) -> tuple[list[Any], list[Any]]:
    """The module's train and dev examples from the runs and QA sets (logged)."""
    examples = collect_examples(params.module, stores) + qa_examples(params.qa, params.qa_format)
    what = {"agent": "questions", "generator": "seeds", "reviser": "failed rounds"}
    train, dev = split(
        examples,
        params.dev_frac,
        params.seed,
        params.max_train,
        params.max_dev,
        what[params.module],
    )
    get_run_logger().info(
        "optimizing the %s with %s: %d train / %d dev examples from %d run(s), %d QA set(s)",
        params.module,
        params.optimizer,
        len(train),
        len(dev),
        len(stores),
        len(params.qa),
    )
    return train, dev


@flow(name="optimize-module", log_prints=True)
def optimize_module(
    params: OptimizeParams, settings_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Optimize one SAGE sub-module; write the program file and its meta; before/after scores."""
    settings = load_settings(**(settings_overrides or {}))
    stores = open_runs(params.runs) if params.runs else []
    coll = params.collection or runs_collection(stores)
    train, dev = _train_dev(params, stores)
    t0 = time.perf_counter()
    opt, verifier, prompt_lm, version = _open(params, settings, coll)
    metric = Metric(params.module, verifier)
    before = score_dev(opt, dev, metric, prompt_lm, "before")
    best = compile_program(opt, params.optimizer, train, verifier, prompt_lm, params)
    after = score_dev(best, dev, metric, prompt_lm, "after")
    path = _program_path(Path(params.out_dir), params.module)
    save_program(best.target, params.module, path)
    summary = {
        "program": str(path),
        "meta": str(meta_path(path)),
        "module": params.module,
        "optimizer": params.optimizer,
        "train_size": len(train),
        "dev_size": len(dev),
        "dev_score_before": _mean(before),
        "dev_score_after": _mean(after),
        "seconds": round(time.perf_counter() - t0, 1),
    }
    meta = summary | run_manifest(
        "optimize",
        path.stem,
        params,
        settings,
        runs=[str(s.path) for s in stores],
        qa=params.qa,
        collection=coll,
        collection_version=version,
        train_ids=[ex.id for ex in train],
        dev=[
            {"id": ex.id, "before": b, "after": a}
            for ex, b, a in zip(dev, before, after, strict=True)
        ],
    )
    meta_path(path).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    return summary
