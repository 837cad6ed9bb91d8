"""DSPy optimization of one SAGE sub-module with metrics grounded in execution feedback.

Each optimizable sub-module is wrapped in a *task* (a dspy.Module taking one example's
inputs and returning a dspy.Prediction); the metric scores that prediction by running the
search agent and the judge, which stay outside the task so that no optimizer touches them:

- agent: the judged correctness of its answer to a QA item;
- generator / reviser: 1 when the pair it writes verifies at the target difficulty (some of
  K agent attempts correct, the fewest searches among them >= S), else 0.

For GEPA the metric also returns feedback text ("too easy: solved in 1 search < S=3").
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import dspy

from modules.config import SageConfig
from modules.programs.agent import SearchAgent
from modules.programs.attempts import Verifier, verdict
from modules.programs.context import clip
from modules.programs.generator import Candidate, Generator
from modules.programs.reviser import Reviser
from modules.programs.sage import Sage, SageLMs
from modules.programs.status import Status
from modules.seeding import stable_int

MODULES = ("agent", "generator", "reviser")
OPTIMIZERS = ("bootstrap", "mipro", "gepa")
_SHARED = ("retriever", "lm", "adapter")


def rollout_of(key: str) -> int:
    """A stable rollout id for an example (so every score samples the same rollouts)."""
    return stable_int(key, digits=6)


class Task(dspy.Module):
    """Base of the tasks: copies (optimizers make many) share retrievers, LMs and adapters."""

    sub = ""

    @property
    def target(self) -> dspy.Module:
        """The wrapped sub-module (what gets saved)."""
        return getattr(self, self.sub)

    def __deepcopy__(self, memo: dict[int, Any]) -> Task:
        for _, mod in self.named_sub_modules():
            for attr in _SHARED:
                value = mod.__dict__.get(attr)
                if value is not None:
                    memo.setdefault(id(value), value)
        new = self.__class__.__new__(self.__class__)
        memo[id(self)] = new
        for key, value in self.__dict__.items():
            new.__dict__[key] = copy.deepcopy(value, memo)
        return new


class AgentTask(Task):
    """question -> the search agent's answer."""

    sub = "agent"

    def __init__(self, agent: SearchAgent, temperature: float | None = None):
        super().__init__()
        self.agent = agent
        self.temperature = temperature

    def forward(self, question: str, rollout: int = 0) -> dspy.Prediction:
        res = self.agent(question, rollout_id=rollout, temperature=self.temperature)
        return dspy.Prediction(answer=res.answer, n_searches=res.n_searches, forced=res.forced)


class GeneratorTask(Task):
    """seed document + target S -> a generated pair (or none)."""

    sub = "generator"

    def __init__(self, generator: Generator):
        super().__init__()
        self.generator = generator

    def forward(
        self, document: str, target_steps: int, doc_id: str = "seed", rollout: int = 0
    ) -> dspy.Prediction:
        gen = self.generator(document, target_steps, rollout_id=rollout, doc_id=doc_id)
        return dspy.Prediction(candidate=gen.candidate, error=gen.error)


class ReviserTask(Task):
    """a failed round -> a revised pair (or none). Only the reviser's own predictor is
    optimized: the generator it holds (used when revising with search) stays as it is."""

    sub = "reviser"

    def __init__(self, reviser: Reviser):
        super().__init__()
        self.reviser = reviser

    def named_parameters(self) -> list[tuple[str, Any]]:
        return [(n, p) for n, p in super().named_parameters() if ".generator." not in n]

    def forward(
        self,
        document: str,
        target_steps: int,
        failure: str,
        candidate: dict[str, Any],
        generator_trace: list[dict[str, Any]],
        notes: list[dict[str, Any]],
        best_attempt: dict[str, Any] | None,
        rollout: int = 0,
    ) -> dspy.Prediction:
        gen = self.reviser(
            document,
            target_steps,
            failure,
            Candidate(**candidate),
            generator_trace,
            notes,
            best_attempt,
            rollout_id=rollout,
        )
        return dspy.Prediction(candidate=gen.candidate, error=gen.error)


def build_task(which: str, retriever: Any, lms: dict[str, Any], config: SageConfig) -> Task:
    """A fresh (unoptimized) task for ``which`` sub-module, wired as a Sage program with
    ``config`` is (its budgets, search limits and the agent's temperature)."""
    sage = Sage(retriever, SageLMs(lms.get("generator"), lms.get("agent")), config)
    if which == "agent":
        return AgentTask(sage.agent, config.role("agent").temperature)
    if which == "generator":
        return GeneratorTask(sage.generator)
    if which == "reviser":
        return ReviserTask(sage.reviser)
    raise ValueError(f"unknown module {which!r}: use one of {', '.join(MODULES)}")


