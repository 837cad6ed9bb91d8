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

import datetime as dt
import re
from collections import Counter
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
from flows.engine.params import FlowParams, argument, option
from flows.engine.retrying import retried
from flows.reports.run_reports import write_run_reports
from flows.reports.tables import md_table
from flows.runs import finalise as ds
from flows.runs.store import RunStore, models_of, new_run_id, resolve_run_dir
from modules import flags, quality, store
from modules.attempts import Attempt, Verifier, fewest_searches, verdict
from modules.config import build_config
from modules.errors import SageError
from modules.eval_sets import EvalItem, load_evals
from modules.judge import Judge
from modules.retriever import QdrantRetriever, open_retriever
from modules.seeding import stable_int
from modules.settings import load_settings
from modules.solver_checks import CHECKS, SolverChecks, supporting_notes
from modules.status import REVISABLE, Status
from modules.taxonomy import Tagger


class ValidateParams(FlowParams):
    """What `sage validate` takes."""

    RESUME_KEYS: ClassVar[tuple[str, ...]] = (
        "attempts", "reverify", "solver_lm", "max_searches", "tag", "seed", "checks",
    )  # fmt: skip

    run_dir: str = argument("A run directory (or runs/latest).")
    attempts: int | None = option(
        None, "Fresh agent attempts per item (default: the run's K).", ge=1
    )
    reverify: bool = option(True, "Re-run the agent on every item.")
    solver_lm: list[str] = option(
        [], "Agent model to re-verify with (repeatable): pass@K, Avg@K, fewest searches columns."
    )
    agree: bool = option(False, "Flag (export drops) items some solver did not solve.")
    checks: str = option(
        "single_passage,closed_book", "Solver checks without search (comma list, or none)."
    )
    against: list[str] = option([], "Eval file/folder to decontaminate against (repeatable).")
    published: str | None = option(
        None, "Published dataset folder (datasets/NAME) to dedup against."
    )
    ngram: int = option(8, "Contamination: shared normalised n-gram length.", ge=3)
    contam_cosine: float = option(0.85, "Contamination: question cosine (same answer).", gt=0, le=1)
    max_searches: int | None = option(None, "Agent budget (default: the run's).", ge=0)
    dup_threshold: float = option(0.92, "Near-duplicate cosine.", gt=0.0, le=1.0)
    shortcut_k: int = option(3, "Shortcut probe: top-k of the question as query.", ge=1)
    ambiguity_min_agree: int = option(2, "Wrong attempts agreeing on a rival answer.", ge=1)
    tag: bool = option(True, "LLM-tag failure causes and reasoning types.")
    max_tagged: int | None = option(None, "Tag at most N rejected seeds.", ge=0)
    strict: bool = option(False, "The filtered copy also needs re-verified difficulty.")
    validation_id: str | None = option(None, "Validation id; re-use it to resume.")
    seed: int = option(0, "Seed of the fresh attempts.")


def solver_checks_of(params: ValidateParams) -> tuple[str, ...]:
    """The ``--checks`` names (``none`` or empty: no check)."""
    names = tuple(c.strip() for c in params.checks.split(",") if c.strip() not in ("", "none"))
    bad = [c for c in names if c not in CHECKS]
    if bad:
        raise SageError(f"--checks {bad[0]}: unknown check (use {', '.join(CHECKS)} or none)")
    return names


