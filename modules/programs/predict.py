"""How every sage module calls a DSPy predictor: metered (LM calls, tokens, seconds), with
malformed output as a value instead of an exception, and one retry with another sample."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import dspy
from dspy.utils.exceptions import AdapterParseError
from pydantic import ValidationError

PARSE_ERRORS = (AdapterParseError, ValidationError, ValueError, TypeError, KeyError)


@dataclass
class Meter:
    """LM calls, tokens and wall time spent by one unit of work (an attempt, a round), and
    the retrieved characters its prompts showed and cut."""

    lm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    seconds: float = 0.0
    shown_chars: int = 0  # retrieved text shown in prompts (modules/programs/context.py)
    cut_chars: int = 0  # retrieved text left out of them

    @property
    def tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens

    def add(self, other: Meter) -> None:
        self.lm_calls += other.lm_calls
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.seconds += other.seconds
        self.shown_chars += other.shown_chars
        self.cut_chars += other.cut_chars

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"tokens": self.tokens}

    @classmethod
    def of(cls, d: dict[str, Any]) -> Meter:
        """A meter back from its ``to_dict``."""
        return cls(**{k: v for k, v in d.items() if k in _METER_FIELDS})

    @classmethod
    def total(cls, meters: list[Meter]) -> Meter:
        out = cls()
        for m in meters:
            out.add(m)
        return out


_METER_FIELDS = frozenset(Meter.__dataclass_fields__)


def lm_context(lm: Any | None, adapter: Any | None) -> Any:
    """dspy.context with the role's LM (None = the configured one) and adapter, and without
    what DSPy keeps of every call unless asked: its per-LM call history and, when no caller
    opened a trace of its own (an optimizer's ``dspy.context(trace=[])`` is kept), the
    process-wide trace (up to 10,000 predictor inputs and predictions each, ~4 KB a call:
    the memory a long run would otherwise grow by)."""
    overrides = {k: v for k, v in (("lm", lm), ("adapter", adapter)) if v is not None}
    if dspy.settings.trace is _default_trace():
        overrides["trace"] = None
    return dspy.context(**overrides, disable_history=True)


def _default_trace() -> Any:
    """The trace list every thread sees when no ``dspy.context(trace=...)`` is open."""
    from dspy.dsp.utils.settings import main_thread_config

    return main_thread_config["trace"]


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


def predict_twice(
    call: Callable[[int, str], tuple[Any, str | None]],
    check: Callable[[Any], str | None] = lambda _pred: None,
) -> tuple[Any, list[str]]:
    """``call(retry, hint)`` once, and again with ``retry=1`` (another sample) if its output
    is malformed or fails ``check`` (which says why; that reason is the second call's
    ``hint``). Returns the first good prediction (or None) and the errors on the way."""
    errors: list[str] = []
    hint = ""
    for retry in (0, 1):
        pred, err = call(retry, hint)
        if err is None:
            err = check(pred)
            hint = err or ""
        if err is None:
            return pred, errors
        errors.append(err)
    return None, errors
