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
from typing import Any

import polars as pl
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.tasks import exponential_backoff

from flows import dataset as ds
from flows import futures
from flows.interrupts import prompt_exit
from flows.retrying import is_transient
from flows.run_store import RunStore, resolve_run_dir
from flows.runtime import open_solver
from modules import embeddings, quality, store
from modules.errors import SageError
from modules.lm import build_lm, lm_config
from modules.retriever import QdrantRetriever, open_retriever
from modules.settings import load_settings
from modules.solver import run_attempts
from modules.taxonomy import Tagger

RESUME_KEYS = ("attempts", "reverify", "solver_lm", "max_searches", "tag", "seed")


@dataclass
class ValidateParams:
    run_dir: str
    attempts: int | None = None  # fresh attempts per item; default: the run's K
    reverify: bool = True
    solver_lm: str | None = None  # cross-solver difficulty: another agent model
    max_searches: int | None = None  # default: the run's
    dup_threshold: float = 0.92
    shortcut_k: int = 3
    ambiguity_min_agree: int = 2
    tag: bool = True
    max_tagged: int | None = None  # cap on LLM-tagged rejected seeds
    strict: bool = False  # filtered copy also needs re-verified difficulty (min searches >= S)
    validation_id: str | None = None
    seed: int = 0

    def validate(self) -> None:
        if self.attempts is not None and self.attempts < 1:
            raise SageError("--attempts must be >= 1")
        if not 0.0 < self.dup_threshold <= 1.0:
            raise SageError("--dup-threshold must be in (0, 1]")
        if self.shortcut_k < 1 or self.ambiguity_min_agree < 1:
            raise SageError("--shortcut-k and --ambiguity-min-agree must be >= 1")


@dataclass
class Tools:
    """What the per-item tasks share: agent, judge and tagger (None when not needed)."""

    agent: Any
    judge: Any
    tagger: Tagger | None
    params: ValidateParams
    k: int


def _base(seed: int, key: str) -> int:
    return int(hashlib.sha256(f"validate:{seed}:{key}".encode()).hexdigest()[:6], 16) * 16


@task(
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=is_transient,
    cache_policy=NO_CACHE,
    task_run_name="check-{item[id]}",
)
def check_item(item: dict[str, Any], candidate: dict, tools: Tools, store: RunStore) -> dict:
    """Fresh attempts and reasoning tags for one accepted item (checkpointed)."""
    rec: dict[str, Any] = {"kind": "item", "id": item["id"], "attempts": None, "reasoning": None}
    if tools.params.reverify:
        atts = run_attempts(
            tools.agent, tools.judge, item["question"], [item["answer"]], tools.k,
            _base(tools.params.seed, item["id"]), 0.7,
        )  # fmt: skip
        rec["attempts"] = [asdict(a) for a in atts]
    if tools.tagger is not None:
        rec["reasoning"] = tools.tagger.reasoning_types(candidate).label
    store.append_round(rec)
    return rec


@task(
    retries=3,
    retry_delay_seconds=exponential_backoff(backoff_factor=2),
    retry_condition_fn=is_transient,
    cache_policy=NO_CACHE,
    task_run_name="tag-{seed_id}",
)
def tag_rejected(seed_id: str, rounds: list[dict], tools: Tools, store: RunStore) -> dict:
    """Failure cause of a rejected seed, from its last judged round (checkpointed)."""
    rec = rejected_row(seed_id, rounds)
    if rec["kind_of_failure"] in ("too_easy", "incorrect") and tools.tagger is not None:
        last = _last_judged(rounds)
        detail = last["detail"]
        atts = detail.get("attempts") or []
        best = (
            min((a for a in atts if a["correct"]), key=lambda a: a["n_searches"])
            if rec["kind_of_failure"] == "too_easy"
            else atts[0]
        )
        tag = tools.tagger.failure(
            rec["kind_of_failure"], detail.get("candidate") or {}, last["target_steps"], best
        )
        rec |= {"cause": tag.label, "explanation": tag.explanation}
    store.append_round({"kind": "rejected", **rec})
    return rec


def _last_judged(rounds: list[dict]) -> dict | None:
    judged = [r for r in rounds if (r.get("detail") or {}).get("attempts")]
    return judged[-1] if judged else None


def rejected_row(seed_id: str, rounds: list[dict]) -> dict[str, Any]:
    last = rounds[-1]
    judged = _last_judged(rounds)
    if judged is None:
        kind = "generation_failed"
    else:
        kind = (
            "too_easy" if any(a["correct"] for a in judged["detail"]["attempts"]) else "incorrect"
        )
    src = judged or last
    return {
        "seed_id": seed_id,
        "final_status": last["status"],
        "rounds": len(rounds),
        "kind_of_failure": kind,
        "question": src.get("question"),
        "answer": src.get("answer"),
        "target_steps": last["target_steps"],
        "cause": kind if kind == "generation_failed" else None,
        "explanation": (last.get("detail") or {}).get("error") or "",
    }


