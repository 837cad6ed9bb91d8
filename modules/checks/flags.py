"""The flags a validation sets on an item, and which of them `sage export` drops.

Each flag is a boolean column ``flag_<name>`` of ``validation.parquet`` and of the run's
``dataset.parquet`` (after a validation); the detail (which passage, which eval item, which
earlier item) is in other columns of ``validation.parquet``.
"""

from __future__ import annotations

from typing import Any

from modules.errors import SageError

FLAGS = (
    "single_passage",  # one supporting passage answers it alone
    "closed_book",  # the solver answers it with no passage
    "contaminated",  # an eval question's long n-gram, or its embedding and answer
    "near_duplicate",  # cosine >= threshold to an earlier item (this run or published)
    "leakage",  # the answer is in the question
    "ambiguous",  # wrong attempts agree on a rival answer
    "reverify_failed",  # fresh attempts no longer solve it
    "difficulty_not_confirmed",  # fresh attempts solve it in fewer than S searches
    "solver_disagree",  # some solver (the run's agent, a --solver-lm) did not solve it
)
DROPPED = tuple(f for f in FLAGS if f not in ("difficulty_not_confirmed", "solver_disagree"))


def column(flag: str) -> str:
    return f"flag_{flag}"


def drops(strict: bool = False, agree: bool = False) -> list[str]:
    """The flags that remove an item from exports and from the filtered copy."""
    extra = ["difficulty_not_confirmed"] * strict + ["solver_disagree"] * agree
    return [*DROPPED, *extra]


def check_keep(keep: list[str] | tuple[str, ...]) -> list[str]:
    """``--keep`` values, checked: each must name a flag."""
    bad = [k for k in keep if k not in FLAGS]
    if bad:
        raise SageError(f"--keep {bad[0]}: not a flag (one of {', '.join(FLAGS)})")
    return list(keep)


def kept(row: dict[str, Any], dropped: list[str]) -> bool:
    """Whether a row with ``flag_*`` columns has none of the ``dropped`` flags set."""
    return not any(row.get(column(f)) for f in dropped)
