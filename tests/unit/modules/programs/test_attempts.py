"""The verification rules on judged attempts, in one place: fewest searches, the verdict
(pass@K and min searches >= S) and the attempt the reviser is shown."""

from __future__ import annotations

import random
from dataclasses import asdict

import pytest

from modules.programs.attempts import Attempt, best_attempt, fewest_searches, verdict
from modules.programs.status import Status


def _att(index, correct, n):
    return Attempt(index, "a", n, correct, {}, [], {})


def test_fewest_searches_among_right_attempts_with_ties_by_index():
    atts = [_att(0, False, 1), _att(1, True, 3), _att(2, True, 2), _att(3, True, 2)]
    assert fewest_searches(atts).index == 2
    assert fewest_searches([_att(0, False, 1)]) is None


@pytest.mark.parametrize(
    ("attempts", "s", "status"),
    [
        ([_att(0, True, 3), _att(1, True, 5)], 3, Status.ACCEPTED),
        ([_att(0, True, 2), _att(1, True, 5)], 3, Status.TOO_EASY),  # the fewest counts
        ([_att(0, False, 5), _att(1, False, 5)], 1, Status.INCORRECT),
        ([], 1, Status.INCORRECT),
    ],
)
def test_verdict(attempts, s, status):
    assert verdict(attempts, s) is status


def test_best_attempt_is_the_right_one_else_a_seeded_random_one():
    atts = [_att(0, False, 1), _att(1, True, 4), _att(2, False, 2)]
    assert best_attempt(atts, random.Random(0)).index == 1
    wrong = [_att(i, False, i) for i in range(4)]
    picks = {best_attempt(wrong, random.Random(s)).index for s in range(20)}
    assert len(picks) > 1  # random, not always the first
    assert best_attempt([], random.Random(0)) is None


def test_an_attempt_round_trips_through_its_record_and_ignores_unknown_keys():
    a = Attempt(1, "x", 2, True, {"method": "exact"}, [{"type": "search"}], {"lm_calls": 3},
                parse_failures=1, forced=False)  # fmt: skip
    assert Attempt.from_dict(asdict(a) | {"added_later": 1}) == a
