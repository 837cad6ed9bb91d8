"""Training data for `sage optimize`, from previous runs, and its seeded train/dev split.

- agent: the accepted items of each run (its dataset), as questions with gold answers, and
  any QA sets given (HotpotQA, MuSiQue, plain);
- generator: each seed's first round, as (seed document, target S);
- reviser: every checkpointed round whose pair failed verification (too easy or incorrect),
  with what the reviser sees in a run (pair, generator trace, notes, best attempt).

Seed documents come from the checkpoints themselves (the generator's note P1).
"""

from __future__ import annotations

import random
from dataclasses import asdict
from pathlib import Path
from typing import Any

import dspy

from flows.data.qa_sets import load_qa, load_sage
from flows.runs.records import RoundRecord
from flows.runs.store import RunStore, resolve_run_dir
from modules.errors import SageError
from modules.programs.attempts import best_attempt, verdict
from modules.programs.optimization import rollout_of
from modules.programs.status import Status

INPUTS = {
    "agent": ("question", "rollout"),
    "generator": ("document", "target_steps", "doc_id", "rollout"),
    "reviser": (
        "document",
        "target_steps",
        "failure",
        "candidate",
        "generator_trace",
        "notes",
        "best_attempt",
        "rollout",
    ),
}


def open_runs(run_dirs: list[str | Path]) -> list[RunStore]:
    """The previous runs, as stores (each must be a sage generation run)."""
    if not run_dirs:
        raise SageError("no runs given: pass previous run directories with --runs")
    stores = []
    for d in run_dirs:
        p = resolve_run_dir(Path(d))
        store = RunStore(p.parent, p.name)
        if store.read_manifest().get("kind", "generation") != "generation":
            raise SageError(f"{d}: not a generation run (an evaluation or validation run?)")
        stores.append(store)
    return stores


def runs_collection(stores: list[RunStore]) -> str:
    """The collection the runs were generated on (they must agree unless --collection)."""
    names = {s.read_manifest().get("params", {}).get("collection") for s in stores}
    names.discard(None)
    if len(names) != 1:
        found = ", ".join(sorted(map(str, names))) or "none recorded"
        raise SageError(f"the runs use different or unknown collections ({found}): --collection")
    return names.pop()


def _example(which: str, key: str, **fields: Any) -> dspy.Example:
    return dspy.Example(id=key, rollout=rollout_of(key), **fields).with_inputs(*INPUTS[which])


def _document(rec: RoundRecord) -> str | None:
    notes = rec.notes
    return str(notes[0]["text"]) if notes and notes[0].get("text") else None


def agent_examples(store: RunStore) -> list[dspy.Example]:
    p = store.path
    if not ((p / "dataset.parquet").exists() or (p / "dataset.jsonl").exists()):
        return []
    return [
        _example("agent", it.id, question=it.question, answers=it.answers) for it in load_sage(p)
    ]


def generator_examples(store: RunStore) -> list[dspy.Example]:
    out = []
    for sid, rounds in store.rounds().items():
        first = rounds[0]
        doc = _document(first)
        if doc is not None:
            out.append(
                _example(
                    "generator",
                    f"{store.run_id}:{sid}",
                    document=doc,
                    target_steps=int(first.target_steps),
                    doc_id=str(first.doc_id),
                )
            )
    return out


def qa_examples(paths: list[str], fmt: str) -> list[dspy.Example]:
    """Agent examples from QA sets (HotpotQA, MuSiQue, plain or sage), ids prefixed by file."""
    out = []
    for path in paths:
        stem = Path(path).stem
        for it in load_qa(path, fmt):
            key = f"{stem}:{it.id}"
            out.append(_example("agent", key, question=it.question, answers=it.answers))
    return out


def reviser_examples(store: RunStore) -> list[dspy.Example]:
    out = []
    for sid, rounds in store.rounds().items():
        for rec in rounds:
            atts, doc, s = rec.judged, _document(rec), int(rec.target_steps)
            if not rec.candidate or not atts or doc is None or rec.detail is None:
                continue
            failure = verdict(atts, s)
            if failure == Status.ACCEPTED:
                continue
            key = f"{store.run_id}:{sid}:r{rec.round}"
            best = best_attempt(atts, random.Random(key))
            out.append(
                _example(
                    "reviser",
                    key,
                    document=doc,
                    target_steps=s,
                    failure=failure,
                    candidate=rec.candidate,
                    generator_trace=rec.detail.generator_trace or [],
                    notes=rec.notes,
                    best_attempt=asdict(best) if best else None,
                )
            )
    return out


BUILDERS = {"agent": agent_examples, "generator": generator_examples, "reviser": reviser_examples}


def collect_examples(which: str, stores: list[RunStore]) -> list[dspy.Example]:
    """Every usable example of the runs for ``which`` module, sorted by id, duplicates dropped."""
    seen: dict[str, dspy.Example] = {}
    for store in stores:
        for ex in BUILDERS[which](store):
            seen.setdefault(ex.id, ex)
    return [seen[k] for k in sorted(seen)]


def split(
    examples: list[dspy.Example],
    dev_frac: float,
    seed: int,
    max_train: int | None = None,
    max_dev: int | None = None,
    what: str = "items",
) -> tuple[list[dspy.Example], list[dspy.Example]]:
    """A seeded shuffle, then dev = round(n * dev_frac) items (at least 1), train = the rest."""
    n = len(examples)
    if n < 2:
        raise SageError(
            f"only {n} usable {what} in the runs: need at least 2 for a train/dev split"
        )
    order = list(examples)
    random.Random(seed).shuffle(order)
    n_dev = min(n - 1, max(1, round(n * dev_frac)))
    dev, train = order[:n_dev], order[n_dev:]
    return train[:max_train] if max_train else train, dev[:max_dev] if max_dev else dev
