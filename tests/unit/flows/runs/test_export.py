"""Dataset assembly (relaxed last round, exact duplicates) and the exports: Search-R1/verl
RL rows, SFT conversations from the verified trajectories, Hugging Face datasets."""

import json
import re
import subprocess
import sys

import polars as pl
import pytest

from flows.generate import GenerateParams
from flows.runs.export import SEARCH_R1_PROMPT, SEARCH_R1_SOURCES, export_run
from flows.runs.finalise import DATASET_SCHEMA, dataset_rows
from flows.runs.hf import hub_files, push_to_hub
from flows.runs.records import RoundRecord
from flows.runs.store import RunStore
from modules.errors import SageError
from modules.textnorm import best_match
from tests.helpers import REPO
from tests.unit.flows.runs.export_run import P, judged_run


def _round(sid, rnd, status, question, min_searches=3, target=3):
    row = {"seed_id": sid, "run_id": "r1", "round": rnd, "status": status, "doc_id": f"d{sid}",
            "question": question, "answer": "Ada Venn", "answer_type": "entity",
            "target_steps": target, "min_searches": min_searches, "pass_at_k": True,
            "n_correct": 1, "attempts": 4, "avg_at_k": 0.25}  # fmt: skip
    return RoundRecord.from_dict(row)


def _params(**kw):
    return GenerateParams(**({"seeds": 4, "keep_unverified": False, "rounds": 2} | kw))


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


def test_aliases_the_judge_accepted_and_the_generator_gave_reach_the_gold(tmp_path):
    store = judged_run(tmp_path)
    res = export_run(store.path, "searchr1")  # the default data_source vanilla Search-R1 takes
    rows = {r["id"]: r for r in pl.read_parquet(res["paths"]["train"]).iter_rows(named=True)}
    # s1: "A. Venn" was accepted by the LLM judge; "Bo Lin" was judged wrong: never a gold
    assert rows["r1:s1"]["golden_answers"] == ["Ada Venn", "A. Venn"]
    assert rows["r1:s2"]["golden_answers"] == ["10 January 1888", "1888-01-10"]  # generator's
    for r in rows.values():
        assert r["reward_model"]["ground_truth"]["target"] == r["golden_answers"]
        assert r["data_source"] == "nq" and r["data_source"] in SEARCH_R1_SOURCES
        assert r["extra_info"]["question"] == r["question"]
    assert res["notes"] == [] and (store.path / "export_searchr1" / "reward.py").exists()
    other = export_run(store.path, "searchr1", out=tmp_path / "o", data_source="sage")
    assert "custom_reward_function" in other["notes"][0]


def _sft(tmp_path, **kw):
    store = judged_run(tmp_path)
    res = export_run(store.path, "sft", out=tmp_path / "sft", **kw)
    rows = pl.read_parquet(res["paths"]["train"]).to_dicts()
    with open(res["paths"]["train_jsonl"]) as fh:
        lines = [json.loads(x) for x in fh]
    assert [r["id"] for r in rows] == [r["id"] for r in lines] == ["r1:s1", "r1:s2"]
    return rows, lines


def _seen_only_in_the_chosen_attempt(text: str, row: dict) -> None:
    expected = {"r1:s1": ("shoals", "venn"), "r1:s2": ("venn", "hall")}[row["id"]]
    for key, p in P.items():
        assert (p["text"] in text) == (key in expected), (row["id"], key)
    assert "guess" not in text and "Bo Lin" not in text.replace(P["bo"]["text"], "")