def solver_name(model: str) -> str:
    """A column-safe name of a solver model ("openai/gpt-4o-mini" -> "openai_gpt_4o_mini")."""
    return re.sub(r"\W+", "_", model).strip("_").lower() or "solver"


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
        config = build_config(settings, attempts=int(params.attempts or 1),
                              max_searches=int(params.max_searches or 0))  # fmt: skip
        verifier, solvers = None, {}
        if params.reverify:
            verifier, _ = runtime.open_verifier(settings, collection, config)
            for m in params.solver_lm:
                s = settings if m == params.solver_lm[0] else load_settings(**overrides, agent_lm=m)
                solvers[solver_name(m)] = runtime.open_verifier(s, collection, config)[0]
            verifier = next(iter(solvers.values()), verifier)
        checks = None
        if solver_checks_of(params):
            judge = verifier.judge if verifier else Judge(
                runtime.role_lm(settings, "judge"), min_gold_recall=config.judge_min_gold_recall,
                number_guard=config.judge_number_guard,
            )  # fmt: skip
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
    rec: dict[str, Any] = {"kind": "item", "id": item["id"], "attempts": None, "reasoning": None,
                           "solvers": {}, "solver_checks": None}  # fmt: skip
    p = checkers.params
    base = stable_int("validate", p.seed, item["id"], digits=6) * 16
    if p.reverify:
        for name, verifier in checkers.solvers.items():
            atts = verifier(item["question"], [item["answer"]], base)
            rec["solvers"][name] = [asdict(a) for a in atts]
        first = next(iter(rec["solvers"].values()), None)
        atts = first if first is not None else [
            asdict(a) for a in checkers.verifier(item["question"], [item["answer"]], base)
        ]  # fmt: skip
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
def tag_rejected(seed_id: str, rounds: list[dict], checkers: Checkers, store: RunStore) -> dict:
    """Failure cause of a rejected seed, from its last judged round (checkpointed)."""
    rec = rejected_row(seed_id, rounds)
    if rec["kind_of_failure"] in REVISABLE and checkers.tagger is not None:
        last = _last_judged(rounds)
        detail = last["detail"]
        atts = [Attempt.from_dict(a) for a in detail.get("attempts") or []]
        best = fewest_searches(atts) if rec["kind_of_failure"] == Status.TOO_EASY else atts[0]
        tag = checkers.tagger.failure(
            rec["kind_of_failure"], detail.get("candidate") or {}, last["target_steps"],
            asdict(best),
        )  # fmt: skip
        rec |= {"cause": tag.label, "explanation": tag.explanation}
    store.append_record({"kind": "rejected", **rec})
    return rec


def _last_judged(rounds: list[dict]) -> dict | None:
    judged = [r for r in rounds if (r.get("detail") or {}).get("attempts")]
    return judged[-1] if judged else None


def rejected_row(seed_id: str, rounds: list[dict]) -> dict[str, Any]:
    last = rounds[-1]
    judged = _last_judged(rounds)
    if judged is None:
        kind = Status.GENERATION_FAILED
    else:
        atts = [Attempt.from_dict(a) for a in judged["detail"]["attempts"]]
        kind = Status.INCORRECT if fewest_searches(atts) is None else Status.TOO_EASY
    src = judged or last
    return {
        "seed_id": seed_id,
        "final_status": last["status"],
        "rounds": len(rounds),
        "kind_of_failure": kind,
        "question": src.get("question"),
        "answer": src.get("answer"),
        "target_steps": last["target_steps"],
        "cause": kind if kind == Status.GENERATION_FAILED else None,
        "explanation": (last.get("detail") or {}).get("error") or "",
    }


def _items_and_rounds(run_dir: Path) -> tuple[list[dict], dict[str, list[dict]], dict]:
    store = RunStore(run_dir.parent, run_dir.name)
    manifest = store.read_manifest()
    if manifest.get("kind") == "evaluation":
        raise SageError(f"{run_dir}: an evaluation, not a generation run")
    done = ds.group_rounds(store.load_records())
    path = run_dir / "dataset.parquet"
    if not path.exists():
        raise SageError(f"{path}: missing (was the run finalised? re-run `sage generate`)")
    frame = pl.read_parquet(path)
    items = frame.select([c for c in ds.DATASET_SCHEMA if c in frame.columns]).to_dicts()
    return items, done, manifest


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
    items, done, manifest = _items_and_rounds(rdir)
    overrides = dict(settings_overrides or {})
    evals, warnings = _evals(params)
    if params.solver_lm:
        overrides["agent_lm"] = params.solver_lm[0]
    settings = load_settings(**overrides)
    rp = manifest["params"]
    params = params.model_copy(update={
        "attempts": params.attempts or int(rp["attempts"]),
        "max_searches": rp["max_searches"] if params.max_searches is None else params.max_searches,
        "validation_id": params.validation_id or new_run_id(),
    })  # fmt: skip
    retriever = open_retriever(settings, collection=rp["collection"], k=params.shortcut_k)
    if isinstance(retriever, QdrantRetriever):  # the exact version the run searched
        retriever.collection = _collection(retriever.store, manifest, get_run_logger())
    vstore = RunStore(rdir / "validation", params.validation_id)
    vstore.start(_manifest(params, manifest, retriever.collection, settings), params.RESUME_KEYS)
    checkers = Checkers.open(params, settings, retriever.collection, dict(settings_overrides or {}))
    with prompt_exit():  # Ctrl-C / SIGTERM leave at once; checked items are kept
        check_items(items, done, manifest, checkers, vstore)
        tag_rejected_seeds(items, done, manifest, checkers, vstore)
    guard = Guards(evals, warnings)
    summary = finalise_validation(vstore, items, done, manifest, retriever, settings, params, guard)
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
    return {
        "kind": "validation",
        "run_id": params.validation_id,
        "of_run": run["run_id"],
        "created": dt.datetime.now(dt.UTC).isoformat(),
        "params": params.record(),
        "collection_version": collection,
        "models": models_of(settings, ("agent", "judge")),
    }


