"""What a generation run holds open: retriever, LMs, the SAGE program, the seed documents."""

from __future__ import annotations

import hashlib
import json
import threading
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dspy

from modules.agent import SearchAgent
from modules.attempts import Verifier
from modules.corpus import sample_documents
from modules.errors import SageError
from modules.judge import Judge
from modules.lm import build_lm, lm_config
from modules.program_file import load_program
from modules.retriever import QdrantRetriever, open_retriever
from modules.settings import Settings, load_settings

DOC_CHARS = 2400  # seed document text shown to the generator
ROLES = ("generator", "agent", "judge")


def role_lm(settings: Settings, role: str, in_flight: int = 1) -> dspy.LM:
    """The LM of a role from the settings (``in_flight``: its requests at once). Every flow
    gets its LMs here, so this is also the one place tests plug scripted LMs in."""
    return build_lm(lm_config(settings, role, in_flight))


def configure_lm_cache(settings: Settings) -> Path:
    """DSPy's disk cache under the data dir, so re-runs of identical calls are free."""
    cache_dir = Path(settings.data_dir) / "lm_cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    dspy.configure_cache(
        enable_disk_cache=True, enable_memory_cache=True, disk_cache_dir=str(cache_dir)
    )
    return cache_dir


@dataclass
class Runtime:
    """Opened once per flow run and shared (read-only) by the seed tasks."""

    params: Any
    settings: Settings
    retriever: QdrantRetriever
    program: Any
    collection_version: str
    docs: dict[str, dict[str, str]] = field(default_factory=dict)
    program_hash: str = ""

    @classmethod
    def open(cls, params: Any, settings: Settings, documents: bool = True) -> Runtime:
        """Open the retriever, the LMs and the program (and, unless ``documents`` is False,
        the seed documents: a worker gets each seed's document with the seed)."""
        from modules.sage import Sage

        configure_lm_cache(settings)
        retriever = open_retriever(settings, collection=params.collection, k=3)
        version = retriever.collection
        in_flight = params.concurrency * params.attempt_workers
        lms = {role: role_lm(settings, role, in_flight) for role in ROLES}
        program = Sage(
            retriever,
            generator_lm=lms["generator"],
            agent_lm=lms["agent"],
            judge_lm=lms["judge"],
            max_searches=params.max_searches,
            generator_searches=params.generator_searches,
            keep_unverified=params.keep_unverified,
            attempt_workers=params.attempt_workers,
            judge_min_gold_recall=settings.judge_min_gold_recall,
            answer_source=getattr(params, "answer_source", "seed"),
        )
        if params.program:  # a whole-Sage file, or an optimized agent/generator/reviser
            load_program(program, Path(params.program))
        rt = cls(params, settings, retriever, program, version)
        if documents and isinstance(retriever, QdrantRetriever):
            rt.docs = load_documents(retriever.store, version)
        elif documents:  # a Search-R1 server: seeds from its corpus file
            rt.docs = sample_documents(params.corpus, params.planned_seeds(), params.seed)
        rt.program_hash = program_hash(program)
        return rt

    def doc_ids(self) -> list[str]:
        return sorted(self.docs)

    def document(self, doc_id: str) -> str:
        doc = self.docs.get(doc_id)
        if doc is None:
            raise SageError(f"seed document {doc_id!r} is not in {self.collection_version}")
        text = f"{doc['title']}\n{doc['text']}" if doc["title"] else doc["text"]
        return text[:DOC_CHARS]

    def run_seed(
        self,
        seed: dict[str, Any],
        done_rounds: list[dict[str, Any]],
        on_round: Callable[[dict[str, Any]], None],
    ) -> None:
        """Run the SAGE loop for one seed, resuming after its checkpointed rounds."""
        from modules.sage import RoundResult

        resume = [RoundResult.from_dict(r["detail"]) for r in done_rounds]

        def hook(rr: Any) -> None:
            on_round(round_record(seed, rr, self.params))

        self.program(
            document=seed.get("document") or self.document(seed["doc_id"]),
            target_steps=seed["target_steps"],
            attempts=self.params.attempts,
            rounds=self.params.rounds,
            strategy=self.params.strategy,
            on_round=hook,
            resume_from=resume or None,
            seed=f"{self.params.seed}:{seed['seed_id']}",
            doc_id=seed["doc_id"],
            answer_type=seed.get("answer_type", "entity"),  # plans before answer types: entity
        )