def test_sft_searchr1_style_is_the_fewest_search_correct_attempt_in_search_r1_tags(tmp_path):
    rows, _ = _sft(tmp_path)
    for row in rows:
        msgs = row["messages"]
        assert [m["role"] for m in msgs] == ["user"] + ["assistant", "user"] * 2 + ["assistant"]
        assert msgs[0]["content"] == SEARCH_R1_PROMPT.format(question=row["question"])
        for m in msgs[1:-1:2]:
            assert re.fullmatch(r"<think> .+ </think>\n<search> .+ </search>", m["content"])
        for m in msgs[2:-1:2]:
            assert re.fullmatch(r"<information>Doc 1\(Title: .+\) .+</information>", m["content"])
        final = re.fullmatch(r"<think> .+ </think>\n<answer> (.+) </answer>", msgs[-1]["content"])
        assert final and best_match(final.group(1), row["golden_answers"])[0]
        assert row["n_searches"] == 2  # not s2's forced 1-search attempt nor its round-0 one
        _seen_only_in_the_chosen_attempt(" ".join(m["content"] for m in msgs), row)


def _openai_valid(msgs: list[dict], tools: list[dict]) -> None:
    """Each message and tool against the OpenAI SDK's own types, no key outside them."""
    from openai.types import chat
    from pydantic import TypeAdapter

    classes = {"system": chat.ChatCompletionSystemMessageParam,
               "user": chat.ChatCompletionUserMessageParam,
               "assistant": chat.ChatCompletionAssistantMessageParam,
               "tool": chat.ChatCompletionToolMessageParam}  # fmt: skip
    for m in msgs:
        cls = classes[m["role"]]
        valid = TypeAdapter(cls).validate_python(m)
        list(valid.get("tool_calls") or [])  # the SDK's Iterable validates lazily
        assert set(m) <= cls.__required_keys__ | cls.__optional_keys__, m
    for t in tools:
        TypeAdapter(chat.ChatCompletionFunctionToolParam).validate_python(t)


def test_sft_tools_style_is_openai_messages_with_search_tool_calls(tmp_path):
    rows, lines = _sft(tmp_path, style="tools")
    for line in lines:
        _openai_valid(line["messages"], line["tools"])
    for row in rows:
        msgs = row["messages"]
        assert [m["role"] for m in msgs] == ["system", "user"] + ["assistant", "tool"] * 2 + [
            "assistant"
        ]
        assert msgs[1]["content"] == row["question"]
        for call_msg, result in zip(msgs[2:-1:2], msgs[3:-1:2], strict=True):
            (call,) = call_msg["tool_calls"]
            assert call["function"]["name"] == "search" == row["tools"][0]["function"]["name"]
            assert json.loads(call["function"]["arguments"])["query"]
            assert result["tool_call_id"] == call["id"] and result["content"].startswith("Doc 1")
        final = msgs[-1]["content"].rsplit("Answer: ", 1)[1]
        assert best_match(final, row["golden_answers"])[0] and not msgs[-1]["tool_calls"]
        _seen_only_in_the_chosen_attempt(" ".join(m["content"] for m in msgs), row)
    rows, _ = _sft(tmp_path / "obj", style="tools", tool_arguments="object")
    assert rows[0]["messages"][2]["tool_calls"][0]["function"]["arguments"] == {
        "query": "shoals symphony composer"
    }


def test_sft_files_load_as_trainers_read_them(tmp_path):
    """verl's multi-turn SFT dataset reads parquet with pandas (``messages``, ``tools``);
    TRL's SFTTrainer takes a datasets.Dataset with a conversational ``messages`` column."""
    import pandas as pd
    from datasets import load_dataset

    store = judged_run(tmp_path)
    res = export_run(store.path, "sft", style="tools", test_frac=0.5, seed=1)
    assert res["counts"] == {"train": 1, "test": 1}
    frame = pd.read_parquet(res["paths"]["train"])
    msgs = frame["messages"].iloc[0].tolist()
    assert msgs[2]["tool_calls"][0]["function"]["name"] == "search"
    assert frame["tools"].iloc[0][0]["function"]["parameters"]["required"].tolist() == ["query"]
    files = {s: res["paths"][s] for s in ("train", "test")}
    ds = load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf"))
    assert ds["test"][0]["messages"][0]["role"] == "system"
    searchr1 = export_run(store.path, "searchr1", test_frac=0.5, seed=1)
    test_ids = pl.read_parquet(searchr1["paths"]["test"])["id"].to_list()
    assert pl.read_parquet(res["paths"]["test"])["id"].to_list() == test_ids  # one split


