"""The typed checkpoint records of a run's log: a generation round (``RoundRecord``, its
full result a ``modules.programs.sage.RoundResult``) and an evaluated question (``QuestionRecord``).

On disk they stay the JSON lines they always were (``to_dict`` writes, ``from_dict`` reads,
unknown keys kept), so runs written before these types resume unchanged.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from modules.programs.attempts import Attempt
from modules.programs.sage import RoundResult


@dataclass(frozen=True)
class RoundRecord:
    """One checkpointed generation round: the seed and round, the flat candidate row (see
    flows/runs/metrics.py CANDIDATE_SCHEMA) and, unless it is a summary, the round's full
    result (``detail``: pair, attempts, generator trace, notes)."""

    seed_id: str
    round: int
    status: str
    run_id: str = ""
    doc_id: str | None = None
    target_steps: int | None = None
    question: str | None = None
    answer: str | None = None
    answer_type: str | None = None
    supporting_ids: list[str] = field(default_factory=list)
    attempts: int | None = None
    n_correct: int | None = None
    pass_at_k: bool | None = None
    avg_at_k: float | None = None
    min_searches: int | None = None
    tokens: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # the other row keys, kept as written
    detail: RoundResult | None = None

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoundRecord:
        names = {f.name for f in fields(cls)} - {"extra", "detail"}
        known = {k: v for k, v in d.items() if k in names}
        known["round"] = int(known["round"])
        known["tokens"] = int(known.get("tokens") or 0)
        known["supporting_ids"] = list(known.get("supporting_ids") or [])
        extra = {k: v for k, v in d.items() if k not in names and k != "detail"}
        return cls(**known, extra=extra, detail=_result(d.get("detail")))

    def summary(self) -> dict[str, Any]:
        """The record's flat row, without its traces."""
        row = {f.name: getattr(self, f.name) for f in fields(self)}
        extra = row.pop("extra")
        row.pop("detail")
        return {**row, **extra}

    def to_dict(self) -> dict[str, Any]:
        """The checkpoint line (``detail`` included when present)."""
        row = self.summary()
        return row | {"detail": self.detail.to_dict()} if self.detail else row

    @property
    def item_id(self) -> str:
        """The dataset item id an accepted round gets: ``<run_id>:<seed_id>``."""
        return f"{self.run_id}:{self.seed_id}"

    @property
    def candidate(self) -> dict[str, Any]:
        """The round's pair as the generator wrote it ({} when unknown)."""
        return (self.detail.candidate if self.detail else None) or {}

    @property
    def judged(self) -> list[Attempt]:
        """The round's judged agent attempts ([] when none, or a summary)."""
        return list(self.detail.attempts) if self.detail else []

    @property
    def notes(self) -> list[dict[str, Any]]:
        """The generator's research notes (the seed document first)."""
        return list(self.detail.notes) if self.detail else []

    @property
    def error(self) -> str:
        return (self.detail.error if self.detail else None) or ""


def _result(detail: dict[str, Any] | None) -> RoundResult | None:
    """A record's full round result (keys a later sage version added are left out)."""
    if not detail:
        return None
    names = {f.name for f in fields(RoundResult)}
    return RoundResult.from_dict({k: v for k, v in detail.items() if k in names})


def first_rounds(records: Iterable[RoundRecord]) -> list[RoundRecord]:
    """One seed's records in round order; the first record of a round wins (a round re-run
    after a crash may have been appended twice)."""
    by_round: dict[int, RoundRecord] = {}
    for rec in records:
        by_round.setdefault(rec.round, rec)
    return [by_round[r] for r in sorted(by_round)]


def by_seed(records: Iterable[RoundRecord]) -> dict[str, list[RoundRecord]]:
    """Round records by seed, each seed's in round order, one per round (first wins)."""
    out: dict[str, list[RoundRecord]] = defaultdict(list)
    for rec in records:
        out[rec.seed_id].append(rec)
    return {sid: first_rounds(rs) for sid, rs in out.items()}


@dataclass(frozen=True)
class QuestionRecord:
    """One evaluated question: its gold answers and K judged attempts."""

    qid: str
    question: str
    answers: list[str]
    group: str | None = None
    attempts: list[Attempt] = field(default_factory=list)
    index: int = 0

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> QuestionRecord:
        atts = [Attempt.from_dict(a) for a in d.get("attempts") or []]
        index = int(d.get("index") or 0)
        return cls(d["qid"], d["question"], list(d["answers"]), d.get("group"), atts, index)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def solved(self) -> bool:
        """Some attempt was judged right (pass@K)."""
        return any(a.correct for a in self.attempts)
