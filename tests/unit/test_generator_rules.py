"""The generator's rule checks on a written pair (no model involved)."""

import pytest

from modules.generator import check_candidate


@pytest.mark.parametrize(
    ("question", "answer", "error"),
    [
        ("Which village is the largest on Dunmarra?", "Caddow", None),
        ("Which city hosts the Vell Assembly?", "New Vell", None),
        ("", "Caddow", "empty question or answer"),
        ("Why did Ilvaro flood?", "rain", "how/why questions are not allowed"),
        ("Which village is largest?", "a b c d e f g h i j k", "the answer must be short"),
        ("Where is Caddow harbour?", "Caddow", "the question contains its answer"),
        ("What does the passage name?", "Ilvaro", "the question must stand alone"),
        # seen from the local 0.5B generator (docs/BENCHMARKS.md, run cost3)
        ("What was the festival called?", "P2 Quessel", "not a note reference like P2"),
        ("Which village is the largest?", "Caddow Caddow", "the answer repeats itself"),
    ],
)
def test_rules(question, answer, error):
    got = check_candidate(question, answer)
    assert got is None if error is None else (got is not None and error in got)
