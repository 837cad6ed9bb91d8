"""Quality and difficulty validation of a generation run (`sage validate RUN_DIR`).

Never changes the run's dataset: results go to ``RUN_DIR/validation/<id>/`` (a new version
per validation, ``validation/latest`` points at the newest) with ``validation.parquet`` (one
row per dataset item and its flags), ``rejected.parquet`` (failure taxonomy of rejected
seeds), ``validation.json``, ``validation.md`` and the filtered copy
``dataset.filtered.parquet`` / ``.jsonl``; the run's ``dataset.parquet`` / ``.jsonl`` get
the ``flag_*`` columns (same rows). LM work (re-verification with each solver, the
single-passage and closed-book checks, tags) is checkpointed per item, so an interrupted
validation resumes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows import guards
from flows.engine import futures, runtime
from flows.engine.artifacts import artifact_key
from flows.engine.interrupts import prompt_exit
from flows.engine.params import (
    Against,
    FlowParams,
    RunAttempts,
    RunMaxSearches,
    Tag,
    argument,
    option,
)
from flows.engine.retrying import retried
from flows.reports.run_reports import write_run_reports
from flows.reports.validation import validation_markdown
from flows.runs.manifest import run_manifest
from flows.runs.records import RoundRecord
from flows.runs.store import RunStore, new_run_id, resolve_run_dir
from flows.runs.validation import (
    CheckedRun,
    RowChecks,
    last_judged,
    rejected_row,
    rejected_rows,
    schema_of,
    solver_check_cost,
    solver_name,
    validation_rows,
    validation_summary,
    write_datasets,
)
from modules.checks import flags
from modules.checks.eval_sets import EvalItem, load_evals
from modules.checks.solver_checks import CHECKS, SolverChecks, supporting_notes
from modules.errors import SageError
from modules.index import store
from modules.index.retriever import QdrantRetriever, open_retriever
from modules.programs.attempts import Verifier, fewest_searches
from modules.programs.judge import Judge
from modules.programs.status import REVISABLE, Status
from modules.programs.taxonomy import Tagger
from modules.seeding import stable_int
from modules.settings import load_settings


class ValidateParams(FlowParams):
    """What `sage validate` takes."""

    RESUME_KEYS: ClassVar[tuple[str, ...]] = (
        "attempts",
        "reverify",
        "solver_lm",
        "max_searches",
        "tag",
        "seed",
        "checks",
    )

    run_dir: str = argument("A run directory (or runs/latest).")
    attempts: RunAttempts = option(None, "Fresh agent attempts per item (default: the run's K).")
    reverify: bool = option(True, "Re-run the agent on every item.")
    solver_lm: list[str] = option(
        [], "Agent model to re-verify with (repeatable): pass@K, Avg@K, fewest searches columns."
    )
    agree: bool = option(False, "Flag (export drops) items some solver did not solve.")
    checks: str = option(
        "single_passage,closed_book", "Solver checks without search (comma list, or none)."
    )
    against: Against = []
    published: str | None = option(
        None, "Published dataset folder (datasets/NAME) to dedup against."
    )
    ngram: int = option(8, "Contamination: shared normalised n-gram length.", ge=3)
    contam_cosine: float = option(0.85, "Contamination: question cosine (same answer).", gt=0, le=1)
    max_searches: RunMaxSearches = option(None, "Agent budget (default: the run's).")
    dup_threshold: float = option(0.92, "Near-duplicate cosine.", gt=0.0, le=1.0)
    shortcut_k: int = option(3, "Shortcut probe: top-k of the question as query.", ge=1)
    ambiguity_min_agree: int = option(2, "Wrong attempts agreeing on a rival answer.", ge=1)
    tag: Tag = True
    max_tagged: int | None = option(None, "Tag at most N rejected seeds.", ge=0)
    strict: bool = option(False, "The filtered copy also needs re-verified difficulty.")
    validation_id: str | None = option(None, "Validation id; re-use it to resume.")
    seed: int = option(0, "Seed of the fresh attempts.")

    def config_knobs(self) -> dict[str, Any]:
        """K and the agent's budget (the run's, once the flow has read its manifest)."""
        return {"attempts": int(self.attempts or 1), "max_searches": int(self.max_searches or 0)}


def solver_checks_of(params: ValidateParams) -> tuple[str, ...]:
    """The ``--checks`` names (``none`` or empty: no check)."""
    names = tuple(c.strip() for c in params.checks.split(",") if c.strip() not in ("", "none"))
    bad = [c for c in names if c not in CHECKS]
    if bad:
        raise SageError(f"--checks {bad[0]}: unknown check (use {', '.join(CHECKS)} or none)")
    return names


@dataclass
class Checkers:
    """What the per-item tasks share: the verifier of each solver (the first re-verifies),
    the solver checks and the tagger (None when not needed)."""

    verifier: Verifier | None
    tagger: Tagger | None
    params: ValidateParams
    solvers: dict[str, Verifier] = field(default_factory=dict)
    checks: SolverChecks | None = None

    @classmethod
    def open(
        cls, params: ValidateParams, settings: Any, collection: str, overrides: dict[str, Any]
    ) -> Checkers:
        config = params.sage_config(settings)
        verifier, solvers = None, {}
        if params.reverify:
            verifier, _ = runtime.open_verifier(settings, collection, config)
            for m in params.solver_lm:
                s = settings if m == params.solver_lm[0] else load_settings(**overrides, agent_lm=m)
                solvers[solver_name(m)] = runtime.open_verifier(s, collection, config)[0]
            verifier = next(iter(solvers.values()), verifier)
        checks = None
        if solver_checks_of(params):
            judge = (
                verifier.judge
                if verifier
                else Judge(
                    runtime.role_lm(settings, "judge"),
                    min_gold_recall=config.judge_min_gold_recall,
                    number_guard=config.judge_number_guard,
                )
            )
            checks = SolverChecks(runtime.role_lm(settings, "agent"), judge, config.doc_chars)
        tagger = Tagger(runtime.role_lm(settings, "judge")) if params.tag else None
        return cls(verifier, tagger, params, solvers, checks)


@task(
    **retried(),
    task_run_name="check-{item[id]}",
)
def check_item(
    item: dict[str, Any], round_detail: dict, checkers: Checkers, store: RunStore
) -> dict:
    """Fresh attempts (each solver), solver checks and reasoning tags for one accepted item
    (checkpointed)."""
    rec: dict[str, Any] = {
        "kind": "item",
        "id": item["id"],
        "attempts": None,
        "reasoning": None,
        "solvers": {},
        "solver_checks": None,
    }
    p = checkers.params
    base = stable_int("validate", p.seed, item["id"], digits=6) * 16
    if p.reverify:
        for name, verifier in checkers.solvers.items():
            atts = verifier(item["question"], [item["answer"]], base)
            rec["solvers"][name] = [asdict(a) for a in atts]
        first = next(iter(rec["solvers"].values()), None)
        atts = (
            first
            if first is not None
            else [asdict(a) for a in checkers.verifier(item["question"], [item["answer"]], base)]
        )
        rec["attempts"] = atts
    if checkers.checks is not None:
        notes = supporting_notes(item, round_detail.get("notes") or [])
        rec["solver_checks"] = checkers.checks(item, notes, solver_checks_of(p)).to_dict()
    if checkers.tagger is not None:
        rec["reasoning"] = checkers.tagger.reasoning_types(
            round_detail.get("candidate") or {}
        ).label
    store.append_record(rec)
    return rec


@task(
    **retried(),
    task_run_name="tag-{seed_id}",
)
def tag_rejected(
    seed_id: str, rounds: list[RoundRecord], checkers: Checkers, store: RunStore
) -> dict:
    """Failure cause of a rejected seed, from its last judged round (checkpointed)."""
    rec = rejected_row(seed_id, rounds)
    last = last_judged(rounds)
    if rec["kind_of_failure"] in REVISABLE and checkers.tagger is not None and last:
        atts = last.judged
        best = fewest_searches(atts) if rec["kind_of_failure"] == Status.TOO_EASY else atts[0]
        tag = checkers.tagger.failure(
            rec["kind_of_failure"], last.candidate, last.target_steps, asdict(best)
        )
        rec |= {"cause": tag.label, "explanation": tag.explanation}
    store.append_record({"kind": "rejected", **rec})
    return rec


def _collection(vstore: Any, manifest: dict[str, Any], logger: Any) -> str:
    """The exact collection version the run used, else (with a warning) its alias."""
    version = manifest.get("collection_version")
    alias = manifest["params"]["collection"]
    if version and vstore.is_complete(version):
        return version
    logger.warning("collection version %s is gone; validating against alias %s", version, alias)
    return store.resolve(vstore, alias)


@flow(name="validate-run", log_prints=True)
def validate_run(
    params: ValidateParams, settings_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Validate a run's dataset; write a versioned validation with a filtered copy."""
    rdir = resolve_run_dir(Path(params.run_dir))
    run = CheckedRun.read(rdir)
    manifest = run.manifest
    overrides = dict(settings_overrides or {})
    evals, warnings = _evals(params)
    if params.solver_lm:
        overrides["agent_lm"] = params.solver_lm[0]
    settings = load_settings(**overrides)
    rp = manifest["params"]
    params = params.model_copy(
        update={
            "attempts": params.attempts or int(rp["attempts"]),
            "max_searches": rp["max_searches"]
            if params.max_searches is None
            else params.max_searches,
            "validation_id": params.validation_id or new_run_id(),
        }
    )
    retriever = open_retriever(settings, collection=rp["collection"], k=params.shortcut_k)
    if isinstance(retriever, QdrantRetriever):  # the exact version the run searched
        retriever.collection = _collection(retriever.store, manifest, get_run_logger())
    vstore = RunStore(rdir / "validation", params.validation_id)
    vstore.start(_manifest(params, manifest, retriever.collection, settings), params.RESUME_KEYS)
    checkers = Checkers.open(params, settings, retriever.collection, dict(settings_overrides or {}))
    with prompt_exit():  # Ctrl-C / SIGTERM leave at once; checked items are kept
        check_items(run, checkers, vstore)
        tag_rejected_seeds(run, checkers, vstore)
    guard = Guards(evals, warnings)
    summary = finalise_validation(vstore, run, retriever, settings, params, guard)
    vstore.mark_latest()
    _publish(summary, vstore, rdir, manifest)
    return summary | {"validation_dir": str(vstore.path.resolve())}


