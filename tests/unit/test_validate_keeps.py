"""Which validated items go to the filtered copy: strict mode also needs the re-verified
difficulty (fresh attempts solved the item in at least S searches)."""

from __future__ import annotations

import pytest

from flows.validate import keeps

CLEAN = {"leakage": None, "near_duplicate_of": None, "ambiguous_rival": None,
         "reverify_pass": True, "difficulty_confirmed": True}  # fmt: skip


@pytest.mark.parametrize(
    ("change", "lenient", "strict"),
    [
        ({}, True, True),
        ({"difficulty_confirmed": False}, True, False),  # solved, but in fewer than S searches
        ({"difficulty_confirmed": None, "reverify_pass": None}, True, True),  # not re-verified
        ({"reverify_pass": False, "difficulty_confirmed": False}, False, False),
        ({"leakage": "answer_in_question"}, False, False),
        ({"near_duplicate_of": "r:s1"}, False, False),
        ({"ambiguous_rival": "brennick"}, False, False),
    ],
)
def test_strict_also_needs_confirmed_difficulty(change, lenient, strict):
    row = {**CLEAN, **change}
    assert (keeps(row, strict=False), keeps(row, strict=True)) == (lenient, strict)