class Metric:
    """The metric of one sub-module: a float, or dspy.Prediction(score, feedback) for GEPA.

    Calls made while scoring are kept out of the optimizer's trace (they are not the task's).
    """

    def __init__(self, which: str, verifier: Verifier, feedback: bool = False):
        self.which = which
        self.verifier = verifier
        self.feedback = feedback

    def __call__(
        self,
        gold: dspy.Example,
        pred: Any,
        trace: Any = None,
        pred_name: str | None = None,
        pred_trace: Any = None,
    ) -> float | dspy.Prediction:
        with dspy.context(trace=None):
            score, text = self.score(gold, pred)
        return dspy.Prediction(score=score, feedback=text) if self.feedback else score

    def score(self, gold: dspy.Example, pred: Any) -> tuple[float, str]:
        if self.which == "agent":
            return self._answer(gold, pred)
        return self._pair(gold, pred)

    def _answer(self, gold: dspy.Example, pred: Any) -> tuple[float, str]:
        answer = getattr(pred, "answer", None)
        golds = list(gold.answers)
        if not answer:
            return 0.0, "no answer: the agent gave no parseable final answer"
        j = self.verifier.judge(gold.question, golds[0], answer, aliases=golds[1:])
        searches = getattr(pred, "n_searches", 0)
        if j.correct:
            return 1.0, f"correct: answered {clip(answer, 80)!r} after {searches} search(es)"
        return 0.0, (
            f"incorrect: the agent answered {clip(answer, 80)!r} after {searches} search(es); "
            f"the gold answer is {golds[0]!r}"
        )

    def _pair(self, gold: dspy.Example, pred: Any) -> tuple[float, str]:
        cand: Candidate | None = getattr(pred, "candidate", None)
        s = int(gold.target_steps)
        if cand is None:
            return 0.0, f"no valid pair: {getattr(pred, 'error', None) or 'generation failed'}"
        base = (int(gold.get("rollout", 0)) % 100_000) * 16 + 7
        atts = self.verifier(cand.question, [cand.answer], base)
        status = verdict(atts, s)
        correct = sorted(a.n_searches for a in atts if a.correct)
        if status == Status.ACCEPTED:
            return 1.0, f"verified: solved correctly in {correct[0]} searches >= S={s}"
        if status == Status.TOO_EASY:
            return 0.0, (
                f"too easy: solved in {correct[0]} search(es) < S={s}; hide the entity the "
                "agent searched for behind a description from another passage"
            )
        answers = ", ".join(repr(clip(a.answer or "(none)", 60)) for a in atts)
        return 0.0, (
            f"incorrect: the agent answered {answers}, not {clip(cand.answer, 60)!r}; make the "
            "question clearer or the answer better supported by the passages"
        )


def score_task(task: Task, examples: list[dspy.Example], metric: Metric) -> list[float]:
    """The metric on every example (the task runs on the example's inputs)."""
    out = []
    for ex in examples:
        pred = task(**ex.inputs())
        out.append(float(metric.score(ex, pred)[0]))
    return out


def compile_task(
    task: Task,
    optimizer: str,
    train: list[dspy.Example],
    verifier: Verifier,
    prompt_lm: Any,
    max_demos: int = 2,
    trials: int = 4,
    seed: int = 0,
) -> Task:
    """Optimize ``task`` on ``train`` (also the optimizer's own validation set: the dev set
    stays held out for an honest before/after score)."""
    metric = Metric(task.sub, verifier)
    runners: dict[str, Callable[[], Task]] = {
        "bootstrap": lambda: dspy.BootstrapFewShot(
            metric=metric, max_bootstrapped_demos=max_demos, max_labeled_demos=0, max_rounds=1
        ).compile(task, trainset=train),
        "mipro": lambda: dspy.MIPROv2(
            metric=metric,
            prompt_model=prompt_lm,
            task_model=prompt_lm,
            auto=None,
            num_candidates=max(2, min(trials, 4)),
            max_bootstrapped_demos=max_demos,
            max_labeled_demos=0,
            num_threads=1,
            seed=seed,
            verbose=False,
            track_stats=False,
        ).compile(
            task,
            trainset=train,
            valset=train,
            num_trials=trials,
            minibatch=False,
            data_aware_proposer=False,
        ),  # documents and passages overflow a small model's context in a data summary
        "gepa": lambda: dspy.GEPA(
            metric=Metric(task.sub, verifier, feedback=True),
            max_metric_calls=len(train) + trials * (2 * min(3, len(train)) + len(train)),
            reflection_lm=prompt_lm,
            reflection_minibatch_size=min(3, len(train)),
            num_threads=1,
            seed=seed,
            use_merge=False,
            track_stats=False,
        ).compile(task, trainset=train, valset=train),
    }
    if optimizer not in runners:
        raise ValueError(f"unknown optimizer {optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
    with dspy.context(lm=prompt_lm):
        return runners[optimizer]()
