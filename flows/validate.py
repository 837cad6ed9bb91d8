"""Quality and difficulty validation of a generation run (`sage validate RUN_DIR`).

Never changes the run's dataset: results go to ``RUN_DIR/validation/<id>/`` (a new version
per validation, ``validation/latest`` points at the newest) with ``validation.parquet`` (one
row per dataset item and its flags), ``rejected.parquet`` (failure taxonomy of rejected
seeds), ``validation.json``, ``validation.md`` and the filtered copy
``dataset.filtered.parquet`` / ``.jsonl``. LM work (re-verification, tags) is checkpointed
per item, so an interrupted validation resumes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact

from flows.engine import futures, runtime
from flows.engine.interrupts import prompt_exit
from flows.engine.params import FlowParams, argument, option
from flows.engine.retrying import retried
from flows.reports.tables import md_table
from flows.runs import finalise as ds
from flows.runs.store import RunStore, models_of, new_run_id, resolve_run_dir
from modules import embeddings, quality, store
from modules.attempts import Attempt, Verifier, fewest_searches, verdict
from modules.config import build_config
from modules.errors import SageError
from modules.retriever import QdrantRetriever, open_retriever
from modules.seeding import stable_int
from modules.settings import load_settings
from modules.status import REVISABLE, Status
from modules.taxonomy import Tagger


class ValidateParams(FlowParams):
    """What `sage validate` takes."""

    RESUME_KEYS: ClassVar[tuple[str, ...]] = (
        "attempts", "reverify", "solver_lm", "max_searches", "tag", "seed",
    )  # fmt: skip

    run_dir: str = argument("A run directory (or runs/latest).")
    attempts: int | None = option(
        None, "Fresh agent attempts per item (default: the run's K).", ge=1
    )
    reverify: bool = option(True, "Re-run the agent on every item.")
    solver_lm: str | None = option(None, "Another agent model (cross-solver difficulty).")
    max_searches: int | None = option(None, "Agent budget (default: the run's).", ge=0)
    dup_threshold: float = option(0.92, "Near-duplicate cosine.", gt=0.0, le=1.0)
    shortcut_k: int = option(3, "Shortcut probe: top-k of the question as query.", ge=1)
    ambiguity_min_agree: int = option(2, "Wrong attempts agreeing on a rival answer.", ge=1)
    tag: bool = option(True, "LLM-tag failure causes and reasoning types.")
    max_tagged: int | None = option(None, "Tag at most N rejected seeds.", ge=0)
    strict: bool = option(False, "The filtered copy also needs re-verified difficulty.")
    validation_id: str | None = option(None, "Validation id; re-use it to resume.")
    seed: int = option(0, "Seed of the fresh attempts.")


@dataclass
class Checkers:
    """What the per-item tasks share: the verifier and the tagger (None when not needed)."""

    verifier: Verifier | None
    tagger: Tagger | None
    params: ValidateParams

    @classmethod
    def open(cls, params: ValidateParams, settings: Any, collection: str) -> Checkers:
        verifier = None
        if params.reverify:
            config = build_config(settings, attempts=int(params.attempts or 1),
                                  max_searches=int(params.max_searches or 0))  # fmt: skip
            verifier, _ = runtime.open_verifier(settings, collection, config)
        tagger = Tagger(runtime.role_lm(settings, "judge")) if params.tag else None
        return cls(verifier, tagger, params)


@task(
    **retried(),
    task_run_name="check-{item[id]}",
)
def check_item(item: dict[str, Any], candidate: dict, checkers: Checkers, store: RunStore) -> dict:
    """Fresh attempts and reasoning tags for one accepted item (checkpointed)."""
    rec: dict[str, Any] = {"kind": "item", "id": item["id"], "attempts": None, "reasoning": None}
    if checkers.params.reverify:
        base = stable_int("validate", checkers.params.seed, item["id"], digits=6) * 16
        atts = checkers.verifier(item["question"], [item["answer"]], base)
        rec["attempts"] = [asdict(a) for a in atts]
    if checkers.tagger is not None:
        rec["reasoning"] = checkers.tagger.reasoning_types(candidate).label
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
    items = pl.read_parquet(path).to_dicts()
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
    if params.solver_lm:
        overrides["agent_lm"] = params.solver_lm
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
    checkers = Checkers.open(params, settings, retriever.collection)
    with prompt_exit():  # Ctrl-C / SIGTERM leave at once; checked items are kept
        check_items(items, done, manifest, checkers, vstore)
        tag_rejected_seeds(items, done, manifest, checkers, vstore)
    summary = finalise_validation(vstore, items, done, manifest, retriever, settings, params)
    vstore.mark_latest()
    _publish(summary, vstore, rdir, manifest)
    return summary | {"validation_dir": str(vstore.path.resolve())}


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
    if not (checkers.params.reverify or checkers.params.tag):
        return
    checked = {r["id"] for r in vstore.iter_records() if r["kind"] == "item"}
    by_id = {f"{manifest['run_id']}:{sid}": rs for sid, rs in done.items()}
    for it in items:
        if it["id"] not in checked:
            cand = (by_id.get(it["id"], [{}])[-1].get("detail") or {}).get("candidate") or {}
            try:
                futures.result(check_item.submit(it, cand, checkers, vstore))
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
        key="sage-validation-" + hashlib.sha1(str(vstore.path).encode()).hexdigest()[:10],
        description=f"validation {vstore.run_id} of run {manifest['run_id']}",
    )
    create_markdown_artifact(markdown=(vstore.path / "validation.md").read_text())
    try:
        from flows.reports.html import write_html_report

        write_html_report(rdir)
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
    "reasoning_types": pl.List(pl.String()),
    "keep": pl.Boolean(),
}


def finalise_validation(
    vstore: RunStore,
    items: list[dict],
    done: dict[str, list[dict]],
    manifest: dict[str, Any],
    retriever: Any,
    settings: Any,
    params: ValidateParams,
) -> dict[str, Any]:
    """Deterministic checks plus checkpointed LM results -> every validation artifact."""
    recs = vstore.load_records()
    checks = {r["id"]: r for r in recs if r["kind"] == "item"}
    vectors = (
        embeddings.embed_dense(settings.models_dir, [i["question"] for i in items]) if items else []
    )
    dups = {d.index: d for d in quality.near_duplicates(vectors, params.dup_threshold)}
    by_id = {f"{manifest['run_id']}:{sid}": rs for sid, rs in done.items()}
    rows = []
    for n, it in enumerate(items):
        gen_rounds = by_id.get(it["id"]) or [{}]
        gen_atts = (gen_rounds[-1].get("detail") or {}).get("attempts") or []
        dup = dups.get(n)
        row = item_row(it, checks.get(it["id"], {}), gen_atts, retriever, params)
        row["near_duplicate_of"] = items[dup.of]["id"] if dup else None
        row["duplicate_cosine"] = dup.cosine if dup else None
        row["keep"] = keeps(row, params.strict)
        rows.append(row)
    vstore.write_parquet("validation.parquet", pl.DataFrame(rows, schema=VALIDATION_SCHEMA))
    rejected = {r["seed_id"]: r for r in recs if r["kind"] == "rejected"}
    item_ids = {i["id"] for i in items}
    rej_rows = [
        {k: v for k, v in (rejected.get(sid) or rejected_row(sid, rs)).items() if k != "kind"}
        for sid, rs in sorted(done.items())
        if f"{manifest['run_id']}:{sid}" not in item_ids and rs
    ]
    vstore.write_parquet("rejected.parquet", pl.DataFrame(rej_rows, infer_schema_length=None))
    kept_ids = {r["id"] for r in rows if r["keep"]}
    kept = [i for i in items if i["id"] in kept_ids]
    vstore.write_parquet("dataset.filtered.parquet", pl.DataFrame(kept, schema=ds.DATASET_SCHEMA))
    vstore.write_jsonl("dataset.filtered.jsonl", kept)
    summary = validation_summary(rows, rej_rows, items)
    vstore.write_json("validation.json", summary)
    vstore.write_text("validation.md", validation_markdown(manifest, vstore.run_id, summary))
    return summary


def item_row(
    it: dict, check: dict, gen_attempts: list[dict], retriever: Any, params: ValidateParams
) -> dict[str, Any]:
    """One item's flags: leakage, shortcut, ambiguity and the re-verification verdict."""
    fresh = check.get("attempts")
    atts = [Attempt.from_dict(a) for a in fresh or []]
    best = fewest_searches(atts)
    checked = fresh is not None
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
        "reasoning_types": check.get("reasoning"),
    }


