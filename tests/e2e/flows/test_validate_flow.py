"""The validate flow on a real generated run (real Prefect, embedded Qdrant, fastembed).

The run is made by the real generate flow with scripted LMs (tests/drivers), then a leaked
item is planted; re-verification and tagging use a scripted LM (RuleLM), named as such.
The HTML report is then loaded in a real headless Chromium.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from flows.generate import GenerateParams
from flows.runs import finalise as ds
from flows.runs.store import RunStore
from flows.validate import ValidateParams, validate_run
from tests.helpers import DRIVER, RuleLM, clean_env, plug_lms, tag_rule


@pytest.fixture(scope="module")
def run_dir(indexed_workdir) -> Path:
    """A generated run (4 seeds, S 1-2: accepted and too-easy seeds), a planted item whose
    question leaks its answer and a planted reworded near-duplicate of an accepted item."""
    wd = indexed_workdir("val")
    cmd = [sys.executable, str(DRIVER), "val", "0", "0", "4"]
    res = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=600, env=clean_env())
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    store = RunStore(wd / "runs", "val")
    rounds = store.load_records()
    accepted = [r for r in rounds if r["status"] == "accepted"]
    assert accepted, "the scripted run must accept an item"
    plants = {
        "planted-leak": "Which climber, Ferrin Vashti, led the first ascent of Mount Oskarrow?",
        "zz-planted-dup": "Who led the first ascent of Tarvessa's highest mountain?",
    }
    for sid, question in plants.items():
        rec = json.loads(json.dumps(accepted[0]))
        rec["seed_id"] = sid
        rec["question"] = rec["detail"]["candidate"]["question"] = question
        store.append_record(rec)
    manifest = store.read_manifest()
    ds.finalise(store, manifest["seeds"], GenerateParams(**manifest["params"]))
    return store.path


@pytest.fixture
def scripted_lms(monkeypatch) -> RuleLM:
    lm = RuleLM(tag_rule)
    plug_lms(monkeypatch, lm)
    return lm


def test_validate_flags_planted_leak_and_duplicates_and_flags_the_dataset(
    run_dir, scripted_lms, monkeypatch
):
    monkeypatch.chdir(run_dir.parent.parent)
    items = pl.read_parquet(run_dir / "dataset.parquet")
    s = validate_run(ValidateParams(run_dir=str(run_dir), validation_id="v1", max_searches=3))
    vdir = run_dir / "validation" / "v1"
    v = pl.read_parquet(vdir / "validation.parquet")
    assert v.height == items.height == s["items"]
    leak = v.filter(pl.col("id").str.ends_with(":planted-leak")).row(0, named=True)
    assert leak["leakage"] == "answer_in_question" and leak["keep"] is False
    # the scripted generator writes one question for every seed, so every accepted seed and
    # the reworded plant (sorted last) duplicate the first accepted seed; the leak does not
    first = v.filter(~pl.col("id").str.contains("planted"))["id"][0]
    dups = v.filter(pl.col("near_duplicate_of").is_not_null())
    assert set(dups["near_duplicate_of"]) == {first} and s["flags"]["near_duplicate"] == dups.height
    assert dups["id"].str.ends_with(":zz-planted-dup").any()
    assert dups.filter(pl.col("id").str.ends_with(":zz-planted-dup"))["duplicate_cosine"][0] > 0.95
    assert leak["near_duplicate_of"] is None
    assert v.filter(pl.col("keep"))["id"].to_list() == [first] and s["kept"] == 1
    # re-verification ran K fresh attempts (the run's K=2) per item; scripted agent solves it
    assert v["reverify_attempts"].to_list() == [2] * v.height
    assert all(v["reverify_pass"]) and all(v["reverify_min_searches"] == 1)
    assert v["reasoning_types"].to_list() == [["bridging", "temporal"]] * v.height
    rej = pl.read_parquet(vdir / "rejected.parquet")
    assert rej.height == s["rejected"] >= 1
    assert set(rej["kind_of_failure"]) == {"too_easy"}
    assert set(rej["cause"]) == {"overly_specific_question"}
    assert s["failure_taxonomy"]["too_easy"] == {"overly_specific_question": rej.height}
    kept = pl.read_parquet(vdir / "dataset.filtered.parquet")
    assert kept["id"].to_list() == v.filter(pl.col("keep"))["id"].to_list()
    data = pl.read_parquet(run_dir / "dataset.parquet")  # same rows, plus the flag columns
    assert data.drop([c for c in data.columns if c.startswith("flag_")]).equals(items)
    assert data["flag_leakage"].to_list() == v["flag_leakage"].to_list()
    assert data.filter(pl.col("flag_leakage"))["id"].to_list() == [leak["id"]]
    assert (run_dir / "validation" / "latest").resolve() == vdir.resolve()
    assert "planted-leak" not in (vdir / "dataset.filtered.jsonl").read_text()
    # resuming the same validation redoes no LM work
    calls = len(scripted_lms.prompts)
    lines = (vdir / "checkpoints.jsonl").read_text().count("\n")
    validate_run(ValidateParams(run_dir=str(run_dir), validation_id="v1", max_searches=3))
    assert len(scripted_lms.prompts) == calls
    assert (vdir / "checkpoints.jsonl").read_text().count("\n") == lines
    # a resumed `sage generate` finalises again: the run's dataset keeps the flags (#23)
    store = RunStore(run_dir.parent, run_dir.name)
    manifest = store.read_manifest()
    ds.finalise(store, manifest["seeds"], GenerateParams(**manifest["params"]))
    again = pl.read_parquet(run_dir / "dataset.parquet")
    assert again.equals(data)
    lines = [json.loads(x) for x in (run_dir / "dataset.jsonl").read_text().splitlines()]
    assert [x["flag_leakage"] for x in lines] == v["flag_leakage"].to_list()


def test_html_report_renders_in_headless_chromium(run_dir, scripted_lms, monkeypatch, tmp_path):
    monkeypatch.chdir(run_dir.parent.parent)
    validate_run(ValidateParams(run_dir=str(run_dir), validation_id="v2", reverify=False,
                                max_searches=3))  # fmt: skip
    report = run_dir / "report.html"
    text = report.read_text()
    assert 'src="http' not in text and 'href="http' not in text  # self-contained
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.fail("Debian chromium is needed for this test: apt-get install -y chromium")
    seed = "planted-leak"
    dom = subprocess.run(
        [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--user-data-dir={tmp_path}",
         "--virtual-time-budget=5000", "--dump-dom", f"{report.as_uri()}#item={seed}"],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert f"<h3>Seed {seed} — accepted</h3>" in dom  # the viewer ran and selected the item
    assert 'class="col gen"' in dom and 'class="col agent"' in dom
    assert dom.count('class="attempt ok"') == 2  # both attempts of the planted item
    assert "Ferrin Vashti, led the first ascent" in dom
    assert dom.count("<option ") >= 5  # every seed is selectable
    assert 'class="flags"' in dom and "near_duplicate" in dom  # validation section