def test_sft_needs_the_runs_trajectories(tmp_path):
    store = _run(tmp_path, [_item(0, "Q?")])
    with pytest.raises(SageError, match="traces.jsonl"):
        export_run(store.path, "sft")
    with pytest.raises(SageError, match="--style"):
        export_run(store.path, "sft", style="chatml")  # type: ignore[arg-type]
    with pytest.raises(SageError, match="--reward"):
        export_run(store.path, "searchr1", reward="em")  # type: ignore[arg-type]
    assert not (store.path / "export_searchr1").exists()  # refused before writing anything


def test_hf_export_loads_with_datasets_and_has_a_card(tmp_path):
    from datasets import load_dataset, load_from_disk

    store = judged_run(tmp_path)
    res = export_run(store.path, "hf", test_frac=0.5, license_id="cc-by-sa-4.0")
    target = store.path / "export_hf"
    dd = load_from_disk(str(target / "dataset_dict"))
    assert set(dd) == {"train", "test"} and dd["train"].num_rows == dd["test"].num_rows == 1
    ids = sorted([*dd["train"]["id"], *dd["test"]["id"]])
    assert ids == ["r1:s1", "r1:s2"]
    files = {s: str(target / "data" / f"{s}.parquet") for s in ("train", "test")}
    ds = load_dataset("parquet", data_files=files, cache_dir=str(tmp_path / "hf"))
    assert (
        list(ds["train"]["id"]) == list(dd["train"]["id"]) and "aliases" in ds["train"].column_names
    )
    card = (target / "README.md").read_text()
    header = card.split("---\n")[1]
    assert "license: cc-by-sa-4.0" in header
    assert "path: data/train.parquet" in header and "path: data/test.parquet" in header
    for fact in ("hosted_vllm/judge-model", "demo@abc123", "accepted 2", "2: 2", "licence"):
        assert fact in card, fact
    assert hub_files(target) == ["README.md", "data/test.parquet", "data/train.parquet"]
    assert res["paths"]["card"].endswith("README.md")


def test_push_to_hub_checks_before_uploading(tmp_path):
    with pytest.raises(SageError, match="ORG/NAME"):
        push_to_hub(tmp_path, "no-slash", private=True)
    store = _run(tmp_path, [_item(0, "Q?")])
    with pytest.raises(SageError, match="--format hf"):
        export_run(store.path, "searchr1", push_to_hub="org/name")
    code = (
        "import sys; sys.modules['huggingface_hub'] = None\n"
        "from pathlib import Path\nfrom flows.runs.hf import push_to_hub\n"
        "push_to_hub(Path('.'), 'org/name', private=False)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode != 0 and "pip install 'sage-deepsearch[hub]'" in out.stderr


def test_cli_export_options_reach_the_files(tmp_path):
    import typer
    from typer.testing import CliRunner

    from flows.cli import export as cli_export

    app = typer.Typer()
    app.callback()(lambda: None)
    cli_export.register(app)
    store = judged_run(tmp_path)
    args = ["export", str(store.path), "--format", "sft", "--style", "tools", "--out"]
    res = CliRunner().invoke(app, [*args, str(tmp_path / "t"), "--tool-arguments", "object"])
    assert res.exit_code == 0, res.output
    assert "train: " in res.output and "(2 rows)" in res.output
    meta = json.loads((tmp_path / "t" / "export.json").read_text())
    assert meta["style"] == "tools" and meta["tool_arguments"] == "object"
    res = CliRunner().invoke(app, ["export", str(store.path), "--format", "searchr1",
                                   "--reward", "llm", "--data-source", "sage"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "reward: " in res.output and "note: data_source 'sage'" in res.output
    assert "REWARD = 'llm'" in (store.path / "export_searchr1" / "reward.py").read_text()
