"""Run store: durable appends, torn-line recovery, resume guards, latest pointer, metrics."""

import json

import pytest

from flows.runs.metrics import candidates_frame, compute_metrics
from flows.runs.store import RunStore, resolve_run_dir
from modules.errors import SageError


def _manifest(attempts=4):
    return {"run_id": "r1", "params": {"attempts": attempts, "rounds": 2}, "seeds": [{"s": 1}]}


def test_torn_last_line_is_skipped_and_cut_when_the_run_resumes(tmp_path):
    store = RunStore(tmp_path, "r1")
    store.start(_manifest(), resume_keys=["attempts"])
    store.append_record({"seed_id": "a", "round": 0})
    store.append_record({"seed_id": "a", "round": 1})
    with (store.path / "checkpoints.jsonl").open("ab") as fh:
        fh.write(b'{"seed_id": "b", "rou')  # killed mid-write
    assert [r["round"] for r in store.load_records()] == [0, 1]
    assert (store.path / "checkpoints.jsonl").read_bytes().endswith(b'"rou')  # reads never cut
    assert RunStore(tmp_path, "r1").start(_manifest(), resume_keys=["attempts"]) is True
    store.append_record({"seed_id": "b", "round": 0})
    assert [r["seed_id"] for r in store.load_records()] == ["a", "a", "b"]


def test_corrupt_middle_line_names_file_and_line(tmp_path):
    store = RunStore(tmp_path, "r1")
    store.start(_manifest(), resume_keys=[])
    (store.path / "checkpoints.jsonl").write_text('{"a": 1}\nnot json\n{"b": 2}\n')
    with pytest.raises(SageError, match=r"checkpoints.jsonl:2: corrupt"):
        store.load_records()


def test_resume_keeps_seed_plan_and_refuses_changed_settings(tmp_path):
    store = RunStore(tmp_path, "r1")
    assert store.start(_manifest(), resume_keys=["attempts"]) is False
    again = {**_manifest(), "seeds": [{"s": 999}]}
    assert RunStore(tmp_path, "r1").start(again, resume_keys=["attempts"]) is True
    saved = json.loads((store.path / "manifest.json").read_text())
    assert saved["seeds"] == [{"s": 1}] and saved["resumed"] == 1
    with pytest.raises(SageError, match="attempts=4, not 2"):
        RunStore(tmp_path, "r1").start(_manifest(attempts=2), resume_keys=["attempts"])


def test_latest_pointer_and_resolution(tmp_path):
    store = RunStore(tmp_path, "r1")
    store.start(_manifest(), resume_keys=[])
    store.mark_latest()
    assert resolve_run_dir(tmp_path / "latest") == store.path.resolve()
    with pytest.raises(SageError, match="not a sage run directory"):
        resolve_run_dir(tmp_path)


@pytest.mark.parametrize("bad", ["", "a/b", "latest", ".."])
def test_invalid_run_ids(tmp_path, bad):
    with pytest.raises(SageError):
        RunStore(tmp_path, bad)


def _row(seed, rnd, status, min_s=None, tokens=10):
    ok = status in ("accepted", "too_easy")
    return {"seed_id": seed, "round": rnd, "status": status, "target_steps": 3,
            "pass_at_k": ok, "avg_at_k": 0.5 if ok else 0.0, "min_searches": min_s,
            "mean_searches": 2.0, "tokens": tokens, "lm_calls": 2, "seconds": 1.0}  # fmt: skip


def test_metrics_carry_finished_seeds_forward():
    rows = [
        _row("a", 0, "accepted", 3),  # accepted at round 0, stays accepted
        _row("b", 0, "too_easy", 1),
        _row("b", 1, "accepted", 4),  # fixed by difficulty feedback
        _row("c", 0, "incorrect"),
        _row("c", 1, "discarded"),
    ]
    m = compute_metrics(candidates_frame(rows), rounds=1)
    r0, r1 = m["per_round"]
    assert (r0["pct_correct"], r0["pct_pass"]) == (pytest.approx(66.67), pytest.approx(33.33))
    assert (r1["pct_correct"], r1["pct_pass"]) == (pytest.approx(66.67), pytest.approx(66.67))
    assert r0["mean_min_searches"] == 2.0 and r1["mean_min_searches"] == 3.5
    assert m["funnel"]["accepted"] == 2 and m["funnel"]["ever_correct"] == 2
    assert m["cost"]["tokens"] == 50 and m["cost"]["tokens_per_accepted"] == 25.0
    assert m["status_counts"] == {"accepted": 2, "discarded": 1}


def test_a_seed_task_knows_when_it_runs_again(tmp_path):
    """A rerun of a seed (a retry, a Dask worker killed) must read its saved rounds first."""
    store = RunStore(tmp_path, "r1")
    store.start(_manifest(), resume_keys=[])
    assert store.first_start("s00001") is True
    assert RunStore(tmp_path, "r1").first_start("s00001") is False  # any process sees it
    assert store.first_start("s00002") is True


def test_a_round_written_in_the_current_format_reads_typed_and_writes_back_the_same(tmp_path):
    """Checkpoint lines keep their format: a line as `sage generate` writes it today (the
    flat row, the worker, the full round result) reads into a RoundRecord and back to the
    same JSON; a resumed seed gets its RoundResult."""
    from tests.unit.flows.runs.export_run import judged_run

    store = judged_run(tmp_path)
    lines = [json.loads(x) for x in (store.path / "checkpoints.jsonl").read_text().splitlines()]
    rounds = store.rounds()
    assert sorted(rounds) == ["s1", "s2"] and [r.round for r in rounds["s2"]] == [0, 1]
    first = rounds["s1"][0]
    assert (first.item_id, first.status, first.target_steps) == ("r1:s1", "accepted", 2)
    assert first.question == lines[0]["question"] and first.candidate["question"] == first.question
    assert (
        first.judged
        and first.judged[0].n_searches == lines[0]["detail"]["attempts"][0]["n_searches"]
    )
    assert first.extra["strategy"] == "feedback"
    assert [r.to_dict() for rs in rounds.values() for r in rs] == lines
    assert [r.detail.status for r in store.rounds_of("s2")] == ["too_easy", "accepted"]
    summaries = store.rounds(detail=False)
    assert summaries["s1"][0].detail is None and "detail" not in summaries["s1"][0].summary()
