"""The SAGE loop (Algorithm 1) as a DSPy module, with per-round results for checkpointing."""

from __future__ import annotations

import copy
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, fields, is_dataclass
from typing import Any

import dspy

from modules.config import SageConfig
from modules.index.passages import Retriever
from modules.programs.adapter import json_adapter
from modules.programs.agent import SearchAgent
from modules.programs.attempts import Attempt, Verifier, best_attempt, fewest_searches, verdict
from modules.programs.generator import Candidate, Generator, GenResult
from modules.programs.judge import Judge
from modules.programs.predict import Meter
from modules.programs.reviser import Reviser, feedback_text
from modules.programs.status import REVISABLE, Status, seed_done
from modules.seeding import stable_int

STRATEGIES = ("feedback", "resample")


@dataclass
class RoundResult:
    """Everything one round produced; enough to resume from and to audit."""

    round: int
    status: Status
    target_steps: int | None
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
        target_steps: int | None,
        attempts: list[Attempt] | None = None,
    ) -> RoundResult:
        """The round: its pair (if one was written), judged attempts, verdict and cost."""
        meter = Meter.total([gen.meter, *(Meter.of(a.meter) for a in attempts or [])])
        if gen.candidate is None:
            return cls(
                r,
                Status.GENERATION_FAILED,
                target_steps,
                mode,
                None,
                generator_trace=gen.trace,
                notes=gen.notes,
                meter=meter.to_dict(),
                error=gen.error,
            )
        return cls(
            r,
            verdict(attempts or [], target_steps),
            target_steps,
            mode,
            gen.candidate.to_dict(),
            attempts or [],
            gen.trace,
            gen.notes,
            meter.to_dict(),
        )

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
            "repeated_searches": sum(
                (a.searches_made or a.n_searches) - a.n_searches for a in self.attempts
            ),
            "lm_calls": int(self.meter.get("lm_calls", 0)),
            "tokens": int(self.meter.get("tokens", 0)),
            "seconds": float(self.meter.get("seconds", 0.0)),
            "shown_chars": int(self.meter.get("shown_chars", 0)),
            "cut_chars": int(self.meter.get("cut_chars", 0)),
        }

    def history_entry(self) -> dict[str, Any]:
        """This round as the reviser of a later round sees it."""
        c = self.candidate or {}
        analysis = next(
            (t.get("analysis") for t in self.generator_trace if t["type"] == "revised"), None
        )
        feedback = None
        if self.status in REVISABLE:
            right = sum(a.correct for a in self.attempts)
            best = fewest_searches(self.attempts)
            fewest = f", the fastest in {best.n_searches} searches" if best else ""
            feedback = (
                f"{feedback_text(self.status, self.target_steps)} "
                f"({right} of {len(self.attempts)} attempts right{fewest})"
            )
        return {
            "round": self.round,
            "mode": self.mode,
            "status": self.status,
            "question": c.get("question"),
            "answer": c.get("answer"),
            "analysis": analysis,
            "feedback": feedback,
        }

    def to_dict(self) -> dict[str, Any]:
        """``dataclasses.asdict(self)``, without passing every string and number of the
        traces through ``copy.deepcopy`` (twice a round; docs/BENCHMARKS.md, issue 21)."""
        return plain(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoundResult:
        d = dict(d)
        d["attempts"] = [Attempt.from_dict(a) for a in d.get("attempts") or []]
        return cls(**d)


_ATOMIC = frozenset({str, int, float, bool, type(None)})


def plain(obj: Any) -> Any:
    """What ``dataclasses.asdict`` makes of ``obj`` (dataclasses as dicts, fresh lists, tuples
    and dicts all the way down, other objects deep-copied), with str, int, float, bool and
    None shared instead of passed one by one through ``copy.deepcopy``."""
    kind = type(obj)
    if kind in _ATOMIC:
        return obj
    if is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in fields(obj)}
    if kind is list:
        return [plain(v) for v in obj]
    if kind is tuple:
        return tuple(plain(v) for v in obj)
    if kind is dict:
        return {plain(k): plain(v) for k, v in obj.items()}
    return copy.deepcopy(obj)  # an enum, a subclassed container: as asdict would, or close


@dataclass
class SageResult:
    rounds: list[RoundResult]


def finished(done: list[RoundResult], rounds: int) -> bool:
    """Whether a seed needs no more rounds (see ``modules.programs.status.seed_done``)."""
    return bool(done) and seed_done(done[-1].status, done[-1].round, rounds)


