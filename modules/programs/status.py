"""What became of a SAGE round: one name per outcome, used by the loop, the run files,
the metrics and the reports."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """A round's outcome (the string is what the run files hold)."""

    ACCEPTED = "accepted"  # pass@K and the fewest searches among right attempts >= S
    TOO_EASY = "too_easy"  # solved, in fewer than S searches
    INCORRECT = "incorrect"  # no attempt right
    GENERATION_FAILED = "generation_failed"  # no valid pair was written
    DISCARDED = "discarded"  # the last round failed
    UNVERIFIED = "unverified"  # the last round failed, kept on request (never exported)


TERMINAL = frozenset({Status.ACCEPTED, Status.DISCARDED, Status.UNVERIFIED})
REVISABLE = frozenset({Status.TOO_EASY, Status.INCORRECT})


def seed_done(last_status: str, last_round: int, rounds: int) -> bool:
    """Whether a seed needs no more rounds: its last one was terminal, or it was round R."""
    return last_status in TERMINAL or last_round >= rounds