def _items_and_rounds(run_dir: Path) -> tuple[list[dict], dict[str, list[dict]], dict]:
    store = RunStore(run_dir.parent, run_dir.name)
    manifest = store.read_manifest()
    if manifest.get("kind") == "evaluation":
        raise SageError(f"{run_dir}: an evaluation, not a generation run")
    done = ds.group_rounds(store.load_rounds())
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


@flow(name="validate-run", log_prints=True, validate_parameters=False)
def validate_run(
    run_dir: str,
    attempts: int | None = None,
    reverify: bool = True,
    solver_lm: str | None = None,
    max_searches: int | None = None,
    dup_threshold: float = 0.92,
    shortcut_k: int = 3,
    ambiguity_min_agree: int = 2,
    tag: bool = True,
    max_tagged: int | None = None,
    strict: bool = False,
    validation_id: str | None = None,
    seed: int = 0,
    settings_overrides: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Validate a run's dataset; write a versioned validation with a filtered copy."""
    params = ValidateParams(
        run_dir=run_dir, attempts=attempts, reverify=reverify, solver_lm=solver_lm,
        max_searches=max_searches, dup_threshold=dup_threshold, shortcut_k=shortcut_k,
        ambiguity_min_agree=ambiguity_min_agree, tag=tag, max_tagged=max_tagged,
        strict=strict, validation_id=validation_id, seed=seed,
    )  # fmt: skip
    params.validate()
    logger = get_run_logger()
    rdir = resolve_run_dir(Path(run_dir))
    items, done, manifest = _items_and_rounds(rdir)
    overrides = dict(settings_overrides or {})
    if solver_lm:
        overrides["agent_lm"] = solver_lm
    settings = load_settings(**overrides)
    rp = manifest["params"]
    k = params.attempts or int(rp["attempts"])
    max_s = params.max_searches if params.max_searches is not None else int(rp["max_searches"])
    retriever = open_retriever(settings, collection=rp["collection"], k=params.shortcut_k)
    if isinstance(retriever, QdrantRetriever):  # the exact version the run searched
        retriever.collection = _collection(retriever.store, manifest, logger)
    collection = retriever.collection
    vid = params.validation_id or dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    vstore = RunStore(rdir / "validation", vid)
    vstore.start(
        {
            "kind": "validation",
            "run_id": vid,
            "of_run": manifest["run_id"],
            "created": dt.datetime.now(dt.UTC).isoformat(),
            "params": asdict(params) | {"attempts": k, "max_searches": max_s},
            "collection_version": collection,
            "models": {"agent": settings.agent_lm_name, "judge": settings.judge_lm_name},
        },
        RESUME_KEYS,
    )
    agent = judge = None
    if params.reverify:
        agent, judge, _ = open_solver(settings, collection, max_s)
    tagger = Tagger(build_lm(lm_config(settings, "judge"))) if params.tag else None
    tools = Tools(agent, judge, tagger, params, k)
    checked = {r["id"] for r in vstore.load_rounds() if r["kind"] == "item"}
    tagged = {r["seed_id"] for r in vstore.load_rounds() if r["kind"] == "rejected"}
    by_id = {f"{manifest['run_id']}:{sid}": rs for sid, rs in done.items()}
    with prompt_exit():  # Ctrl-C / SIGTERM leave at once; checked items are kept
        for it in items:
            if it["id"] not in checked and (params.reverify or params.tag):
                cand = (by_id.get(it["id"], [{}])[-1].get("detail") or {}).get("candidate") or {}
                try:
                    futures.result(check_item.submit(it, cand, tools, vstore))
                except Exception as exc:
                    logger.error("item %s failed: %s", it["id"], exc)
        accepted_ids = {i["id"] for i in items}
        rejected = [
            (sid, rs) for sid, rs in sorted(done.items())
            if f"{manifest['run_id']}:{sid}" not in accepted_ids and rs
        ]  # fmt: skip
        budget = params.max_tagged if params.max_tagged is not None else len(rejected)
        for sid, rs in rejected[:budget]:
            if sid not in tagged:
                try:
                    futures.result(tag_rejected.submit(sid, rs, tools, vstore))
                except Exception as exc:
                    logger.error("tagging seed %s failed: %s", sid, exc)
    summary = finalise_validation(vstore, items, done, manifest, retriever, settings, params)
    vstore.mark_latest()
    create_table_artifact(
        table=[{"check": k, "count": v} for k, v in summary["flags"].items()],
        key="sage-validation-" + hashlib.sha1(f"{rdir}:{vid}".encode()).hexdigest()[:10],
        description=f"validation {vid} of run {manifest['run_id']}",
    )
    create_markdown_artifact(markdown=(vstore.path / "validation.md").read_text())
    try:
        from flows.html_report import write_html_report

        write_html_report(rdir)
    except Exception as exc:  # the report is a convenience: never fail validation for it
        logger.warning("HTML report not written: %s", exc)
    return summary | {"validation_dir": str(vstore.path.resolve())}


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
    recs = vstore.load_rounds()
    checks = {r["id"]: r for r in recs if r["kind"] == "item"}
    rejected = {r["seed_id"]: r for r in recs if r["kind"] == "rejected"}
    vectors = (
        embeddings.embed_dense(settings.models_dir, [i["question"] for i in items]) if items else []
    )
    dups = {d.index: d for d in quality.near_duplicates(vectors, params.dup_threshold)}
    by_id = {f"{manifest['run_id']}:{sid}": rs for sid, rs in done.items()}
    rows = []
    for n, it in enumerate(items):
        chk = checks.get(it["id"], {})
        fresh = chk.get("attempts")
        gen_atts = ((by_id.get(it["id"]) or [{}])[-1].get("detail") or {}).get("attempts") or []
        pooled = list(gen_atts) + list(fresh or [])
        correct = [a for a in fresh or [] if a["correct"]]
        dup = dups.get(n)
        min_s = min((a["n_searches"] for a in correct), default=None)
        row = {
            "id": it["id"],
            "question": it["question"],
            "answer": it["answer"],
            "target_steps": it["target_steps"],
            "leakage": quality.leakage(it["question"], it["answer"]),
            "shortcut_rank": quality.shortcut_probe(
                retriever, it["question"], it["answer"], params.shortcut_k
            ),
            "near_duplicate_of": items[dup.of]["id"] if dup else None,
            "duplicate_cosine": dup.cosine if dup else None,
            "ambiguous_rival": quality.ambiguity(pooled, params.ambiguity_min_agree),
            "reverify_attempts": len(fresh) if fresh is not None else None,
            "reverify_correct": len(correct) if fresh is not None else None,
            "reverify_pass": bool(correct) if fresh is not None else None,
            "reverify_min_searches": min_s,
            "difficulty_confirmed": (
                (min_s is not None and min_s >= it["target_steps"]) if fresh is not None else None
            ),
            "reasoning_types": chk.get("reasoning"),
        }
        row["keep"] = (
            row["leakage"] is None
            and row["near_duplicate_of"] is None
            and row["ambiguous_rival"] is None
            and row["reverify_pass"] is not False
            and (not params.strict or row["difficulty_confirmed"] is not False)
        )
        rows.append(row)
    vdf = pl.DataFrame(rows, schema=VALIDATION_SCHEMA)
    vstore.write_parquet("validation.parquet", vdf)
    rej_rows = [
        rejected.get(sid) or rejected_row(sid, rs)
        for sid, rs in sorted(done.items())
        if f"{manifest['run_id']}:{sid}" not in {i["id"] for i in items} and rs
    ]
    rej_rows = [{k: v for k, v in r.items() if k != "kind"} for r in rej_rows]
    vstore.write_parquet("rejected.parquet", pl.DataFrame(rej_rows, infer_schema_length=None))
    kept_ids = {r["id"] for r in rows if r["keep"]}
    kept = [i for i in items if i["id"] in kept_ids]
    vstore.write_parquet("dataset.filtered.parquet", pl.DataFrame(kept, schema=ds.DATASET_SCHEMA))
    vstore.write_jsonl("dataset.filtered.jsonl", kept)
    summary = validation_summary(rows, rej_rows, items)
    vstore.write_json("validation.json", summary)
    vstore.write_text("validation.md", validation_markdown(manifest, vstore.run_id, summary))
    return summary


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
            for kind in ("too_easy", "incorrect", "generation_failed")
        },  # fmt: skip
        "rejected": len(rej_rows),
    }


def validation_markdown(manifest: dict[str, Any], vid: str, s: dict[str, Any]) -> str:
    flags = "\n".join(f"| {k} | {v} |" for k, v in s["flags"].items())
    tax = "\n".join(
        f"| {kind} | {cause} | {c} |"
        for kind, causes in s["failure_taxonomy"].items()
        for cause, c in causes.items()
    )
    rtypes = ", ".join(f"{k} {v}" for k, v in s["reasoning_types"].items()) or "(not tagged)"
    d = s["diversity"]
    rv = s["reverification"]
    return f"""# validation `{vid}` of run `{manifest["run_id"]}`

{s["items"]} items, {s["kept"]} kept in `dataset.filtered.parquet`.

| check | flagged |
|---|---|
{flags}

Re-verification: {rv["items"]} items, {rv["pct_pass"]}% still solved,
{rv["pct_difficulty_confirmed"]}% with min searches >= S.

Diversity: {d["distinct_seed_docs"]} distinct seed documents, {d["distinct_answers"]} distinct
answers over {d["items"]} items.

Reasoning types: {rtypes}

## Failure taxonomy of {s["rejected"]} rejected seeds

| failure | cause | count |
|---|---|---|
{tax}
"""