def keeps(row: dict[str, Any], strict: bool) -> bool:
    """Whether an item goes to the filtered copy (``strict``: also re-verified difficulty)."""
    return (
        row["leakage"] is None
        and row["near_duplicate_of"] is None
        and row["ambiguous_rival"] is None
        and row["reverify_pass"] is not False
        and (not strict or row["difficulty_confirmed"] is not False)
    )


def validation_summary(rows: list[dict], rej_rows: list[dict], items: list[dict]) -> dict:
    n = len(rows)
    rv = [r for r in rows if r["reverify_pass"] is not None]
    reasoning = Counter(t for r in rows for t in (r["reasoning_types"] or []))
    return {
        "items": n,
        "kept": sum(r["keep"] for r in rows),
        "flags": {
            "leakage": sum(r["leakage"] is not None for r in rows),
            "shortcut": sum(r["shortcut_rank"] is not None for r in rows),
            "near_duplicate": sum(r["near_duplicate_of"] is not None for r in rows),
            "ambiguous": sum(r["ambiguous_rival"] is not None for r in rows),
            "reverify_failed": sum(r["reverify_pass"] is False for r in rows),
            "difficulty_not_confirmed": sum(r["difficulty_confirmed"] is False for r in rows),
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
    flags = md_table([{"check": k, "flagged": v} for k, v in s["flags"].items()],
                     ["check", "flagged"])  # fmt: skip
    tax = md_table(
        [{"failure": kind, "cause": cause, "count": c}
         for kind, causes in s["failure_taxonomy"].items() for cause, c in causes.items()],
        ["failure", "cause", "count"],
    )  # fmt: skip
    rtypes = ", ".join(f"{k} {v}" for k, v in s["reasoning_types"].items()) or "(not tagged)"
    d = s["diversity"]
    rv = s["reverification"]
    return f"""# validation `{vid}` of run `{manifest["run_id"]}`

{s["items"]} items, {s["kept"]} kept in `dataset.filtered.parquet`.

{flags}
Re-verification: {rv["items"]} items, {rv["pct_pass"]}% still solved,
{rv["pct_difficulty_confirmed"]}% with min searches >= S.

Diversity: {d["distinct_seed_docs"]} distinct seed documents, {d["distinct_answers"]} distinct
answers over {d["items"]} items.

Reasoning types: {rtypes}

## Failure taxonomy of {s["rejected"]} rejected seeds

{tax}"""