def check_items(
    items: list[dict], done: dict, manifest: dict, checkers: Checkers, vstore: RunStore
) -> None:
    """Re-verify and tag every item not checked yet (each one checkpointed)."""
    p = checkers.params
    if not (p.reverify or p.tag or checkers.checks is not None):
        return
    checked = {r["id"] for r in vstore.iter_records() if r["kind"] == "item"}
    by_id = {f"{manifest['run_id']}:{sid}": rs for sid, rs in done.items()}
    for it in items:
        if it["id"] not in checked:
            detail = by_id.get(it["id"], [{}])[-1].get("detail") or {}
            detail = {k: detail.get(k) for k in ("candidate", "notes")}
            try:
                futures.result(check_item.submit(it, detail, checkers, vstore))
            except Exception as exc:
                get_run_logger().error("item %s failed: %s", it["id"], exc)


def tag_rejected_seeds(
    items: list[dict], done: dict, manifest: dict, checkers: Checkers, vstore: RunStore
) -> None:
    """Tag why each rejected seed failed (up to ``max_tagged``; each one checkpointed)."""
    tagged = {r["seed_id"] for r in vstore.iter_records() if r["kind"] == "rejected"}
    accepted_ids = {i["id"] for i in items}
    rejected = [
        (sid, rs) for sid, rs in sorted(done.items())
        if f"{manifest['run_id']}:{sid}" not in accepted_ids and rs
    ]  # fmt: skip
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


VALIDATION_SCHEMA: dict[str, pl.DataType] = {
    "id": pl.String(),
    "question": pl.String(),
    "answer": pl.String(),
    "target_steps": pl.Int64(),
    "leakage": pl.String(),
    "shortcut_rank": pl.Int64(),
    "near_duplicate_of": pl.String(),
    "duplicate_cosine": pl.Float64(),
    "ambiguous_rival": pl.String(),
    "reverify_attempts": pl.Int64(),
    "reverify_correct": pl.Int64(),
    "reverify_pass": pl.Boolean(),
    "reverify_min_searches": pl.Int64(),
    "difficulty_confirmed": pl.Boolean(),
    "single_passage_id": pl.String(),
    "single_passage_answer": pl.String(),
    "passages_tried": pl.Int64(),
    "closed_book": pl.Boolean(),
    "closed_book_answer": pl.String(),
    "solver_check_lm_calls": pl.Int64(),
    "contaminated_file": pl.String(),
    "contaminated_id": pl.String(),
    "contamination_rule": pl.String(),
    "contamination_cosine": pl.Float64(),
    "reasoning_types": pl.List(pl.String()),
    **{flags.column(f): pl.Boolean() for f in flags.FLAGS},
    "keep": pl.Boolean(),
}
SOLVER_COLUMNS = {"pass_at_k": pl.Boolean(), "avg_at_k": pl.Float64(), "min_searches": pl.Int64()}


def schema_of(solvers: list[str]) -> dict[str, pl.DataType]:
    """The validation table's columns, with each solver's pass@K, Avg@K and fewest searches."""
    cols = {f"solver_{n}_{c}": t for n in solvers for c, t in SOLVER_COLUMNS.items()}
    return {**VALIDATION_SCHEMA, **cols}