_RUNTIMES: dict[str, Runtime] = {}
_RUNTIMES_LOCK = threading.Lock()


def _job_key(job: Any) -> str:
    blob = json.dumps([job.run_id, job.params, job.settings_overrides, job.collection],
                      sort_keys=True, default=str)  # fmt: skip
    return hashlib.sha256(blob.encode()).hexdigest()


def register_runtime(job: Any, runtime: Runtime) -> None:
    """Seed tasks of ``job`` in this process use ``runtime`` (the flow's own)."""
    with _RUNTIMES_LOCK:
        _RUNTIMES[_job_key(job)] = runtime


def runtime_for(job: Any) -> Runtime:
    """This process's Runtime for a seed job: the flow's, or opened here once (a worker)."""
    from flows.generate import GenerateParams

    key = _job_key(job)
    with _RUNTIMES_LOCK:
        if key not in _RUNTIMES:
            params = GenerateParams(**{**job.params, "collection": job.collection})
            settings = load_settings(**job.settings_overrides)
            _RUNTIMES[key] = Runtime.open(params, settings, documents=False)
        return _RUNTIMES[key]


def open_verifier(
    settings: Settings,
    collection: str,
    max_searches: int,
    attempts: int = 1,
    temperature: float | None = 0.7,
    workers: int = 1,
    force_answer: bool = False,
) -> tuple[Verifier, str]:
    """The search agent and judge that verify questions on ``collection`` (evaluation,
    re-verification, optimizer metrics) and the collection's version. ``workers``: attempts
    run at once, which also sizes the local model's slots; ``force_answer``: ask for a best
    guess when the budget is spent, for reports."""
    configure_lm_cache(settings)
    retriever = open_retriever(settings, collection=collection, k=3)
    version = retriever.collection
    agent = SearchAgent(
        retriever,
        role_lm(settings, "agent", workers),
        max_searches=max_searches,
        force_answer=force_answer,
    )
    judge = Judge(
        role_lm(settings, "judge", workers), min_gold_recall=settings.judge_min_gold_recall
    )
    return Verifier(agent, judge, attempts, temperature, workers), version


def round_record(seed: dict[str, Any], rr: Any, params: Any) -> dict[str, Any]:
    """One checkpoint line: the flat candidate row plus the full round result."""
    d = rr.to_dict()
    return {
        "doc_id": seed["doc_id"],
        "target_steps": seed["target_steps"],
        "strategy": params.strategy,
        **rr.summary(),
        "detail": d,
    }


def load_documents(store: Any, collection: str) -> dict[str, dict[str, str]]:
    """Documents re-assembled from their passages (payload only, in passage order)."""
    parts: dict[str, list[tuple[str, str, str]]] = defaultdict(list)
    for batch in store.scroll(collection, payload=["pid", "doc_id", "title", "text"]):
        for p in batch:
            pl = p.payload or {}
            parts[str(pl.get("doc_id"))].append(
                (str(pl.get("pid", "")), str(pl.get("title", "")), str(pl.get("text", "")))
            )
    docs = {}
    for doc_id, ps in parts.items():
        ps.sort(key=lambda t: _passage_order(t[0]))
        docs[doc_id] = {"title": ps[0][1], "text": " ".join(t[2] for t in ps)}
    return docs


def _passage_order(pid: str) -> tuple[int, str]:
    tail = pid.rsplit("#", 1)[-1].split("-", 1)[0]
    return (int(tail), pid) if tail.isdigit() else (0, pid)


def program_hash(program: Any) -> str:
    """Hash of the program's prompts and demos (what an optimizer changes)."""
    state = program.dump_state() if hasattr(program, "dump_state") else {}
    blob = json.dumps(state, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]
