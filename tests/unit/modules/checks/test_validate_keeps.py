"""Which validated items go to the filtered copy and to exports: strict mode also needs the
re-verified difficulty (fresh attempts solved the item in at least S searches)."""

from __future__ import annotations

import pytest

from modules.checks.flags import FLAGS, column, drops, kept

CLEAN = {column(f): False for f in FLAGS}


@pytest.mark.parametrize(
    ("flag", "lenient", "strict"),
    [
        (None, True, True),
        ("difficulty_not_confirmed", True, False),  # solved, but in fewer than S searches
        ("reverify_failed", False, False),
        ("leakage", False, False),
        ("near_duplicate", False, False),
        ("ambiguous", False, False),
        ("single_passage", False, False),
        ("contaminated", False, False),
    ],
)
def test_strict_also_needs_confirmed_difficulty(flag, lenient, strict):
    row = {**CLEAN, **({column(flag): True} if flag else {})}
    assert (kept(row, drops(strict=False)), kept(row, drops(strict=True))) == (lenient, strict)
