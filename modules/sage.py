"""The SAGE loop (Algorithm 1) as a DSPy module, with per-round results for checkpointing."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import dspy

from modules.adapter import json_adapter
from modules.agent import SearchAgent
from modules.attempts import Attempt, Verifier, best_attempt, fewest_searches, verdict
from modules.generator import Candidate, Generator, GenResult
from modules.judge import Judge
from modules.passages import Retriever
from modules.predict import Meter
from modules.reviser import Reviser
from modules.seeding import stable_int
from modules.status import REVISABLE, Status, seed_done

STRATEGIES = ("feedback", "resample")


@dataclass
class RoundResult:
    """Everything one round produced; enough to resume from and to audit."""

    round: int
    status: Status
    target_steps: int
    mode: str  # generate | revise:too_easy | revise:incorrect | resample
    candidate: dict[str, Any] | None
    attempts: list[Attempt] = field(default_factory=list)
    generator_trace: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    meter: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @classmethod
    def of(
        cls,
        r: int,
        mode: str,
        gen: GenResult,
        target_steps: int,
        attempts: list[Attempt] | None = None,
    ) -> RoundResult:
        """The round: its pair (if one was written), judged attempts, verdict and cost."""
        meter = Meter.total([gen.meter, *(Meter.of(a.meter) for a in attempts or [])])
        if gen.candidate is None:
            return cls(r, Status.GENERATION_FAILED, target_steps, mode, None,
                       generator_trace=gen.trace, notes=gen.notes, meter=meter.to_dict(),
                       error=gen.error)  # fmt: skip
        return cls(r, verdict(attempts or [], target_steps), target_steps, mode,
                   gen.candidate.to_dict(), attempts or [], gen.trace, gen.notes,
                   meter.to_dict())  # fmt: skip

    def close(self, keep_unverified: bool) -> None:
        """The last round: a pair never verified is discarded (or kept, marked)."""
        if self.status in (Status.INCORRECT, Status.GENERATION_FAILED):
            keep = keep_unverified and self.candidate
            self.status = Status.UNVERIFIED if keep else Status.DISCARDED

    def summary(self) -> dict[str, Any]:
        """The flat candidate row (see flows/metrics.py CANDIDATE_SCHEMA)."""
        c = self.candidate or {}
        k = len(self.attempts)
        n_correct = sum(a.correct for a in self.attempts)
        return {
            "round": self.round,
            "status": self.status,
            "question": c.get("question"),
            "answer": c.get("answer"),
            "answer_type": c.get("answer_type"),
            "supporting_ids": c.get("supporting_ids") or [],
            "attempts": k,
            "n_correct": n_correct,
            "pass_at_k": n_correct > 0,
            "avg_at_k": n_correct / k if k else None,
            "min_searches": best.n_searches if (best := fewest_searches(self.attempts)) else None,
            "mean_searches": sum(a.n_searches for a in self.attempts) / k if k else None,
            "lm_calls": int(self.meter.get("lm_calls", 0)),
            "tokens": int(self.meter.get("tokens", 0)),
            "seconds": float(self.meter.get("seconds", 0.0)),
        }

    def history_entry(self) -> dict[str, Any]:
        """This round as the reviser of a later round sees it."""
        c = self.candidate or {}
        analysis = next(
            (t.get("analysis") for t in self.generator_trace if t["type"] == "revised"), None
        )
        return {"round": self.round, "mode": self.mode, "status": self.status,
                "question": c.get("question"), "answer": c.get("answer"),
                "analysis": analysis}  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoundResult:
        d = dict(d)
        d["attempts"] = [Attempt.from_dict(a) for a in d.get("attempts") or []]
        return cls(**d)


@dataclass
class SageResult:
    rounds: list[RoundResult]


def finished(done: list[RoundResult], rounds: int) -> bool:
    """Whether a seed needs no more rounds (see ``modules.status.seed_done``)."""
    return bool(done) and seed_done(done[-1].status, done[-1].round, rounds)


class Sage(dspy.Module):
    """generate -> K attempts -> judge -> accept | revise (feedback) | regenerate (resample)."""

    def __init__(
        self,
        retriever: Retriever,
        generator_lm: Any | None = None,
        agent_lm: Any | None = None,
        judge_lm: Any | None = None,
        adapter: Any | None = None,
        k: int = 3,
        max_searches: int = 10,
        generator_searches: int = 20,
        revise_with_search: bool = False,
        keep_unverified: bool = False,
        agent_temperature: float = 0.7,
        attempt_workers: int = 1,
        judge_min_gold_recall: float = 0.5,
        answer_source: str = "seed",
    ):
        super().__init__()
        adapter = adapter if adapter is not None else json_adapter()
        self.generator = Generator(
            retriever, generator_lm, adapter, k, generator_searches, answer_source=answer_source
        )
        self.reviser = Reviser(self.generator, generator_lm, adapter, revise_with_search)
        self.agent = SearchAgent(retriever, agent_lm, adapter, k, max_searches)
        self.judge = Judge(judge_lm, adapter, min_gold_recall=judge_min_gold_recall)
        self.keep_unverified = keep_unverified
        self.agent_temperature = agent_temperature
        self.attempt_workers = max(1, attempt_workers)

    def verify(self, cand: Candidate, k: int, rollout: int) -> list[Attempt]:
        """K judged attempts at the candidate question (distinct rollout ids)."""
        verifier = Verifier(self.agent, self.judge, k, self.agent_temperature, self.attempt_workers)
        return verifier(cand.question, [cand.answer], rollout * 16)

    def _produce(
        self,
        document: str,
        s: int,
        strategy: str,
        done: list[RoundResult],
        rng: random.Random,
        rollout: int,
        doc_id: str,
        answer_type: str,
    ) -> tuple[str, GenResult]:
        prev = done[-1] if done else None
        regenerate = (
            prev is None
            or strategy == "resample"
            or prev.candidate is None
            or prev.status not in REVISABLE
        )
        if regenerate:
            mode = "generate" if prev is None else "resample"
            return mode, self.generator(
                document, s, rollout_id=rollout, doc_id=doc_id, answer_type=answer_type
            )
        best = best_attempt(prev.attempts, rng)
        return f"revise:{prev.status}", self.reviser(
            document,
            s,
            prev.status,
            Candidate(**prev.candidate),
            [t for r in done for t in r.generator_trace if t["type"] == "search"],
            prev.notes,
            asdict(best) if best else None,
            history=[r.history_entry() for r in done],
            rollout_id=rollout,
        )

    def forward(
        self,
        document: str,
        target_steps: int,
        attempts: int = 4,
        rounds: int = 2,
        strategy: str = "feedback",
        on_round: Callable[[RoundResult], None] | None = None,
        resume_from: list[RoundResult] | None = None,
        seed: Any = 0,
        doc_id: str = "seed",
        answer_type: str = "entity",
    ) -> SageResult:
        """Algorithm 1 for one seed document: write a pair for target S, let the agent try
        it K times, judge; accept it, or revise it with the traces (``feedback``) or write
        a new one (``resample``), for up to R more rounds. ``resume_from``: finished rounds."""
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        done = list(resume_from or [])
        rng = random.Random(stable_int(seed, "best"))
        while not finished(done, rounds):
            r = len(done)
            rollout = stable_int(seed, r) % 100_000
            mode, gen = self._produce(
                document, target_steps, strategy, done, rng, rollout, doc_id, answer_type
            )
            atts = self.verify(gen.candidate, attempts, rollout) if gen.candidate else []
            rr = RoundResult.of(r, mode, gen, target_steps, atts)
            if r == rounds:
                rr.close(self.keep_unverified)
            done.append(rr)
            if on_round is not None:
                on_round(rr)
        return SageResult(done)