def _evals(params: ValidateParams) -> tuple[list[EvalItem], list[str]]:
    """The eval items of ``--against`` (read before any LM work: bad input fails first)."""
    if not params.against:
        return [], []
    evals = load_evals(params.against)
    if evals:
        return evals, []
    msg = (
        f"--against {' '.join(params.against)}: no eval question found; nothing was decontaminated"
    )
    get_run_logger().warning(msg)
    return [], [msg]


@dataclass
class Guards:
    """The eval items and the warnings the corpus-level checks carry to the summary."""

    evals: list[EvalItem]
    warnings: list[str]


def _manifest(
    params: ValidateParams, run: dict[str, Any], collection: str, settings: Any
) -> dict[str, Any]:
    return run_manifest(
        "validation",
        params.validation_id,
        params,
        settings,
        ("agent", "judge"),
        with_settings=False,
        of_run=run["run_id"],
        collection_version=collection,
    )


def check_items(run: CheckedRun, checkers: Checkers, vstore: RunStore) -> None:
    """Re-verify and tag every item not checked yet (each one checkpointed)."""
    p = checkers.params
    if not (p.reverify or p.tag or checkers.checks is not None):
        return
    checked = {r["id"] for r in vstore.iter_records() if r["kind"] == "item"}
    for it in run.items:
        if it["id"] not in checked:
            last = run.last_round.get(it["id"])
            detail = {"candidate": last.candidate, "notes": last.notes} if last else {}
            try:
                futures.result(check_item.submit(it, detail, checkers, vstore))
            except Exception as exc:
                get_run_logger().error("item %s failed: %s", it["id"], exc)


