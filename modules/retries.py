"""The one retry policy of sage's HTTP calls (served models, the Search-R1 retriever).

A transient failure (a connection reset or refused, a timeout, HTTP 408, 429 or 5xx) is
retried in exactly one layer: DSPy's own retry loop for LM calls (``dspy.LM(num_retries=)``,
whose delay this module supplies) and ``RetryPolicy.run`` for the retriever; Prefect does
not retry a seed on top. A ``Retry-After`` answer (seconds or an HTTP date) is honoured;
otherwise the wait is jittered exponential backoff under a cap. Any other 4xx is not
retried. Every transient failure is reported to ``listeners`` (the adaptive concurrency
controller halves on 429/503).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, TypeVar

from dspy.utils.callback import BaseCallback

T = TypeVar("T")
MAX_RETRY_AFTER = 600.0  # a server asking for longer is waited for this long, then retried

# called with (HTTP status or None for a reset/timeout) on every transient failure
listeners: list[Callable[[int | None], None]] = []


def is_transient_status(status: int) -> bool:
    """408, 429 and 5xx are worth retrying; any other 4xx is the request's own fault."""
    return status in (408, 429) or status >= 500


def retry_after_seconds(value: Any) -> float | None:
    """A ``Retry-After`` header's wait in seconds: delta-seconds or an HTTP date."""
    if value is None:
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = None
    if seconds is None and isinstance(value, str):
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if seconds is None or not math.isfinite(seconds):
        return None
    return min(max(0.0, seconds), MAX_RETRY_AFTER)


@dataclass(frozen=True)
class RetryPolicy:
    """``retries`` tries after the first; waits of ``base`` × 2^attempt, equal-jittered
    (half fixed, half random) and capped at ``cap`` seconds, or what ``Retry-After`` says."""

    retries: int = 6
    base: float = 1.0
    cap: float = 60.0

    def delay(self, attempt: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry ``attempt`` (0-based)."""
        if retry_after is not None:
            return retry_after
        ceiling = min(self.cap, self.base * 2 ** min(attempt, 30))
        return ceiling / 2 + random.uniform(0, ceiling / 2)

    def run(self, call: Callable[[], T], transient: Callable[[BaseException], Any]) -> T:
        """``call()``, retried while ``transient(exc)`` is not None (it returns the failure's
        ``(status, retry_after)``); the last failure is raised."""
        for attempt in range(self.retries + 1):
            try:
                return call()
            except Exception as exc:
                hint = transient(exc)
                if hint is None or attempt == self.retries:
                    raise
                status, retry_after = hint
                notify(status)
                time.sleep(self.delay(attempt, retry_after))
        raise AssertionError("unreachable")


def notify(status: int | None) -> None:
    """Tell the listeners about one transient failure."""
    for listener in list(listeners):
        listener(status)


_POLICY = RetryPolicy()


def lm_retry_delay(exc: BaseException, attempt: int) -> float:
    """DSPy's retry delay for an LM call (see ``install``): the failure is reported, then
    Retry-After or the policy's jittered backoff."""
    status = getattr(exc, "status", None)
    notify(status if isinstance(status, int) else None)
    return _POLICY.delay(attempt, retry_after_seconds(getattr(exc, "retry_after", None)))


def install(policy: RetryPolicy) -> None:
    """Make ``policy`` the delay of DSPy's retry loop (``dspy.clients.execution._delay``,
    which otherwise waits 1, 2, 4 … 60 s without jitter and tells no one)."""
    global _POLICY
    from dspy.clients import execution

    _POLICY = policy
    if not hasattr(execution, "_delay"):
        raise RuntimeError("dspy.clients.execution._delay is gone: update modules/retries.py")
    execution._delay = lm_retry_delay


# called with (seconds, ok) when a served LM call ends (the adaptive concurrency's latency)
call_listeners: list[Callable[[float, bool], None]] = []


class CallTimer(BaseCallback):
    """A DSPy callback on the served LMs: each call's wall time, retries and waits
    included, and whether it succeeded, to ``call_listeners``."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}

    def on_lm_start(self, call_id: str, instance: Any, inputs: dict[str, Any]) -> None:
        if call_listeners:
            self.started[call_id] = time.perf_counter()

    def on_lm_end(self, call_id: str, outputs: Any, exception: Exception | None = None) -> None:
        t0 = self.started.pop(call_id, None)
        if t0 is not None:
            for listener in list(call_listeners):
                listener(time.perf_counter() - t0, exception is None)


CALL_TIMER = CallTimer()
