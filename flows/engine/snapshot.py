"""What a run's progress is made of: its state at one moment (``Snapshot``), how it is
written as a line, and the plain stderr line itself (shared by the tracker in
flows/engine/progress.py and the displays in flows/engine/progress_display.py)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Listener = Callable[["Snapshot"], None]


def say(message: str) -> None:
    """One timestamped progress line on stderr."""
    sys.stderr.write(f"[{time.strftime('%H:%M:%S')}] {message}\n")  # not print: flows capture it
    sys.stderr.flush()


def round_line(rec: dict[str, Any]) -> str:
    """What one checkpointed round did, in one line."""
    head = (
        f"seed {rec['seed_id']} (S={rec['target_steps']}) round {rec['round']} "
        f"[{rec.get('detail', {}).get('mode', '?')}]: {rec['status']}"
    )
    if rec.get("attempts"):
        fewest = rec.get("min_searches")
        head += f", {rec['n_correct']}/{rec['attempts']} attempts right"
        head += f", fewest searches {fewest}" if fewest is not None else ""
    return f"{head} ({rec['lm_calls']} LM calls, {rec['seconds']:.0f} s)"


def duration(seconds: float | None) -> str:
    """'42s', '3m05s', '2h07m'; '?' when unknown."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def count(n: int) -> str:
    """'950', '12.3k', '4.56M'."""
    if n < 1000:
        return str(n)
    return f"{n / 1000:.1f}k" if n < 1_000_000 else f"{n / 1_000_000:.2f}M"


@dataclass(frozen=True)
class Snapshot:
    """A run's progress at one moment. ``accepted`` of ``wanted`` (generate: accepted items,
    evaluate: questions solved, ``label`` names them), ``done`` of ``total`` ``unit``."""

    run_id: str
    done: int
    total: int
    unit: str = "seeds"
    accepted: int | None = None
    wanted: int | None = None
    label: str = "accepted"
    lm_calls: int = 0
    tokens: int = 0
    elapsed: float = 0.0
    eta: float | None = None
    final: bool = False

    def fraction(self) -> float:
        """Share of the work done: seeds (or questions), or accepted of wanted if further."""
        frac = self.done / self.total if self.total else 1.0
        if self.wanted and self.accepted is not None:
            frac = max(frac, self.accepted / self.wanted)
        return min(1.0, frac)

    def stats(self) -> str:
        """'2/5 accepted, 4/20 seeds, 130 LM calls, 41.2k tokens, 1m30s elapsed, ETA 6m00s'"""
        parts = []
        if self.accepted is not None:
            of = f"/{self.wanted}" if self.wanted else ""
            parts.append(f"{self.accepted}{of} {self.label}")
        parts += [
            f"{self.done}/{self.total} {self.unit}",
            f"{count(self.lm_calls)} LM calls",
            f"{count(self.tokens)} tokens",
            f"{duration(self.elapsed)} elapsed",
        ]
        if not self.final:
            parts.append(f"ETA {duration(self.eta)}")
        return ", ".join(parts)

    def line(self) -> str:
        """The plain progress line."""
        return f"run {self.run_id}: {'done, ' if self.final else ''}{self.stats()}"
