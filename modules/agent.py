"""The Search-R1 style search agent, and the safe, metered predictor call every module uses."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError
from pydantic import ValidationError

from modules.adapter import json_adapter
from modules.passages import Passage, Retriever
from modules.signatures import FinalAnswer, NextStep

PARSE_ERRORS = (AdapterParseError, ValidationError, ValueError, TypeError, KeyError)


@dataclass
class Meter:
    """LM calls, tokens and wall time spent by one unit of work (an attempt, a round)."""

    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Meter) -> None:
        self.lm_calls += other.lm_calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.seconds += other.seconds

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"tokens": self.tokens}


def lm_context(lm: Any | None, adapter: Any | None) -> Any:
    """dspy.context with the role's LM (None = the configured one) and adapter, and without
    DSPy's per-LM call history (up to 10,000 prompts and answers each, ~10 KB a call: the
    memory a long run would otherwise grow by)."""
    overrides = {k: v for k, v in (("lm", lm), ("adapter", adapter)) if v is not None}
    return dspy.context(**overrides, disable_history=True)


def safe_predict(
    predictor: dspy.Predict,
    meter: Meter,
    lm: Any | None = None,
    adapter: Any | None = None,
    config: dict[str, Any] | None = None,
    **inputs: Any,
) -> tuple[dspy.Prediction | None, str | None]:
    """Call a predictor; malformed output gives (None, error) instead of raising.

    LM transport/provider errors still raise (a flow may retry them).
    """
    meter.lm_calls += 1
    t0 = time.perf_counter()
    with lm_context(lm, adapter), dspy.track_usage() as usage:
        try:
            pred = predictor(**inputs, config=dict(config or {}))
            return pred, None
        except PARSE_ERRORS as exc:
            return None, f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
        finally:
            meter.seconds += time.perf_counter() - t0
            for entries in usage.usage_data.values():
                for e in entries:
                    meter.prompt_tokens += int(e.get("prompt_tokens") or 0)
                    meter.completion_tokens += int(e.get("completion_tokens") or 0)


def sample_config(rollout_id: int | None, temperature: float | None, retry: int = 0) -> dict:
    """Per-call LM config: distinct rollout ids make distinct (uncached) samples."""
    cfg: dict[str, Any] = {}
    if temperature is not None:
        cfg["temperature"] = temperature
    if retry:
        cfg["temperature"] = max(temperature or 0.0, 0.7)
    if rollout_id is not None or retry:
        cfg["rollout_id"] = (rollout_id or 0) * 8 + retry
    return cfg


def clip(text: str, n: int) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= n else text[: max(0, n - 1)].rstrip() + "…"


@dataclass
class AgentResult:
    """One attempt of the search agent at one question."""

    answer: str | None
    n_searches: int
    trace: list[dict[str, Any]] = field(default_factory=list)
    step_calls: int = 0
    parse_failures: int = 0
    forced: bool = False
    meter: Meter = field(default_factory=Meter)

    @property
    def ok(self) -> bool:
        return bool(self.answer and self.answer.strip())

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["meter"] = self.meter.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AgentResult:
        m = {k: v for k, v in (d.get("meter") or {}).items() if k != "tokens"}
        return cls(**{**d, "meter": Meter(**m)})


def render_trajectory(trace: list[dict[str, Any]], passage_chars: int, max_chars: int) -> str:
    """The agent's searches and passages as text, older passages shortened to fit max_chars."""
    searches = [s for s in trace if s["type"] == "search"]
    if not searches:
        return "(no searches yet)"
    limits = [passage_chars] * len(searches)
    for shrink in (160, 60, 0):
        text = _render(searches, limits)
        if len(text) <= max_chars:
            return text
        limits = [min(lim, shrink) for lim in limits[:-1]] + limits[-1:]
    return clip(_render(searches, limits), max_chars)


def _render(searches: list[dict[str, Any]], limits: list[int]) -> str:
    seen: set[str] = set()
    lines = []
    for i, (step, limit) in enumerate(zip(searches, limits, strict=True), start=1):
        lines.append(f"Search {i}: {step['query']}")
        for p in step["passages"]:
            if p["id"] in seen:
                lines.append(f"- {p['title']}: (shown above)")
            elif limit > 0:
                lines.append(f"- {p['title']}: {clip(p['text'], limit)}")
            else:
                lines.append(f"- {p['title']}")
            seen.add(p["id"])
    return "\n".join(lines)


