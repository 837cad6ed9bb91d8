"""The suite's longest tests head each pytest-xdist worker's first share (tests/conftest.py)."""

from __future__ import annotations

from types import SimpleNamespace

from tests.conftest import LONGEST, longest_first


def test_each_worker_share_starts_with_one_of_the_longest_tests():
    items = [SimpleNamespace(originalname=f"t{i}") for i in range(11)]
    items[3:3] = [SimpleNamespace(originalname=n) for n in reversed(LONGEST)]
    out = longest_first(items, 2)
    assert sorted(id(i) for i in out) == sorted(id(i) for i in items)  # nothing lost
    half = len(out) // 2
    assert [out[0].originalname, out[half].originalname] == list(LONGEST[:2])
    assert [out[1].originalname, out[half + 1].originalname] == list(LONGEST[2:4])
    assert [i.originalname for i in longest_first(items, 1)][: len(LONGEST)] == list(LONGEST)
