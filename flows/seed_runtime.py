"""What the generate flow's seed tasks hold open, per process: the SAGE program on the run's
collection, and the seed documents (the flow's process only). A seed task gets a
``SeedJob`` (plain data: the run's resolved ``SageConfig`` among it) and runs in any
process, a thread of the flow or a Dask worker."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from flows.engine.runtime import load_documents, open_program, program_hash
from flows.runs.records import RoundRecord
from modules.config import SageConfig
from modules.errors import SageError
from modules.index.corpus import sample_documents
from modules.index.retriever import QdrantRetriever
from modules.programs.sage import RoundResult, Sage
from modules.settings import load_settings


@dataclass(frozen=True)
class SeedJob:
    """What a seed task needs besides its seed, as plain data: it runs in any process
    (a thread of the flow, a Dask worker) and opens its services from a per-process cache."""

    runs_dir: str
    run_id: str
    config: SageConfig
    settings_overrides: dict[str, Any]  # secrets come from each process's environment
    collection: str  # the exact collection version (or retriever) the run searches
    program: str | None = None  # an optimized program file
    in_flight: int = 1  # LM requests at once (seeds × attempts): the local model's slots
    plan_seed: int = 0  # the run's --seed: with the seed id, each round's rollout ids


@dataclass
class Runtime:
    """Opened once per process and shared (read-only) by the seed tasks in it."""

    job: SeedJob
    program: Sage
    collection_version: str
    docs: dict[str, dict[str, str]] = field(default_factory=dict)
    program_hash: str = ""

    @classmethod
    def open(cls, job: SeedJob, settings: Any | None = None) -> Runtime:
        """The program with each role's LM on the job's collection (no seed documents)."""
        settings = settings or load_settings(**job.settings_overrides)
        retriever, program = open_program(
            settings, job.config, job.collection, job.program, job.in_flight
        )
        return cls(job, program, retriever.collection, program_hash=program_hash(program))

    def load_seed_documents(self, corpus: str | None, n: int, seed: int) -> None:
        """The documents seeds come from: the index's, or a Search-R1 corpus file's sample."""
        retriever = self.program.generator.retriever
        if isinstance(retriever, QdrantRetriever):
            self.docs = load_documents(retriever.store, self.collection_version)
        else:
            self.docs = sample_documents(corpus, n, seed)

    def doc_ids(self) -> list[str]:
        return sorted(self.docs)

    def document(self, doc_id: str) -> str:
        """A seed document's text as the generator may see it (``doc_chars``)."""
        doc = self.docs.get(doc_id)
        if doc is None:
            raise SageError(f"seed document {doc_id!r} is not in {self.collection_version}")
        text = f"{doc['title']}\n{doc['text']}" if doc["title"] else doc["text"]
        return text[: self.job.config.doc_chars]

    def run_seed(
        self,
        seed: dict[str, Any],
        done_rounds: list[RoundRecord],
        on_round: Callable[[dict[str, Any]], None],
    ) -> None:
        """Run the SAGE loop for one seed, resuming after its checkpointed rounds."""
        resume = [r.detail for r in done_rounds if r.detail is not None]
        strategy = self.job.config.strategy
        self.program(
            document=seed.get("document") or self.document(seed["doc_id"]),
            target_steps=seed["target_steps"],
            on_round=lambda rr: on_round(round_record(seed, rr, strategy)),
            resume_from=resume or None,
            seed=f"{self.job.plan_seed}:{seed['seed_id']}",
            doc_id=seed["doc_id"],
            answer_type=seed.get("answer_type", "entity"),  # plans before answer types: entity
        )


_RUNTIMES: dict[str, Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def _job_key(job: SeedJob) -> str:
    blob = json.dumps(
        [job.run_id, job.config.record(), job.settings_overrides, job.collection, job.program],
        sort_keys=True,
        default=str,
    )
    return hashlib.sha256(blob.encode()).hexdigest()


def register_runtime(job: SeedJob, runtime: Runtime) -> None:
    """Seed tasks of ``job`` in this process use ``runtime`` (the flow's own)."""
    with _RUNTIMES_LOCK:
        _RUNTIMES[_job_key(job)] = runtime


def runtime_for(job: SeedJob) -> Runtime:
    """This process's Runtime for a seed job: the flow's, or opened here once (a worker)."""
    key = _job_key(job)
    with _RUNTIMES_LOCK:
        if key not in _RUNTIMES:
            _RUNTIMES[key] = Runtime.open(job)
        return _RUNTIMES[key]


def round_record(seed: dict[str, Any], rr: RoundResult, strategy: str) -> dict[str, Any]:
    """One checkpoint line: the flat candidate row plus the full round result."""
    return {
        "doc_id": seed["doc_id"],
        "target_steps": seed["target_steps"],
        "strategy": strategy,
        **rr.summary(),
        "detail": rr.to_dict(),
    }
