"""A validation's tables from a run's rounds and the checkpointed checks: one row per dataset
item with its flags (``validation.parquet``), the failure rows of rejected seeds, the
filtered copy and the run's flagged dataset, and the summary (``validation.json``). The
flow (flows/validate.py) runs the checks; its markdown is flows/reports/validation.py's."""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from flows.runs import finalise as ds
from flows.runs.records import RoundRecord
from flows.runs.store import RunStore
from modules.checks import flags, quality
from modules.errors import SageError
from modules.programs.attempts import Attempt, fewest_searches, verdict
from modules.programs.status import Status


def solver_name(model: str) -> str:
    """A column-safe name of a solver model ("openai/gpt-4o-mini" -> "openai_gpt_4o_mini")."""
    return re.sub(r"\W+", "_", model).strip("_").lower() or "solver"


@dataclass
class CheckedRun:
    """The run a validation checks: its dataset items, each seed's rounds and its manifest;
    the last round of each item and the rejected seeds (those not in the dataset), found
    once."""

    items: list[dict[str, Any]]
    done: dict[str, list[RoundRecord]]
    manifest: dict[str, Any]
    last_round: dict[str, RoundRecord] = field(init=False)
    rejected: list[tuple[str, list[RoundRecord]]] = field(init=False)

    def __post_init__(self) -> None:
        self.last_round = {rs[-1].item_id: rs[-1] for rs in self.done.values() if rs}
        ids = {i["id"] for i in self.items}
        self.rejected = [
            (sid, rs) for sid, rs in sorted(self.done.items()) if rs and rs[-1].item_id not in ids
        ]

    @classmethod
    def read(cls, run_dir: Path) -> CheckedRun:
        store = RunStore(run_dir.parent, run_dir.name)
        manifest = store.read_manifest()
        if manifest.get("kind") == "evaluation":
            raise SageError(f"{run_dir}: an evaluation, not a generation run")
        path = run_dir / "dataset.parquet"
        if not path.exists():
            raise SageError(f"{path}: missing (was the run finalised? re-run `sage generate`)")
        frame = pl.read_parquet(path)
        items = frame.select([c for c in ds.DATASET_SCHEMA if c in frame.columns]).to_dicts()
        return cls(items, store.rounds(), manifest)


def last_judged(rounds: list[RoundRecord]) -> RoundRecord | None:
    judged = [r for r in rounds if r.judged]
    return judged[-1] if judged else None


def rejected_row(seed_id: str, rounds: list[RoundRecord]) -> dict[str, Any]:
    last = rounds[-1]
    judged = last_judged(rounds)
    if judged is None:
        kind = Status.GENERATION_FAILED
    else:
        kind = Status.INCORRECT if fewest_searches(judged.judged) is None else Status.TOO_EASY
    src = judged or last
    return {
        "seed_id": seed_id,
        "final_status": last.status,
        "rounds": len(rounds),
        "kind_of_failure": kind,
        "question": src.question,
        "answer": src.answer,
        "target_steps": last.target_steps,
        "cause": kind if kind == Status.GENERATION_FAILED else None,
        "explanation": last.error,
    }


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


@dataclass(frozen=True)
class RowChecks:
    """What every item row is checked with: the shortcut probe's retriever and k, the
    ambiguity rule, the solvers' column names and the flags that drop an item."""

    retriever: Any
    shortcut_k: int
    ambiguity_min_agree: int
    solvers: list[str]
    dropped: list[str]


def validation_rows(
    run: CheckedRun, checks: dict[str, dict], dups: dict, contam: list, rc: RowChecks
) -> list[dict[str, Any]]:
    """One row per dataset item: its checks, near-duplicate, contamination, solver columns,
    flags and whether the filtered copy keeps it."""
    rows = []
    for n, it in enumerate(run.items):
        last = run.last_round.get(it["id"])
        gen_atts = [asdict(a) for a in last.judged] if last else []
        check = checks.get(it["id"], {})
        row = item_row(it, check, gen_atts, rc)
        row |= dups.get(n, {"near_duplicate_of": None, "duplicate_cosine": None})
        row |= contamination_columns(contam[n]) | solver_columns(check, rc.solvers)
        row |= flag_columns(row, it, rc.solvers)
        row["keep"] = flags.kept(row, rc.dropped)
        rows.append(row)
    return rows


def rejected_rows(recs: list[dict], run: CheckedRun) -> list[dict]:
    tagged = {r["seed_id"]: r for r in recs if r["kind"] == "rejected"}
    return [
        {k: v for k, v in (tagged.get(sid) or rejected_row(sid, rs)).items() if k != "kind"}
        for sid, rs in run.rejected
    ]


def write_datasets(vstore: RunStore, items: list[dict], rows: list[dict]) -> None:
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


def solver_columns(check: dict, solvers: list[str]) -> dict[str, Any]:
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
    return {
        "items": len(calls),
        "lm_calls": sum(calls),
        "lm_calls_per_item": round(sum(calls) / len(calls), 2) if calls else None,
    }


def item_row(it: dict, check: dict, gen_attempts: list[dict], rc: RowChecks) -> dict[str, Any]:
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
            rc.retriever, it["question"], it["answer"], rc.shortcut_k
        ),
        "ambiguous_rival": quality.ambiguity(
            list(gen_attempts) + list(fresh or []), rc.ambiguity_min_agree
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
        },
        "rejected": len(rej_rows),
    }
