"""A finalised run with judged attempts and their traces, for the export tests: checkpoint
records of real ``RoundResult``/``Attempt`` objects, turned into dataset.parquet and
traces.jsonl by the run's own ``finalise``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flows.generate import GenerateParams
from flows.runs.finalise import finalise
from flows.runs.store import RunStore
from modules.programs.attempts import Attempt
from modules.programs.sage import RoundResult
from modules.programs.status import Status

RUN_ID = "r1"
GOLD = {"s1": "Ada Venn", "s2": "10 January 1888"}


def passage(pid: str, title: str, text: str) -> dict[str, str]:
    return {"id": pid, "doc_id": pid.split("#")[0], "title": title, "text": text}


def search(query: str, *passages: dict[str, str]) -> dict[str, Any]:
    return {"type": "search", "reasoning": f"I need {query}.", "query": query,
            "passages": list(passages)}  # fmt: skip


def answer(text: str) -> dict[str, Any]:
    return {"type": "answer", "reasoning": "The passages say so.", "answer": text}


def attempt(i: int, trace: list[dict], ans: str | None, correct: bool, method: str = "exact",
            forced: bool = False) -> Attempt:  # fmt: skip
    n = sum(s["type"] == "search" for s in trace)
    judgement = {"correct": correct, "method": method, "extracted": ans}
    return Attempt(i, ans, n, correct and not forced, judgement, trace, {}, forced=forced)


P = {
    "shoals": passage("d1#0", "Shoals Symphony", "The Shoals Symphony was written by Ada Venn."),
    "venn": passage("d2#0", "Ada Venn", "Ada Venn was a composer from Tarvik."),
    "hall": passage("d3#0", "Tarvik Hall", "Tarvik Hall opened on 10 January 1888."),
    "bo": passage("d4#0", "Bo Lin", "Bo Lin conducted in Tarvik."),
}


def _s1_attempts() -> list[Attempt]:
    two = [search("shoals symphony composer", P["shoals"]), search("Ada Venn", P["venn"])]
    return [
        attempt(
            0, [*two, search("Tarvik", P["bo"]), answer("A. Venn")], "A. Venn", True, method="llm"
        ),  # fmt: skip
        attempt(1, [*two, answer("Ada Venn")], "Ada Venn", True),
        attempt(
            2,
            [
                search("x", P["bo"]),
                {"type": "forced_answer", "reasoning": "guess", "answer": "Ada Venn"},
            ],
            "Ada Venn",
            True,
            forced=True,
        ),  # fmt: skip
        attempt(3, [*two, answer("Bo Lin")], "Bo Lin", False, method="llm"),
    ]


def _s2_rounds() -> list[RoundResult]:
    easy = [attempt(0, [search("hall", P["hall"]), answer("10 January 1888")],
                    "10 January 1888", True)]  # fmt: skip
    hard = [
        attempt(
            0,
            [
                search("x", P["hall"]),
                {"type": "forced_answer", "reasoning": "guess", "answer": "10 January 1888"},
            ],
            "10 January 1888",
            True,
            forced=True,
        ),  # fmt: skip
        attempt(
            1,
            [
                search("Tarvik composer", P["venn"]),
                search("Tarvik Hall", P["hall"]),
                answer("10 January 1888"),
            ],
            "10 January 1888",
            True,
        ),  # fmt: skip
    ]
    cand = {"question": "When did the hall of the composer's town open", "answer": GOLD["s2"],
            "answer_type": "date", "aliases": ["1888-01-10"]}  # fmt: skip
    return [
        RoundResult(0, Status.TOO_EASY, 2, "generate", cand, easy),
        RoundResult(1, Status.ACCEPTED, 2, "revise:too_easy", cand, hard),
    ]


def judged_run(tmp_path: Path) -> RunStore:
    """Two accepted seeds: s1 in round 0, s2 in round 1 (after a too-easy round 0)."""
    store = RunStore(tmp_path / "runs", RUN_ID)
    params = {"collection": "demo", "attempts": 4, "rounds": 1, "steps": "2",
              "strategy": "feedback"}  # fmt: skip
    models = {"generator": "local", "agent": "local", "judge": "hosted_vllm/judge-model"}
    manifest = {"run_id": RUN_ID, "params": params, "models": models,
                "collection_version": "demo@abc123",
                "settings": {"judge_min_gold_recall": 0.5}}  # fmt: skip
    store.start(manifest, resume_keys=[])
    cand1 = {"question": "Who composed the shoals symphony", "answer": GOLD["s1"],
             "answer_type": "entity"}  # fmt: skip
    rounds = {"s1": [RoundResult(0, Status.ACCEPTED, 2, "generate", cand1, _s1_attempts())],
              "s2": _s2_rounds()}  # fmt: skip
    for sid, rrs in rounds.items():
        for rr in rrs:
            store.append_record({"seed_id": sid, "run_id": RUN_ID, "doc_id": f"d-{sid}",
                                 "target_steps": 2, "strategy": "feedback", **rr.summary(),
                                 "detail": rr.to_dict()})  # fmt: skip
    plan = [{"seed_id": s} for s in rounds]
    finalise(store, plan, GenerateParams(seeds=len(plan), rounds=1, keep_unverified=False))
    return store
