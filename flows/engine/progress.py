"""Progress of a run: a line per finished round, and the run's overall state (items accepted
of those wanted, seeds done of those planned, LM calls, tokens, elapsed, ETA) that a
display shows (flows/engine/progress_display.py: a rich line on a terminal, plain lines
otherwise).

A flow opens a ``RunTracker`` around its work and reports to it; seed tasks in the same
process add their rounds' cost as they finish (``round_done``), the flow adds finished
seeds. Listeners registered with ``watch`` receive every ``Snapshot``; with none, the
tracker opens the default display for its lifetime.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any

from flows.engine.progress_display import open_display
from flows.engine.snapshot import (  # noqa: F401 - the progress API in one import
    Listener,
    Snapshot,
    count,
    duration,
    round_line,
    say,
)
from modules.programs.status import Status

_LISTENERS: list[Listener] = []
_TRACKERS: dict[str, RunTracker] = {}
_LOCK = threading.Lock()


class RunTracker:
    """A run's progress, fed by the flow (finished seeds or questions) and by seed tasks of
    this process (each round's cost). Costs are kept by key (seed and round, or question),
    so a round reported twice (by its task, then by the flow) counts once."""

    def __init__(self, snapshot: Snapshot, costs: dict[Any, tuple[int, int]] | None = None):
        self.state = snapshot
        self.costs: dict[Any, tuple[int, int]] = dict(costs or {})
        self.start = time.monotonic()
        self.start_fraction = snapshot.fraction()
        self._lock = threading.Lock()
        self._stack = ExitStack()

    def __enter__(self) -> RunTracker:
        with _LOCK:
            _TRACKERS[self.state.run_id] = self
            quiet = not _LISTENERS
        if quiet:  # nobody is watching: show the default display
            self._stack.enter_context(watch(self._stack.enter_context(open_display())))
        self.publish()
        return self

    def __exit__(self, *exc: object) -> None:
        self.publish(final=exc[0] is None)
        with _LOCK:
            _TRACKERS.pop(self.state.run_id, None)
        self._stack.close()

    def cost(self, key: Any, lm_calls: int, tokens: int) -> None:
        """Record one unit of work's LM calls and tokens, and publish."""
        with self._lock:
            self.costs[key] = (int(lm_calls or 0), int(tokens or 0))
        self.publish()

    def finished(self, done: int | None = None, accepted: int | None = None, n: int = 1) -> None:
        """``n`` more seeds (or questions) finished, or ``done`` in all; the accepted count."""
        with self._lock:
            s = self.state
            done = s.done + n if done is None else done
            accepted = s.accepted if accepted is None else accepted
            self.state = replace(s, done=done, accepted=accepted)
        self.publish()

    def seed_done(self, rounds: list[dict[str, Any]], accepted: int) -> None:
        """A seed finished (its checkpointed rounds), and the run's accepted count."""
        with self._lock:
            self.costs.update(round_costs(rounds))
        self.finished(accepted=accepted)

    def snapshot(self, final: bool = False) -> Snapshot:
        """The current state with its costs, elapsed time and ETA (from the pace since this
        tracker started: resumed work does not make the run look fast)."""
        with self._lock:
            calls = sum(c for c, _ in self.costs.values())
            tokens = sum(t for _, t in self.costs.values())
            s = replace(self.state, lm_calls=calls, tokens=tokens, final=final)
        elapsed = time.monotonic() - self.start
        gained = s.fraction() - self.start_fraction
        eta = elapsed * (1 - s.fraction()) / gained if gained > 0 else None
        return replace(s, elapsed=elapsed, eta=eta)

    def publish(self, final: bool = False) -> None:
        snap = self.snapshot(final)
        for listener in list(_LISTENERS):
            listener(snap)


@contextmanager
def watch(listener: Listener) -> Iterator[Listener]:
    """Send every run's snapshots in this process to ``listener`` within the block."""
    with _LOCK:
        _LISTENERS.append(listener)
    try:
        yield listener
    finally:
        with _LOCK:
            _LISTENERS.remove(listener)


def round_costs(rounds: Iterable[dict[str, Any]]) -> dict[Any, tuple[int, int]]:
    """{(seed id, round): (LM calls, tokens)} of checkpointed round summaries."""
    return {
        (r["seed_id"], int(r["round"])): (int(r.get("lm_calls") or 0), int(r.get("tokens") or 0))
        for r in rounds
    }


def generate_tracker(
    run_id: str, planned: int, wanted: int | None, finished: int, done: dict[str, list[dict]]
) -> RunTracker:
    """The tracker of a generate run (or an experiment arm), with its checkpointed rounds."""
    accepted = sum(1 for rs in done.values() if rs and rs[-1]["status"] == Status.ACCEPTED)
    snap = Snapshot(run_id, finished, planned, accepted=accepted, wanted=wanted)
    return RunTracker(snap, round_costs(r for rs in done.values() for r in rs))


def round_done(rec: dict[str, Any]) -> None:
    """A seed task of this process finished a round: its run's tracker counts its cost."""
    tracker = _TRACKERS.get(str(rec.get("run_id")))
    if tracker is not None:
        key = (rec["seed_id"], int(rec["round"]))
        tracker.cost(key, rec.get("lm_calls", 0), rec.get("tokens", 0))