def passage_record(p: Passage, chars: int) -> dict[str, Any]:
    return {"id": p.id, "doc_id": p.doc_id, "title": p.title, "text": clip(p.text, chars)}


class SearchAgent(dspy.Module):
    """think -> search(query) -> read top-k ... -> answer, with at most `max_searches` searches.

    Every step is one constrained NextStep prediction (action + one text field). A step that
    fails to parse is retried once with another sample; a second failure ends the attempt.
    After the last search the agent gets one more step to answer; a search there ends the
    attempt without an answer, as the SAGE code's agent returns None when its budget is
    spent. With ``force_answer`` (evaluation reports) a FinalAnswer call then asks for a
    best guess, marked ``forced``: it never counts as solving a question.
    """

    def __init__(
        self,
        retriever: Retriever,
        lm: Any | None = None,
        adapter: Any | None = None,
        k: int = 3,
        max_searches: int = 10,
        passage_chars: int = 450,
        trajectory_chars: int = 9000,
        force_answer: bool = False,
    ):
        super().__init__()
        self.retriever = retriever
        self.lm = lm
        self.adapter = adapter if adapter is not None else json_adapter()
        self.k = k
        self.max_searches = max_searches
        self.passage_chars = passage_chars
        self.trajectory_chars = trajectory_chars
        self.force_answer = force_answer
        self.step = dspy.Predict(NextStep)
        self.final = dspy.Predict(FinalAnswer)

    def forward(
        self, question: str, rollout_id: int | None = None, temperature: float | None = None
    ) -> AgentResult:
        res = AgentResult(answer=None, n_searches=0)
        t0 = time.perf_counter()
        retry = 0
        while True:
            traj = render_trajectory(res.trace, self.passage_chars, self.trajectory_chars)
            cfg = sample_config(_rid(rollout_id, res.step_calls), temperature, retry)
            res.step_calls += 1
            pred, err = safe_predict(
                self.step, res.meter, self.lm, self.adapter, cfg,
                question=question, trajectory=traj,
                searches_left=self.max_searches - res.n_searches,
            )  # fmt: skip
            err = err or _invalid_step(pred)
            if err:
                res.parse_failures += 1
                res.trace.append({"type": "parse_failure", "error": err})
                if retry:
                    break  # second failure in a row: the attempt ends
                retry = 1
                continue
            retry = 0
            text = str(pred.text).strip()
            if pred.action == "answer":
                res.answer = text
                res.trace.append({"type": "answer", "reasoning": pred.reasoning, "answer": text})
                break
            if res.n_searches >= self.max_searches:
                res.trace.append({"type": "budget_spent", "reasoning": pred.reasoning})
                break
            passages = self.retriever.search(text, k=self.k)
            res.n_searches += 1
            res.trace.append(
                {
                    "type": "search",
                    "reasoning": pred.reasoning,
                    "query": text,
                    "passages": [passage_record(p, self.passage_chars) for p in passages],
                }
            )
        if res.answer is None and self.force_answer:
            self._force_answer(question, res, rollout_id, temperature)
        res.meter.seconds = time.perf_counter() - t0
        return res

    def _force_answer(
        self, question: str, res: AgentResult, rollout_id: int | None, temperature: float | None
    ) -> None:
        res.forced = True
        traj = render_trajectory(res.trace, self.passage_chars, self.trajectory_chars)
        for retry in (0, 1):
            pred, err = safe_predict(
                self.final, res.meter, self.lm, self.adapter,
                sample_config(_rid(rollout_id, 999), temperature, retry),
                question=question, trajectory=traj,
            )  # fmt: skip
            answer = str(getattr(pred, "answer", "") or "").strip() if pred else ""
            if answer:
                res.answer = answer
                res.trace.append(
                    {"type": "forced_answer", "reasoning": pred.reasoning, "answer": answer}
                )
                return
            res.parse_failures += 1
            res.trace.append({"type": "parse_failure", "error": err or "empty answer"})


def _rid(rollout_id: int | None, step: int) -> int | None:
    return None if rollout_id is None else rollout_id * 1000 + step


def _invalid_step(pred: Any) -> str | None:
    action = getattr(pred, "action", None)
    if action not in ("search", "answer"):
        return f"invalid action {action!r}"
    if not str(getattr(pred, "text", "") or "").strip():
        return f"empty text for action {action!r}"
    return None
