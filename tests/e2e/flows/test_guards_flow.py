"""The validation's guards on a real generated run (real Prefect, embedded Qdrant, fastembed):
planted items that one passage answers, that the solver answers from memory, that copy an
eval question with a few words changed, and that reword an item of an earlier published
version; each flag catches its item, no clean item is flagged, and `sage export` drops
them by default (``--keep`` keeps them) and filters by difficulty band. The solver, judge
and tagger are a scripted LM (RuleLM), named as such."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import polars as pl
import pytest
from typer.testing import CliRunner

from flows.generate import GenerateParams
from flows.runs import finalise as ds
from flows.runs.export import Filters, export_run
from flows.runs.store import RunStore
from flows.validate import ValidateParams, validate_run
from modules.errors import SageError
from tests.helpers import DRIVER, REPO, RuleLM, clean_env, plug_lms, tag_rule

HOTPOT = REPO.parent / "shared" / "data" / "qa" / "hotpotqa_dev_250.jsonl"
EVAL_Q = "Which harbour master of Port Caskel signed the treaty that ended the Skellis salt war?"
PRIOR_Q = "Which lighthouse keeper on Skellis rescued the whole crew of the Marrow Gull in 1881?"
PLANTS = {
    "p-single": (
        "Which river flows past the birthplace of the painter of Grey Dunes?",
        "Vellin Marsh",
    ),
    "p-closed": ("What is the capital city of the island nation of Tarvessa?", "Brennick"),
    "p-contam": (None, "Orla Quay"),  # the eval question, its last words changed
    "p-prior": (PRIOR_Q.replace("rescued", "saved"), "Tomas Reyl"),
}


def eval_question() -> tuple[str, str, str]:
    """(id, question, answer): a real HotpotQA dev question when the shared data is there,
    else one in HotpotQA's format written here."""
    if HOTPOT.exists():
        for line in HOTPOT.read_text().splitlines():
            rec = json.loads(line)
            if len(rec["question_text"].split()) >= 14:
                spans = rec["answers_objects"][0]["spans"]
                return rec["question_id"], rec["question_text"], spans[0]
    return "hp-1", EVAL_Q, "Orla Quay"


def solver_rule(prompt: str) -> dict:
    """Scripted solver: it knows the Vellin Marsh passage and the capital of Tarvessa only."""
    if "answer_from_passage" in prompt:
        passage = prompt.split("[[ ## passage ## ]]", 1)[-1]
        return {"answer_from_passage": "Vellin Marsh" if "Vellin Marsh" in passage else "unknown"}
    if "answer_from_memory" in prompt:
        known = "capital city of the island nation of Tarvessa" in prompt
        return {"answer_from_memory": "Brennick" if known else "unknown"}
    return tag_rule(prompt)


@pytest.fixture(scope="module")
def guarded(indexed_workdir) -> dict:
    """A generated run with the four plants, an eval file and a published earlier version."""
    wd = indexed_workdir("guards")
    cmd = [sys.executable, str(DRIVER), "gr", "0", "0", "4"]
    res = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=600, env=clean_env())
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    store = RunStore(wd / "runs", "gr")
    accepted = [r for r in store.load_records() if r["status"] == "accepted"]
    eid, eq, ea = eval_question()
    words = eq.rstrip("?").split()
    plants = dict(PLANTS) | {"p-contam": (" ".join([*words[:-2], "at", "first"]) + "?", ea)}
    for sid, (question, answer) in plants.items():
        rec = json.loads(json.dumps(accepted[0]))
        rec["seed_id"], rec["question"], rec["answer"] = sid, question, answer
        rec["detail"]["candidate"] |= {"question": question, "answer": answer}
        if sid == "p-single":
            note = {
                "ref": "P2",
                "id": "painter#0",
                "title": "Grey Dunes",
                "text": "Grey Dunes was painted in Ostra, on the Vellin Marsh.",
            }
            rec["detail"]["notes"].append(note)
            rec["supporting_ids"] = [*rec["supporting_ids"], "painter#0"]
        store.append_record(rec)
    manifest = store.read_manifest()
    ds.finalise(store, manifest["seeds"], GenerateParams(**manifest["params"]))
    evals = wd / "evals"
    evals.mkdir()
    hp = {"question_id": eid, "question_text": eq, "answers_objects": [{"spans": [ea]}]}
    (evals / "hotpot.jsonl").write_text(json.dumps(hp) + "\n")
    (evals / "mine.jsonl").write_text(
        json.dumps({"question": "Who wrote Tarvik?", "answer": "Bo Lin"}) + "\n"
    )
    prior = wd / "datasets" / "demo-qa" / "20260101-000000"
    prior.mkdir(parents=True)
    row = {"id": "old:s1", "question": PRIOR_Q, "answer": "Tomas Reyl"}
    pl.DataFrame([row]).write_parquet(prior / "dataset.parquet")
    return {
        "wd": wd,
        "run": store.path,
        "evals": evals,
        "eval_id": eid,
        "published": wd / "datasets" / "demo-qa",
    }


@pytest.fixture
def scripted(monkeypatch) -> RuleLM:
    lm = RuleLM(solver_rule)
    plug_lms(monkeypatch, lm)
    return lm


def _validate(g: dict, vid: str, **kw) -> dict:
    params = ValidateParams(
        run_dir=str(g["run"]),
        validation_id=vid,
        reverify=False,
        max_searches=3,
        against=[str(g["evals"])],
        published=str(g["published"]),
        **kw,
    )
    return validate_run(params)