def finalise_validation(
    vstore: RunStore,
    items: list[dict],
    done: dict[str, list[dict]],
    manifest: dict[str, Any],
    retriever: Any,
    settings: Any,
    params: ValidateParams,
    guard: Guards | None = None,
) -> dict[str, Any]:
    """Deterministic checks plus checkpointed LM results -> every validation artifact."""
    guard = guard or Guards([], [])
    recs = vstore.load_records()
    checks = {r["id"]: r for r in recs if r["kind"] == "item"}
    vectors = guards.embed(settings.models_dir, [i["question"] for i in items])
    dups = guards.near_duplicates(settings, items, vectors, params.published, params.dup_threshold)
    contam = guards.contamination(settings, items, vectors, params.against, guard.evals,
                                  params.ngram, params.contam_cosine)  # fmt: skip
    by_id = {f"{manifest['run_id']}:{sid}": rs for sid, rs in done.items()}
    solvers = [solver_name(m) for m in params.solver_lm] if params.reverify else []
    dropped = flags.drops(params.strict, params.agree)
    rows = []
    for n, it in enumerate(items):
        gen_rounds = by_id.get(it["id"]) or [{}]
        gen_atts = (gen_rounds[-1].get("detail") or {}).get("attempts") or []
        check = checks.get(it["id"], {})
        row = item_row(it, check, gen_atts, retriever, params)
        row |= dups.get(n, {"near_duplicate_of": None, "duplicate_cosine": None})
        row |= contamination_columns(contam[n]) | solver_columns(check, solvers, it["target_steps"])
        row |= flag_columns(row, it, solvers)
        row["keep"] = flags.kept(row, dropped)
        rows.append(row)
    vstore.write_parquet("validation.parquet", pl.DataFrame(rows, schema=schema_of(solvers)))
    rej_rows = _rejected_rows(recs, items, done, manifest)
    vstore.write_parquet("rejected.parquet", pl.DataFrame(rej_rows, infer_schema_length=None))
    _write_datasets(vstore, items, rows)
    summary = validation_summary(rows, rej_rows, items) | {
        "drops": dropped, "warnings": guard.warnings, "solver_checks": solver_check_cost(rows),
        "against": list(params.against), "eval_items": len(guard.evals),
    }  # fmt: skip
    vstore.write_json("validation.json", summary)
    vstore.write_text("validation.md", validation_markdown(manifest, vstore.run_id, summary))
    return summary


def _rejected_rows(recs: list[dict], items: list[dict], done: dict, manifest: dict) -> list[dict]:
    rejected = {r["seed_id"]: r for r in recs if r["kind"] == "rejected"}
    item_ids = {i["id"] for i in items}
    return [
        {k: v for k, v in (rejected.get(sid) or rejected_row(sid, rs)).items() if k != "kind"}
        for sid, rs in sorted(done.items())
        if f"{manifest['run_id']}:{sid}" not in item_ids and rs
    ]


def _write_datasets(vstore: RunStore, items: list[dict], rows: list[dict]) -> None:
    """The filtered copy, and the run's dataset with the flag columns (same rows)."""
    kept_ids = {r["id"] for r in rows if r["keep"]}
    kept = [i for i in items if i["id"] in kept_ids]
    vstore.write_parquet("dataset.filtered.parquet", pl.DataFrame(kept, schema=ds.DATASET_SCHEMA))
    vstore.write_jsonl("dataset.filtered.jsonl", kept)
    rdir = vstore.path.parent.parent
    ds.write_dataset(RunStore(rdir.parent, rdir.name), items, {r["id"]: r for r in rows})


def contamination_columns(match: Any) -> dict[str, Any]:
    return {
        "contaminated_file": match.file if match else None,
        "contaminated_id": match.id if match else None,
        "contamination_rule": match.rule if match else None,
        "contamination_cosine": match.cosine if match else None,
    }


def solver_columns(check: dict, solvers: list[str], target: int | None) -> dict[str, Any]:
    """Each solver's pass@K, Avg@K and fewest searches among right attempts."""
    out: dict[str, Any] = {}
    for name in solvers:
        atts = [Attempt.from_dict(a) for a in (check.get("solvers") or {}).get(name) or []]
        best = fewest_searches(atts)
        out[f"solver_{name}_pass_at_k"] = best is not None if atts else None
        out[f"solver_{name}_avg_at_k"] = sum(a.correct for a in atts) / len(atts) if atts else None
        out[f"solver_{name}_min_searches"] = best.n_searches if best else None
    return out


def flag_columns(row: dict[str, Any], item: dict[str, Any], solvers: list[str]) -> dict[str, bool]:
    """The ``flag_*`` booleans of one validation row."""
    solved = [item.get("pass_at_k") is not False, row["reverify_pass"] is not False]
    solved += [row[f"solver_{n}_pass_at_k"] is not False for n in solvers]
    values = {
        "single_passage": row["single_passage_id"] is not None,
        "closed_book": row["closed_book"] is True,
        "contaminated": row["contaminated_id"] is not None,
        "near_duplicate": row["near_duplicate_of"] is not None,
        "leakage": row["leakage"] is not None,
        "ambiguous": row["ambiguous_rival"] is not None,
        "reverify_failed": row["reverify_pass"] is False,
        "difficulty_not_confirmed": row["difficulty_confirmed"] is False,
        "solver_disagree": not all(solved),
    }
    return {flags.column(f): values[f] for f in flags.FLAGS}