def tag_rejected_seeds(run: CheckedRun, checkers: Checkers, vstore: RunStore) -> None:
    """Tag why each rejected seed failed (up to ``max_tagged``; each one checkpointed)."""
    tagged = {r["seed_id"] for r in vstore.iter_records() if r["kind"] == "rejected"}
    rejected = run.rejected
    budget = checkers.params.max_tagged if checkers.params.max_tagged is not None else len(rejected)
    for sid, rs in rejected[:budget]:
        if sid not in tagged:
            try:
                futures.result(tag_rejected.submit(sid, rs, checkers, vstore))
            except Exception as exc:
                get_run_logger().error("tagging seed %s failed: %s", sid, exc)


def _publish(summary: dict, vstore: RunStore, rdir: Path, manifest: dict) -> None:
    """Prefect artifacts, and the run's report.html with this validation in it."""
    create_table_artifact(
        table=[{"check": k, "count": v} for k, v in summary["flags"].items()],
        key=artifact_key("sage", manifest["run_id"], "validation", vstore.run_id),
        description=f"validation {vstore.run_id} of run {manifest['run_id']}",
    )
    create_markdown_artifact(
        markdown=(vstore.path / "validation.md").read_text(),
        key=artifact_key("sage", manifest["run_id"], "validation", vstore.run_id, "report"),
    )
    try:  # the funnel gets this validation's flags
        write_run_reports(rdir)
    except Exception as exc:  # the report is a convenience: never fail validation for it
        get_run_logger().warning("HTML report not written: %s", exc)


