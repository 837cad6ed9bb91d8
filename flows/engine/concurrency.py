"""Adaptive concurrency (``--concurrency auto``): how many seeds a run keeps in flight
against a served model, found by AIMD as TCP finds its window.

Every served LM call reports its latency (``modules.retries.call_listeners``) and every
transient failure its status (``modules.retries.listeners``). After a window's worth of
calls (as many as the current level, at least ``MIN_SAMPLE``), the level grows by one if
their median latency stayed within ``rise`` × the best median seen and none failed; it
halves on a 429 or 503 (once per window: a burst of 429s is one signal) or on a latency
rise. The level stays within [1, ``maximum``]. Against the local model the run keeps its
fixed slots: no window is made.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from typing import Any

from modules import retries

MIN_SAMPLE = 8  # calls per decision at the least
THROTTLED = (429, 503)


class AdaptiveWindow:
    """The seeds-in-flight level under AIMD; ``level`` is read by the seed loop."""

    def __init__(self, maximum: int, start: int = 4, rise: float = 2.0):
        self.maximum = max(1, maximum)
        self.level = max(1, min(start, self.maximum))
        self.rise = rise
        self.best: float | None = None  # the lowest window median latency seen
        self.samples: list[float] = []
        self.failed = False
        self.calls_since_cut = 0
        self.history: list[dict[str, Any]] = [self._point("start")]
        self.lock = threading.Lock()
        self.on_change: Callable[[int, int, str], None] | None = None

    def _point(self, reason: str) -> dict[str, Any]:
        return {"t": round(time.time(), 2), "level": self.level, "reason": reason}

    def call_ended(self, seconds: float, ok: bool) -> None:
        """One served LM call ended after ``seconds`` (retries included)."""
        with self.lock:
            self.calls_since_cut += 1
            self.samples.append(seconds)
            self.failed |= not ok
            if len(self.samples) < max(MIN_SAMPLE, self.level):
                return
            median = statistics.median(self.samples)
            failed, self.samples, self.failed = self.failed, [], False
            if self.best is None or median < self.best:
                self.best = median
            if median > self.rise * self.best:
                self.best = median / self.rise  # re-anchor: a slower server is not a spiral
                self._set(self.level // 2, "latency rise")
            elif not failed:
                self._set(self.level + 1, "latency holds")

    def transient(self, status: int | None) -> None:
        """One transient failure; 429/503 halve the level once per window of calls."""
        if status not in THROTTLED:
            return
        with self.lock:
            if self.calls_since_cut < self.level and self.history[-1]["reason"] == "throttled":
                return  # the same burst
            self.samples, self.failed = [], False
            self._set(self.level // 2, "throttled")

    def _set(self, level: int, reason: str) -> None:
        old, self.level = self.level, max(1, min(level, self.maximum))
        if reason != "latency holds":
            self.calls_since_cut = 0
        if self.level != old or reason == "throttled":
            self.history.append(self._point(reason))
            if self.on_change is not None:
                self.on_change(old, self.level, reason)

    def __enter__(self) -> AdaptiveWindow:
        retries.call_listeners.append(self.call_ended)
        retries.listeners.append(self.transient)
        return self

    def __exit__(self, *exc: object) -> None:
        retries.call_listeners.remove(self.call_ended)
        retries.listeners.remove(self.transient)

    def record(self) -> dict[str, Any]:
        """What the run's metrics keep: the final, lowest, highest and mean level."""
        levels = [p["level"] for p in self.history]
        return {
            "mode": "auto",
            "max_concurrency": self.maximum,
            "final": self.level,
            "min": min(levels),
            "max": max(levels),
            "mean": round(sum(levels) / len(levels), 2),
            "changes": len(self.history) - 1,
            "throttled": sum(p["reason"] == "throttled" for p in self.history),
            "history": self.history[-200:],
        }


class FixedWindow:
    """``--concurrency N``: always N."""

    def __init__(self, level: int):
        self.level = self.maximum = level
        self.on_change: Callable[[int, int, str], None] | None = None

    def __enter__(self) -> FixedWindow:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def record(self) -> dict[str, Any]:
        return {"mode": "fixed", "final": self.level}