def solver_check_cost(rows: list[dict]) -> dict[str, Any]:
    """LM calls the single-passage and closed-book checks spent (in all, per checked item)."""
    calls = [r["solver_check_lm_calls"] for r in rows if r["solver_check_lm_calls"] is not None]
    return {"items": len(calls), "lm_calls": sum(calls),
            "lm_calls_per_item": round(sum(calls) / len(calls), 2) if calls else None}  # fmt: skip


def item_row(
    it: dict, check: dict, gen_attempts: list[dict], retriever: Any, params: ValidateParams
) -> dict[str, Any]:
    """One item's flags: leakage, shortcut, ambiguity and the re-verification verdict."""
    fresh = check.get("attempts")
    atts = [Attempt.from_dict(a) for a in fresh or []]
    best = fewest_searches(atts)
    checked = fresh is not None
    sc = check.get("solver_checks") or {}
    return {
        "id": it["id"],
        "question": it["question"],
        "answer": it["answer"],
        "target_steps": it["target_steps"],
        "leakage": quality.leakage(it["question"], it["answer"]),
        "shortcut_rank": quality.shortcut_probe(
            retriever, it["question"], it["answer"], params.shortcut_k
        ),
        "ambiguous_rival": quality.ambiguity(
            list(gen_attempts) + list(fresh or []), params.ambiguity_min_agree
        ),
        "reverify_attempts": len(atts) if checked else None,
        "reverify_correct": sum(a.correct for a in atts) if checked else None,
        "reverify_pass": best is not None if checked else None,
        "reverify_min_searches": best.n_searches if best else None,
        "difficulty_confirmed": (
            verdict(atts, it["target_steps"]) == Status.ACCEPTED if checked else None
        ),
        "single_passage_id": sc.get("single_passage"),
        "single_passage_answer": sc.get("single_passage_answer"),
        "passages_tried": sc.get("passages_tried"),
        "closed_book": sc.get("closed_book"),
        "closed_book_answer": sc.get("closed_book_answer"),
        "solver_check_lm_calls": (sc.get("meter") or {}).get("lm_calls") if sc else None,
        "reasoning_types": check.get("reasoning"),
    }


def validation_summary(rows: list[dict], rej_rows: list[dict], items: list[dict]) -> dict:
    n = len(rows)
    rv = [r for r in rows if r["reverify_pass"] is not None]
    reasoning = Counter(t for r in rows for t in (r["reasoning_types"] or []))
    return {
        "items": n,
        "kept": sum(r["keep"] for r in rows),
        "flags": {
            "shortcut": sum(r["shortcut_rank"] is not None for r in rows),
            **{f: sum(bool(r[flags.column(f)]) for r in rows) for f in flags.FLAGS},
        },
        "reverification": {
            "items": len(rv),
            "pct_pass": round(100 * sum(r["reverify_pass"] for r in rv) / len(rv), 1)
            if rv
            else None,
            "pct_difficulty_confirmed": (
                round(100 * sum(bool(r["difficulty_confirmed"]) for r in rv) / len(rv), 1)
                if rv
                else None
            ),
        },
        "diversity": quality.diversity(
            [i["seed_doc_id"] for i in items], [i["answer"] for i in items]
        ),
        "reasoning_types": dict(reasoning.most_common()),
        "failure_taxonomy": {
            kind: dict(
                Counter(
                    r["cause"] or "untagged" for r in rej_rows if r["kind_of_failure"] == kind
                ).most_common()
            )
            for kind in (Status.TOO_EASY, Status.INCORRECT, Status.GENERATION_FAILED)
        },  # fmt: skip
        "rejected": len(rej_rows),
    }


def validation_markdown(manifest: dict[str, Any], vid: str, s: dict[str, Any]) -> str:
    table = md_table([{"check": k, "flagged": v} for k, v in s["flags"].items()],
                     ["check", "flagged"])  # fmt: skip
    tax = md_table(
        [{"failure": kind, "cause": cause, "count": c}
         for kind, causes in s["failure_taxonomy"].items() for cause, c in causes.items()],
        ["failure", "cause", "count"],
    )  # fmt: skip
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