@dataclass(frozen=True)
class SageLMs:
    """The LM of each role (None: DSPy's configured LM); the reviser uses the generator's."""

    generator: Any | None = None
    agent: Any | None = None
    judge: Any | None = None


class Sage(dspy.Module):
    """generate -> K attempts -> judge -> accept | revise (feedback) | regenerate (resample).

    ``Sage(retriever, lms, config)``: the LMs by role and the run's ``SageConfig`` (every
    knob of the loop: K, R, strategy, budgets, temperatures, judge guards).
    """

    def __init__(
        self,
        retriever: Retriever,
        lms: SageLMs | None = None,
        config: SageConfig | None = None,
        adapter: Any | None = None,
    ):
        super().__init__()
        lms = lms or SageLMs()
        cfg = config or SageConfig()
        self.config = cfg
        adapter = adapter if adapter is not None else json_adapter()
        self.generator = Generator(
            retriever,
            lms.generator,
            adapter,
            3,
            cfg.generator_searches,
            passage_chars=cfg.generator_passage_chars,
            notes_chars=cfg.notes_chars,
            answer_source=cfg.answer_source,
            doc_chars=cfg.doc_chars,
            min_searches=min(cfg.generator_min_searches, cfg.generator_searches),
            bridge_rule=cfg.bridge_rule,
        )
        reviser = cfg.role("reviser")
        self.reviser = Reviser(
            self.generator,
            lms.generator,
            adapter,
            cfg.revise_with_search,
            notes_chars=cfg.reviser_notes_chars,
            attempt_chars=cfg.attempt_chars,
            research_chars=cfg.research_chars,
            history_chars=cfg.history_chars,
            attempt_passage_chars=cfg.passage_chars,
            note_chars=cfg.reviser_note_chars,
            temperature=reviser.temperature,
            max_tokens=reviser.max_tokens,
        )
        self.agent = SearchAgent(
            retriever,
            lms.agent,
            adapter,
            3,
            cfg.max_searches,
            cfg.passage_chars,
            cfg.trajectory_chars,
            reask_repeats=cfg.reask_repeats,
        )
        self.judge = Judge(
            lms.judge,
            adapter,
            min_gold_recall=cfg.judge_min_gold_recall,
            number_guard=cfg.judge_number_guard,
            temperature=cfg.role("judge").temperature,
        )

    def verify(self, cand: Candidate, k: int, rollout: int) -> list[Attempt]:
        """K judged attempts at the candidate question (distinct rollout ids)."""
        cfg = self.config
        verifier = Verifier(
            self.agent, self.judge, k, cfg.role("agent").temperature, cfg.attempt_workers
        )
        return verifier(cand.question, [cand.answer], rollout * 16)

    def _produce(
        self,
        document: str,
        s: int | None,
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
        target_steps: int | None,
        on_round: Callable[[RoundResult], None] | None = None,
        resume_from: list[RoundResult] | None = None,
        seed: Any = 0,
        doc_id: str = "seed",
        answer_type: str = "entity",
    ) -> SageResult:
        """Algorithm 1 for one seed document: write a pair for target S (None: no target,
        accepted on pass@K alone), let the agent try it K times, judge; accept it, or revise
        it with the traces (``feedback``) or write a new one (``resample``), for up to R more
        rounds (K, R and the strategy from the config). ``resume_from``: finished rounds."""
        cfg = self.config
        if cfg.strategy not in STRATEGIES:
            raise ValueError(f"strategy must be one of {STRATEGIES}, not {cfg.strategy!r}")
        done = list(resume_from or [])
        rng = random.Random(stable_int(seed, "best"))
        while not finished(done, cfg.rounds):
            r = len(done)
            rollout = stable_int(seed, r) % 100_000
            mode, gen = self._produce(
                document, target_steps, cfg.strategy, done, rng, rollout, doc_id, answer_type
            )
            atts = self.verify(gen.candidate, cfg.attempts, rollout) if gen.candidate else []
            rr = RoundResult.of(r, mode, gen, target_steps, atts)
            if r == cfg.rounds or (gen.candidate is None and not cfg.regenerate_failed):
                rr.close(cfg.keep_unverified)  # the last round, or a failure not regenerated
            done.append(rr)
            if on_round is not None:
                on_round(rr)
        return SageResult(done)
