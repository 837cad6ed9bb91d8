"""Seed planning is deterministic, honours ranges and quotas, and rejects bad specs."""

import pytest

from flows.runs.seeds import parse_steps, plan_seeds
from modules.errors import SageError

DOCS = [f"d{i}" for i in range(20)]


def test_same_seed_same_plan_other_seed_other_plan():
    a = plan_seeds(DOCS, parse_steps("2-5"), 10, seed=7)
    assert a == plan_seeds(list(reversed(DOCS)), parse_steps("2-5"), 10, seed=7)
    assert a != plan_seeds(DOCS, parse_steps("2-5"), 10, seed=8)
    assert {p["target_steps"] for p in a} <= {2, 3, 4, 5}
    assert len({p["doc_id"] for p in a}) == 10  # no document reused while others remain


def test_quotas_fix_the_mix_of_targets():
    plan = plan_seeds(DOCS, parse_steps("2:3,4:2"), 999, seed=1)
    assert sorted(p["target_steps"] for p in plan) == [2, 2, 2, 4, 4]


def test_small_corpus_reuses_documents():
    plan = plan_seeds(["x", "y"], parse_steps("3"), 5, seed=0)
    assert [p["seed_id"] for p in plan] == [f"s{i:05d}" for i in range(5)]
    assert {p["doc_id"] for p in plan} == {"x", "y"}


@pytest.mark.parametrize("bad", ["", "5-2", "0", "11", "two", "2:x"])
def test_bad_step_specs_are_rejected(bad):
    with pytest.raises(SageError, match="--steps"):
        parse_steps(bad)


def test_empty_collection_is_an_error():
    with pytest.raises(SageError, match="no documents"):
        plan_seeds([], parse_steps("2"), 3, seed=0)