def finalise_validation(
    vstore: RunStore,
    run: CheckedRun,
    retriever: Any,
    settings: Any,
    params: ValidateParams,
    guard: Guards | None = None,
) -> dict[str, Any]:
    """Deterministic checks plus checkpointed LM results -> every validation artifact."""
    guard = guard or Guards([], [])
    items = run.items
    recs = vstore.load_records()
    checks = {r["id"]: r for r in recs if r["kind"] == "item"}
    vectors = guards.embed(settings.models_dir, [i["question"] for i in items])
    dups = guards.near_duplicates(settings, items, vectors, params.published, params.dup_threshold)
    contam = guards.contamination(
        settings, items, vectors, params.against, guard.evals, params.ngram, params.contam_cosine
    )
    solvers = [solver_name(m) for m in params.solver_lm] if params.reverify else []
    dropped = flags.drops(params.strict, params.agree)
    rc = RowChecks(retriever, params.shortcut_k, params.ambiguity_min_agree, solvers, dropped)
    rows = validation_rows(run, checks, dups, contam, rc)
    vstore.write_parquet("validation.parquet", pl.DataFrame(rows, schema=schema_of(solvers)))
    rej_rows = rejected_rows(recs, run)
    vstore.write_parquet("rejected.parquet", pl.DataFrame(rej_rows, infer_schema_length=None))
    write_datasets(vstore, items, rows)
    summary = validation_summary(rows, rej_rows, items) | {
        "drops": dropped,
        "warnings": guard.warnings,
        "solver_checks": solver_check_cost(rows),
        "against": list(params.against),
        "eval_items": len(guard.evals),
    }
    vstore.write_json("validation.json", summary)
    vstore.write_text("validation.md", validation_markdown(run.manifest, vstore.run_id, summary))
    return summary