def test_each_flag_catches_its_item_and_no_clean_item(guarded, scripted, monkeypatch):
    monkeypatch.chdir(guarded["wd"])
    s = _validate(guarded, "g1")
    v = pl.read_parquet(guarded["run"] / "validation" / "g1" / "validation.parquet")
    by = {r["id"].split(":", 1)[1]: r for r in v.iter_rows(named=True)}
    flagged = {
        sid: sorted(k[5:] for k, x in r.items() if k.startswith("flag_") and x)
        for sid, r in by.items()
    }
    clean = sorted(sid for sid in by if not sid.startswith("p-"))[0]
    assert flagged["p-single"] == ["single_passage"]
    assert by["p-single"]["single_passage_id"] == "painter#0"
    assert by["p-single"]["single_passage_answer"] == "Vellin Marsh"
    assert flagged["p-closed"] == ["closed_book"] and by["p-closed"]["closed_book"] is True
    assert by["p-closed"]["closed_book_answer"] == "Brennick"
    assert flagged["p-contam"] == ["contaminated"]
    assert by["p-contam"]["contaminated_id"] == guarded["eval_id"]
    assert by["p-contam"]["contaminated_file"].endswith("hotpot.jsonl")
    assert by["p-contam"]["contamination_rule"] == "ngram"
    assert flagged["p-prior"] == ["near_duplicate"]
    assert by["p-prior"]["near_duplicate_of"] == "20260101-000000:old:s1"
    assert flagged[clean] == [] and by[clean]["closed_book"] is False
    assert by[clean]["passages_tried"] >= 1
    assert s["flags"]["single_passage"] == s["flags"]["closed_book"] == 1
    assert s["flags"]["contaminated"] == 1 and s["eval_items"] == 2
    # every solver-check call is metered: passages tried + closed book, no judge (exact)
    calls = sum(r["passages_tried"] + 1 for r in by.values())
    assert s["solver_checks"]["lm_calls"] == calls == v["solver_check_lm_calls"].sum()
    data = pl.read_parquet(guarded["run"] / "dataset.parquet")  # the flag columns, same rows
    assert data["id"].to_list() == v["id"].to_list() and data["flag_closed_book"].sum() == 1
    assert "closed_book 1" in (guarded["run"] / "report.md").read_text()
    # resuming redoes no LM work
    n = len(scripted.prompts)
    _validate(guarded, "g1")
    assert len(scripted.prompts) == n


def test_export_drops_flagged_items_unless_kept_and_filters_bands(guarded, scripted, monkeypatch):
    monkeypatch.chdir(guarded["wd"])
    _validate(guarded, "g2")
    run = guarded["run"]
    total = pl.read_parquet(run / "dataset.parquet").height
    res = export_run(run, "searchr1", out=run / "e1")
    assert res["removed"]["single_passage"] == res["removed"]["closed_book"] == 1
    assert res["removed"]["contaminated"] == 1 and res["removed"]["near_duplicate"] >= 1
    ids = pl.read_parquet(res["paths"]["train"])["id"].to_list()
    assert not any(":p-" in i for i in ids) and ids
    kept = export_run(
        run, "searchr1", out=run / "e2", filters=Filters(keep=("closed_book", "single_passage"))
    )
    kept_ids = pl.read_parquet(kept["paths"]["train"])["id"].to_list()
    assert {i.split(":")[1] for i in kept_ids if ":p-" in i} == {"p-closed", "p-single"}
    assert "closed_book" not in kept["removed"]
    none = export_run(run, "searchr1", out=run / "e3", filters=Filters(min_searches=5))
    assert none["counts"] == {"train": 0} and none["removed"]["min_searches"] == len(ids)
    band = export_run(run, "hf", out=run / "e4", filters=Filters(avg_at_k=(0.9, 1.0)))
    assert band["counts"]["train"] == len(ids) and band["removed"]["avg_at_k"] == 0
    raw = export_run(run, "searchr1", out=run / "e5", validated=False)
    assert raw["counts"] == {"train": total} and raw["removed"] == {}
    with pytest.raises(SageError, match="--keep bogus: not a flag"):
        export_run(run, "searchr1", out=run / "e6", filters=Filters(keep=("bogus",)))
    from flows.cli.main import app

    out = CliRunner().invoke(
        app,
        [
            "export",
            str(run),
            "--format",
            "searchr1",
            "--out",
            str(run / "e7"),
            "--keep",
            "contaminated",
        ],
    )
    assert out.exit_code == 0, out.output
    assert "removed by closed_book: 1" in out.output
    assert "removed by contaminated" not in out.output


def test_bad_and_empty_eval_sets(guarded, scripted, monkeypatch, tmp_path):
    monkeypatch.chdir(guarded["wd"])
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question": "Q?", "answer": "A"}) + "\n" + '{"query": "x"}\n')
    n = len(scripted.prompts)
    with pytest.raises(SageError, match=re.escape(f"{bad}:2: field 'question'")):
        _validate(guarded | {"evals": bad}, "g3")
    assert len(scripted.prompts) == n  # refused before any LM work
    empty = tmp_path / "empty"
    empty.mkdir()
    s = _validate(guarded | {"evals": empty}, "g4", checks="none", tag=False)
    assert s["warnings"] and "no eval question found" in s["warnings"][0]
    assert s["flags"]["contaminated"] == 0 and s["solver_checks"]["items"] == 0
    assert "**warning**" in (guarded["run"] / "validation" / "g4" / "validation.md").read_text()
