"""Dataset assembly (relaxed last round, exact duplicates) and the Search-R1/verl export."""

from types import SimpleNamespace

import polars as pl
import pytest

from flows.runs.export import SEARCH_R1_PROMPT, export_run
from flows.runs.finalise import DATASET_SCHEMA, dataset_rows
from flows.runs.store import RunStore
from modules.errors import SageError


def _round(sid, rnd, status, question, min_searches=3, target=3):
    return {"seed_id": sid, "run_id": "r1", "round": rnd, "status": status, "doc_id": f"d{sid}",
            "question": question, "answer": "Ada Venn", "answer_type": "entity",
            "target_steps": target, "min_searches": min_searches, "pass_at_k": True,
            "n_correct": 1, "attempts": 4, "avg_at_k": 0.25}  # fmt: skip


def _params(**kw):
    return SimpleNamespace(**({"keep_unverified": False, "rounds": 2} | kw))


def test_relaxed_final_round_keeps_solved_too_easy_items_marked():
    done = {
        "s1": [_round("s1", 0, "accepted", "Q1?")],
        "s2": [_round("s2", 0, "too_easy", "Q2a?", 1), _round("s2", 2, "too_easy", "Q2?", 2)],
        "s3": [_round("s3", 2, "too_easy", "Q3?", min_searches=1)],  # < 2 searches: never
        "s4": [_round("s4", 1, "too_easy", "Q4?", 2)],  # not the last round: still running
    }
    strict, _ = dataset_rows(done, _params())
    assert [r["question"] for r in strict] == ["Q1?"]
    relaxed, _ = dataset_rows(done, _params(relaxed_final_round=True))
    assert [(r["question"], r["relaxed"]) for r in relaxed] == [("Q1?", False), ("Q2?", True)]


def test_exact_duplicate_questions_are_dropped_first_kept():
    done = {
        "s1": [_round("s1", 0, "accepted", "Who composed it?")],
        "s2": [_round("s2", 0, "accepted", "  who composed  IT? ")],
        "s3": [_round("s3", 0, "accepted", "Who composed it first?")],
    }
    rows, dropped = dataset_rows(done, _params())
    assert [r["id"] for r in rows] == ["r1:s1", "r1:s3"] and dropped == 1


def _run(tmp_path, rows):
    store = RunStore(tmp_path / "runs", "r1")
    store.start({"run_id": "r1", "params": {}}, resume_keys=[])
    store.write_parquet("dataset.parquet", pl.DataFrame(rows, schema=DATASET_SCHEMA))
    return store


def _item(i, question, verified=True, relaxed=False):
    return {"id": f"r1:s{i}", "question": question, "answer": f"A{i}", "answer_type": "entity",
            "target_steps": 3, "min_searches": 3, "pass_at_k": True, "n_correct": 1,
            "attempts": 4, "avg_at_k": 0.25, "round_accepted": 0, "seed_doc_id": "d",
            "supporting_ids": [], "verified": verified, "relaxed": relaxed}  # fmt: skip


def test_searchr1_rows_are_what_the_trainer_reads(tmp_path):
    store = _run(tmp_path, [_item(0, "  Who composed the shoals symphony "),
                            _item(1, "Kept unverified?", verified=False)])  # fmt: skip
    res = export_run(store.path, "searchr1", data_source="nq")
    df = pl.read_parquet(res["paths"]["train"])
    assert df.height == 1  # --keep-unverified items are never exported for training
    row = df.row(0, named=True)
    assert row["id"] == "r1:s0" and row["question"] == "Who composed the shoals symphony?"
    assert row["golden_answers"] == ["A0"] and row["data_source"] == "nq"
    assert row["prompt"] == [
        {"role": "user", "content": SEARCH_R1_PROMPT.format(question=row["question"])}
    ]
    assert row["prompt"][0]["content"].startswith("Answer the given question. You must conduct")
    assert row["prompt"][0]["content"].endswith("Question: Who composed the shoals symphony?\n")
    assert row["ability"] == "fact-reasoning"
    assert row["reward_model"] == {"style": "rule", "ground_truth": {"target": ["A0"]}}
    assert row["extra_info"]["split"] == "train" and row["extra_info"]["index"] == 0


def test_seeded_test_split_and_the_validated_copy_by_default(tmp_path):
    store = _run(tmp_path, [_item(i, f"Question {i}?") for i in range(10)])
    a = export_run(store.path, "searchr1", out=tmp_path / "a", test_frac=0.3, seed=7)
    b = export_run(store.path, "searchr1", out=tmp_path / "b", test_frac=0.3, seed=7)
    assert a["counts"] == {"train": 7, "test": 3}
    test_a = pl.read_parquet(a["paths"]["test"])["id"].to_list()
    assert test_a == pl.read_parquet(b["paths"]["test"])["id"].to_list()
    train_a = pl.read_parquet(a["paths"]["train"])["id"].to_list()
    assert not set(test_a) & set(train_a)
    vdir = store.path / "validation" / "v1"
    vdir.mkdir(parents=True)
    pl.DataFrame([_item(3, "Question 3?")], schema=DATASET_SCHEMA).write_parquet(
        vdir / "dataset.filtered.parquet"
    )
    RunStore(store.path / "validation", "v1").mark_latest()  # as `sage validate` does
    res = export_run(store.path, "searchr1", out=tmp_path / "c")
    assert res["counts"] == {"train": 1} and res["source"].endswith("dataset.filtered.parquet")
    raw = export_run(store.path, "hf", out=tmp_path / "d", validated=False)
    assert raw["counts"] == {"train": 10}
    with pytest.raises(SageError, match="--test-frac"):
        export_run(store.path, "hf", test_frac=1.0)
