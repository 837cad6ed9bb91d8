"""Short progress lines on stderr: one per finished round, so a slow run is never silent."""

from __future__ import annotations

import sys
import time
from typing import Any


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
