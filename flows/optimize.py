"""`optimize_module`: DSPy optimization of the search agent, generator or reviser on data from
previous runs, scored by execution feedback (see modules/optimization.py).

Writes ``<out_dir>/<module>-<YYYYmmdd-HHMMSS>.json`` (the optimized sub-module's DSPy state,
loadable with ``sage generate --program``) and ``<same>.meta.json``, and reports the held-out
dev score before and after optimization, whatever it is.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import dspy
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

import flows.runtime as runtime
from flows.optimize_data import collect_examples, open_runs, qa_examples, runs_collection, split
from flows.qa_sets import FORMATS as QA_FORMATS
from flows.retrying import is_transient
from modules.errors import SageError
from modules.lm import lm_config
from modules.optimization import (
    MODULES,
    OPTIMIZERS,
    Metric,
    Task,
    Verifier,
    build_task,
    compile_task,
    score_task,
)
from modules.program_file import meta_path, save_program
from modules.settings import Settings, load_settings

RETRY = dict(
    retries=2,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=is_transient,
    cache_policy=NO_CACHE,
)


@dataclass
class OptimizeParams:
    """Everything `sage optimize` takes (recorded in the program's meta file)."""

    module: str
    runs: list[str] = field(default_factory=list)
    qa: list[str] = field(default_factory=list)  # QA sets (agent only), e.g. HotpotQA dev
    qa_format: str = "qa"
    optimizer: str = "bootstrap"
    dev_frac: float = 0.3
    seed: int = 0
    max_train: int | None = None
    max_dev: int | None = None
    collection: str | None = None
    out_dir: str = "programs"
    attempts: int = 1  # K agent attempts verifying a generated/revised pair
    max_searches: int = 10
    generator_searches: int = 20
    max_demos: int = 2
    trials: int = 4

    def validate(self) -> None:
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
        if not 0.0 < self.dev_frac < 1.0:
            raise SageError("--dev-frac must be between 0 and 1 (exclusive)")
        if any((v is not None and v < 1) for v in (self.max_train, self.max_dev)):
            raise SageError("--max-train and --max-dev must be >= 1")
        if self.attempts < 1 or self.trials < 1 or self.max_demos < 0:
            raise SageError("--attempts and --trials must be >= 1, --max-demos >= 0")
        if self.max_searches < 0 or self.generator_searches < 0:
            raise SageError("--max-searches and --generator-searches must be >= 0")


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
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
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
    agent, judge, version = runtime.open_solver(settings, collection, params.max_searches)
    prompt_lm = runtime.build_lm(lm_config(settings, "generator"))
    lms = {"generator": prompt_lm, "agent": agent.lm}
    opt = build_task(
        params.module, agent.retriever, lms, params.max_searches, params.generator_searches
    )
    return opt, Verifier(agent, judge, attempts=params.attempts), prompt_lm, version


@flow(name="optimize-module", log_prints=True, validate_parameters=False)
def optimize_module(
    module: str,
    runs: list[str] | None = None,
    qa: list[str] | None = None,
    qa_format: str = "qa",
    optimizer: str = "bootstrap",
    dev_frac: float = 0.3,
    seed: int = 0,
    max_train: int | None = None,
    max_dev: int | None = None,
    collection: str | None = None,
    out_dir: str = "programs",
    attempts: int = 1,
    max_searches: int = 10,
    generator_searches: int = 20,
    max_demos: int = 2,
    trials: int = 4,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Optimize one SAGE sub-module; write the program file and its meta; before/after scores."""
    params = OptimizeParams(
        module=module, runs=[str(r) for r in runs or []], qa=[str(q) for q in qa or []],
        qa_format=qa_format, optimizer=optimizer, dev_frac=dev_frac,
        seed=seed, max_train=max_train, max_dev=max_dev, collection=collection,
        out_dir=out_dir, attempts=attempts, max_searches=max_searches,
        generator_searches=generator_searches, max_demos=max_demos, trials=trials,
    )  # fmt: skip
    params.validate()
    settings = load_settings(**(settings_overrides or {}))
    logger = get_run_logger()
    stores = open_runs(params.runs) if params.runs else []
    coll = params.collection or runs_collection(stores)
    examples = collect_examples(params.module, stores) + qa_examples(params.qa, params.qa_format)
    what = {"agent": "questions", "generator": "seeds", "reviser": "failed rounds"}
    train, dev = split(
        examples, params.dev_frac, params.seed, params.max_train, params.max_dev,
        what[params.module],
    )  # fmt: skip
    logger.info(
        "optimizing the %s with %s: %d train / %d dev examples from %d run(s), %d QA set(s)",
        params.module, params.optimizer, len(train), len(dev), len(stores), len(params.qa),
    )  # fmt: skip
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
    meta = summary | {
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "runs": [str(s.path) for s in stores],
        "qa": params.qa,
        "collection": coll,
        "collection_version": version,
        "models": {
            "generator": settings.lm,
            "agent": settings.agent_lm_name,
            "judge": settings.judge_lm_name,
        },
        "params": asdict(params),
        "train_ids": [ex.id for ex in train],
        "dev": [
            {"id": ex.id, "before": b, "after": a}
            for ex, b, a in zip(dev, before, after, strict=True)
        ],
    }
    meta_path(path).write_text(json.dumps(meta, indent=2, default=str) + "\n")
    logger.info(
        "dev score %s -> %s; program %s", summary["dev_score_before"],
        summary["dev_score_after"], path,
    )  # fmt: skip
    return summary
