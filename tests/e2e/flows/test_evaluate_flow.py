"""The evaluate flow: real Prefect, embedded Qdrant and fastembed.

The resume test drives the agent with a scripted LM (RuleLM, named as such); the HotpotQA
test runs the real local model over a real index of the shared Wikipedia paragraphs.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import polars as pl
import pytest

from flows.evaluate import ATTEMPT_SCHEMA, EvaluateParams, compare_evaluations, evaluate_agent
from modules.errors import SageError
from tests.helpers import REPO, SAGE, RuleLM, clean_env, demo_agent_rule, plug_lms

HOTPOT = REPO.parent / "shared" / "data" / "qa" / "hotpotqa_dev_250.jsonl"


def _index(wd: Path, corpus: Path, collection: str) -> None:
    res = subprocess.run(
        [SAGE, "index", str(corpus), "--collection", collection, "--json"],
        cwd=wd, capture_output=True, text=True, timeout=900, env=clean_env(),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-2000:]


def test_evaluate_scores_groups_and_resumes_without_redoing(tmp_path, indexed_workdir, monkeypatch):
    indexed_workdir(into=tmp_path)
    qa = tmp_path / "qa.jsonl"
    rows = [  # the scripted agent always answers "Ferrin Vashti" after one search
        {"id": "a", "question": "Who led the first ascent of Mount Oskarrow?",
         "answer": "Ferrin Vashti", "hops": 2},
        {"id": "b", "question": "Who founded Brennick?", "answer": "Osric Tarn", "hops": 2},
        {"id": "c", "question": "Which vessel was Vashti's?", "answer": "x", "aliases": ["Vashti"],
         "hops": 3},
    ]  # fmt: skip
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lm = RuleLM(demo_agent_rule)
    plug_lms(monkeypatch, lm)
    monkeypatch.chdir(tmp_path)
    params = EvaluateParams(dataset=str(qa), fmt="qa", collection="demo", attempts=2, run_id="ev",
                            limit=3)  # fmt: skip
    s = evaluate_agent(params)
    run = Path(s["run_dir"])
    df = pl.read_parquet(run / "evaluation.parquet")
    assert df.schema == pl.Schema(ATTEMPT_SCHEMA) and df.height == 6
    o = s["metrics"]["overall"]
    # the scripted judge says "correct" to everything, so only the rules before and after it
    # decide: a: an exact match (no judge call); b: the judge's yes is refused by the overlap
    # guard (no word of "Osric Tarn" in the answer); c: the judge's yes stands, since the
    # alias "Vashti" is all in the answer (there is no F1 accept)
    assert dict(zip(df["qid"], df["correct"], strict=False)) == {"a": True, "b": False, "c": True}
    methods = {q: set(df.filter(pl.col("qid") == q)["judge_method"]) for q in "abc"}
    assert methods == {"a": {"exact"}, "b": {"overlap_guard"}, "c": {"llm"}}
    assert o["accuracy"] == round(2 / 3, 3) and o["mean_searches"] == 1.0
    assert o["step_parse_rate"] == 1.0 and o["lm_calls_per_attempt"] >= 2
    groups = {g["group"]: g for g in s["metrics"]["by_group"]}
    assert groups["2hop"]["accuracy"] == 0.5 and groups["3hop"]["accuracy"] == 1.0
    assert (run / "eval_report.md").read_text().count("| 2hop |") == 1
    calls = len(lm.prompts)
    s2 = evaluate_agent(params)
    assert s2["resumed"] and len(lm.prompts) == calls  # nothing redone
    assert "| qa.jsonl (qa) | 3 | 0.667 |" in compare_evaluations([run])
    with pytest.raises(SageError, match="attempts=2, not 1"):
        evaluate_agent(params.model_copy(update={"attempts": 1, "limit": None}))


@pytest.mark.llm
@pytest.mark.skipif(not HOTPOT.exists(), reason="needs ../shared/data (benchmark data)")
def test_local_model_on_ten_hotpotqa_questions_over_a_real_index(tmp_path, llm_models_dir):
    """Index the Wikipedia paragraphs of 10 HotpotQA dev questions (gold and distractors),
    then evaluate the local model on them through `sage evaluate`."""
    corpus = tmp_path / "paragraphs.jsonl"
    seen: set[str] = set()
    with corpus.open("w") as out:
        for line in HOTPOT.read_text().splitlines()[:10]:
            for c in json.loads(line)["contexts"]:
                if c["title"] not in seen:
                    seen.add(c["title"])
                    out.write(json.dumps({"id": c["title"], "title": c["title"],
                                          "text": c["paragraph_text"]}) + "\n")  # fmt: skip
    _index(tmp_path, corpus, "hotpot")
    res = subprocess.run(
        [SAGE, "evaluate", str(HOTPOT), "--format", "hotpotqa", "--collection", "hotpot",
         "--limit", "10", "--max-searches", "2", "--concurrency", "2", "--run-id", "hp", "--json"],
        cwd=tmp_path, capture_output=True, text=True, timeout=3000, env=clean_env(),
    )  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    s = json.loads(res.stdout)
    o = s["metrics"]["overall"]
    df = pl.read_parquet(Path(s["run_dir"]) / "evaluation.parquet")
    assert o["questions"] == 10 == df["qid"].n_unique() and df.height == 10
    assert df["n_searches"].max() <= 2 and df["step_calls"].min() >= 1
    # the metrics are those of the attempts stored (the model's quality is not asserted)
    rate = 1 - df["parse_failures"].sum() / df["step_calls"].sum()
    assert o["step_parse_rate"] == round(rate, 3) and o["attempts"] == 10
    assert o["accuracy"] == round(df["correct"].mean(), 3)  # K=1: pass@1 is the mean
    assert o["forced_rate"] == round(df["forced"].mean(), 3)
    assert df["seconds"].min() > 0 and df["lm_calls"].min() >= 1
    traces = [json.loads(x) for x in (Path(s["run_dir"]) / "traces.jsonl").read_text().splitlines()]
    searches = [
        t for r in traces for a in r["attempts"] for t in a["trace"] if t["type"] == "search"
    ]
    assert all(len(t["passages"]) <= 3 for t in searches)
    assert {p["title"] for t in searches for p in t["passages"]} <= seen


def test_questions_at_once_overlap_and_score_as_one_at_a_time(
    tmp_path, indexed_workdir, monkeypatch
):
    """``concurrency`` questions are in flight at once (the scripted LM, named as such,
    counts its calls running together), and the scores are those of one at a time."""
    import threading
    import time

    indexed_workdir(into=tmp_path)
    qa = tmp_path / "qa.jsonl"
    rows = [{"id": f"q{i}", "question": f"Who founded Brennick {i}?", "answer": "Osric Tarn"}
            for i in range(4)]  # fmt: skip
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    lock, active, peak = threading.Lock(), [0], [0]

    def rule(prompt: str) -> dict:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.3)
        with lock:
            active[0] -= 1
        return demo_agent_rule(prompt)

    plug_lms(monkeypatch, RuleLM(rule))
    monkeypatch.chdir(tmp_path)
    frames = {}
    for level in (1, 3):
        peak[0] = 0
        params = EvaluateParams(dataset=str(qa), fmt="qa", collection="demo", attempts=1,
                                run_id=f"c{level}", concurrency=level)  # fmt: skip
        s = evaluate_agent(params)
        assert s["metrics"]["overall"]["questions"] == 4
        frames[level] = pl.read_parquet(Path(s["run_dir"]) / "evaluation.parquet")
        assert peak[0] == level, (level, peak[0])
    cols = ["qid", "answer", "correct", "n_searches", "judge_method"]
    assert frames[1].select(cols).sort("qid").equals(frames[3].select(cols).sort("qid"))
