"""What a flow opens: each role's LM, the SAGE program on a retriever, the verifier (agent
and judge), the LM cache, and a collection's documents."""

from __future__ import annotations

import functools
import hashlib
import json
from collections import defaultdict
from pathlib import Path
from typing import Any

import dspy
from diskcache import FanoutCache
from dspy.clients import DISK_CACHE_LIMIT

from flows.data import BUNDLED_PROGRAM
from modules.config import LM_ROLES as ROLES
from modules.config import SageConfig
from modules.index.passages import Retriever
from modules.index.retriever import open_retriever
from modules.llm.lm import build_lm, lm_config
from modules.programs.agent import SearchAgent
from modules.programs.attempts import Verifier
from modules.programs.judge import Judge
from modules.programs.program_file import load_program
from modules.programs.sage import Sage, SageLMs
from modules.settings import Settings


def role_lm(settings: Settings, role: str, in_flight: int = 1) -> dspy.LM:
    """The LM of a role from the settings (``in_flight``: its requests at once). Every flow
    gets its LMs here, so this is also the one place tests plug scripted LMs in."""
    return build_lm(lm_config(settings, role, in_flight))


# LM responses DSPy keeps in memory in front of its disk cache: its default (1,000,000)
# grows all night (only the judge caches: one entry per distinct verdict asked); the disk
# cache still holds them all
MEMORY_CACHE_ENTRIES = 4096
# DSPy's disk tier is a 16-shard diskcache.FanoutCache, and diskcache opens one SQLite
# connection per thread per shard, each with a 32 MB page cache and a 64 MB map of its
# file: the seeds' threads opened them one by one all night (RSS grew ~8 KB per LM call;
# 32 threads reading a 6 MB cache held 273 MB, 128 threads 1,086 MB). One shard and small
# per-connection caches (the OS keeps the file's pages) hold 18 and 72 MB (docs/BENCHMARKS.md).
DISK_SHARDS = 1
SQLITE_CACHE_PAGES = 32  # per connection (4 KB pages)


@functools.cache
def _disk_tier(path: Path) -> FanoutCache:
    """The LM cache's disk tier at ``path``: one per process (each thread's connection is
    kept by the object, so a second object would open them all again)."""
    return FanoutCache(
        str(path),
        shards=DISK_SHARDS,
        timeout=10,
        size_limit=DISK_CACHE_LIMIT,
        sqlite_cache_size=SQLITE_CACHE_PAGES,
        sqlite_mmap_size=0,
    )


def configure_lm_cache(settings: Settings) -> Path:
    """DSPy's LM cache: its bounded in-memory tier (``MEMORY_CACHE_ENTRIES``) in front of a
    disk tier under the data dir, so re-runs of identical calls are free, whose memory is
    bounded by the threads, not by the calls made (``DISK_SHARDS``)."""
    cache_dir = Path(settings.data_dir) / "lm_cache"
    cache_dir.mkdir(parents=True, exist_ok=True)
    dspy.configure_cache(
        enable_disk_cache=False,
        enable_memory_cache=True,
        memory_max_entries=MEMORY_CACHE_ENTRIES,
    )
    dspy.cache.disk_cache = _disk_tier(cache_dir.resolve())
    dspy.cache.enable_disk_cache = True
    return cache_dir


def open_program(
    settings: Settings,
    config: SageConfig,
    collection: str,
    program: str | None = None,
    in_flight: int = 1,
) -> tuple[Retriever, Sage]:
    """The retriever on ``collection`` and the SAGE program with each role's LM (``in_flight``:
    requests at once) and ``config``; ``program``: a saved whole-Sage, agent, generator or
    reviser file to load into it."""
    configure_lm_cache(settings)
    retriever = open_retriever(settings, collection=collection, k=3)
    lms = SageLMs(*(role_lm(settings, role, in_flight) for role in ROLES))
    sage = Sage(retriever, lms, config)
    if config.bundled_program:  # the small profile's few-shot demos (flows/data/build_demos.py)
        load_program(sage, BUNDLED_PROGRAM)
    if program:
        load_program(sage, Path(program))
    return retriever, sage


def open_verifier(
    settings: Settings,
    collection: str,
    config: SageConfig,
    force_answer: bool = False,
    questions_at_once: int = 1,
) -> tuple[Verifier, str]:
    """The search agent and judge that verify questions on ``collection`` (evaluation,
    re-verification, optimizer metrics) with the config's agent budgets, temperature,
    attempts (``config.attempts``, ``config.attempt_workers`` at once; times
    ``questions_at_once`` sizes the local model's slots) and judge guards, and the
    collection's version. ``force_answer``: ask for a best guess when the budget is spent,
    for reports."""
    configure_lm_cache(settings)
    retriever = open_retriever(settings, collection=collection, k=3)
    workers = config.attempt_workers
    in_flight = workers * questions_at_once
    agent = SearchAgent(
        retriever,
        role_lm(settings, "agent", in_flight),
        max_searches=config.max_searches,
        passage_chars=config.passage_chars,
        trajectory_chars=config.trajectory_chars,
        force_answer=force_answer,
        reask_repeats=config.reask_repeats,
    )
    judge = Judge(
        role_lm(settings, "judge", in_flight),
        min_gold_recall=config.judge_min_gold_recall,
        number_guard=config.judge_number_guard,
        temperature=config.role("judge").temperature,
    )
    temperature = config.role("agent").temperature
    return Verifier(agent, judge, config.attempts, temperature, workers), retriever.collection


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
