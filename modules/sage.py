"""The SAGE loop (Algorithm 1) as a DSPy module, with per-round results for checkpointing."""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import dspy

from modules.adapter import json_adapter
from modules.agent import Meter, SearchAgent
from modules.generator import Candidate, Generator, GenResult
from modules.judge import Judge
from modules.passages import Retriever
from modules.reviser import Reviser
from modules.solver import Attempt, run_attempts

STRATEGIES = ("feedback", "resample")


@dataclass
class RoundResult:
    """Everything one round produced; enough to resume from and to audit."""

    round: int
    status: str  # accepted | too_easy | incorrect | generation_failed | discarded | unverified
    target_steps: int
    mode: str  # generate | revise:too_easy | revise:incorrect | resample
    candidate: dict[str, Any] | None
    attempts: list[Attempt] = field(default_factory=list)
    generator_trace: list[dict[str, Any]] = field(default_factory=list)
    notes: list[dict[str, Any]] = field(default_factory=list)
    meter: dict[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def correct_searches(self) -> list[int]:
        return [a.n_searches for a in self.attempts if a.correct]

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
            "min_searches": min(self.correct_searches) if n_correct else None,
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
        d["attempts"] = [Attempt(**a) for a in d.get("attempts") or []]
        return cls(**d)


@dataclass
class SageResult:
    rounds: list[RoundResult]

    @property
    def final(self) -> RoundResult | None:
        return self.rounds[-1] if self.rounds else None

    @property
    def accepted(self) -> bool:
        return bool(self.rounds) and self.rounds[-1].status == "accepted"


def verdict(attempts: list[Attempt], target_steps: int) -> str:
    """accepted (pass@K and min searches among correct >= S), too_easy, or incorrect."""
    correct = [a.n_searches for a in attempts if a.correct]
    if not correct:
        return "incorrect"
    return "accepted" if min(correct) >= target_steps else "too_easy"


def best_attempt(attempts: list[Attempt], rng: random.Random) -> Attempt | None:
    """The correct attempt with fewest searches, else a random one (the paper's choice)."""
    correct = [a for a in attempts if a.correct]
    if correct:
        return min(correct, key=lambda a: (a.n_searches, a.index))
    return rng.choice(attempts) if attempts else None


def _seed_int(*parts: Any) -> int:
    return int(hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()[:8], 16)


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

    # -- one round ------------------------------------------------------------------------
    def run_attempts(self, cand: Candidate, k: int, base: int) -> list[Attempt]:
        """K judged attempts at the candidate question (distinct rollout ids)."""
        return run_attempts(
            self.agent, self.judge, cand.question, [cand.answer], k, base,
            self.agent_temperature, self.attempt_workers,
        )  # fmt: skip

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
            or prev.status not in ("too_easy", "incorrect")
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

    # -- the loop ---------------------------------------------------------------------------
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
        """Run rounds 0..R for one seed document; ``resume_from`` skips finished rounds."""
        if strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
        done = list(resume_from or [])
        rng = random.Random(_seed_int(seed, "best"))
        if done and (
            done[-1].status in ("accepted", "discarded", "unverified") or done[-1].round >= rounds
        ):
            return SageResult(done)
        for r in range(len(done), rounds + 1):
            rollout = _seed_int(seed, r) % 100_000
            mode, gen = self._produce(
                document, target_steps, strategy, done, rng, rollout, doc_id, answer_type
            )
            meter = Meter()
            meter.add(gen.meter)
            if gen.candidate is None:
                rr = RoundResult(
                    r,
                    "generation_failed",
                    target_steps,
                    mode,
                    None,
                    generator_trace=gen.trace,
                    notes=gen.notes,
                    meter=meter.to_dict(),
                    error=gen.error,
                )
            else:
                atts = self.run_attempts(gen.candidate, attempts, rollout * 16)
                for a in atts:
                    meter.add(Meter(**{k: v for k, v in a.meter.items() if k != "tokens"}))
                status = verdict(atts, target_steps)
                rr = RoundResult(
                    r,
                    status,
                    target_steps,
                    mode,
                    gen.candidate.to_dict(),
                    atts,
                    gen.trace,
                    gen.notes,
                    meter.to_dict(),
                )
            if r == rounds and rr.status in ("incorrect", "generation_failed"):
                rr.status = "unverified" if self.keep_unverified and rr.candidate else "discarded"
            done.append(rr)
            if on_round is not None:
                on_round(rr)
            if rr.status == "accepted":
                break
        return SageResult(done)
