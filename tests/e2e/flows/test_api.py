"""The Python API (`import sage`) end to end: real Prefect (a temporary API), embedded
Qdrant, fastembed; the LMs are scripted (tests/helpers.py RuleLM, named as such)."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import polars as pl
import pytest

import sage
from modules.errors import SageError
from tests.helpers import DEMO_CORPUS, REPO, RuleLM, clean_env, demo_generator_rule, plug_lms
from tests.helpers import tag_rule as scripted_agent_rule

SMALL = dict(seeds=2, steps="1", rounds=1, attempts=2, max_searches=3, generator_searches=2)


def _post(url: str, body: dict) -> list[dict]:
    req = urllib.request.Request(
        url, json.dumps(body).encode(), {"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(req, timeout=30) as resp:
        return json.loads(resp.read())


@pytest.fixture
def scripted(monkeypatch, tmp_path, models_dir):
    """A fresh working directory and scripted LMs for every role."""
    monkeypatch.chdir(tmp_path)
    agent = RuleLM(scripted_agent_rule)
    plug_lms(
        monkeypatch, {"generator": RuleLM(demo_generator_rule), "agent": agent, "judge": agent}
    )
    return tmp_path


def test_index_generate_validate_export_from_a_polars_frame(scripted, capfd):
    """The README's notebook: a DataFrame in, a Run out (dataset, metrics, path), its
    validation and export; readable artifacts and a log line per round in Prefect."""
    from datasets import load_from_disk
    from prefect.logging.handlers import APILogHandler

    frame = pl.read_ndjson(DEMO_CORPUS)
    with sage.session() as url:
        idx = sage.index(frame, collection="demo")
        run = sage.generate(collection="demo", run_id="api-run", **SMALL)
        val = sage.validate(run, tag=False)
        APILogHandler().flush()  # send the queued log lines to the API
        vid = Path(val["validation_dir"]).name  # a time stamp: 20261202-014500
        keys = [
            "sage-api-run-rounds",
            "sage-api-run-report",
            "sage-api-run-progress",
            f"sage-api-run-validation-{vid}",
            f"sage-api-run-validation-{vid}-report",
        ]
        arts = _post(f"{url}/artifacts/filter", {"artifacts": {"key": {"any_": keys}}})
        flow_runs = sorted({a["flow_run_id"] for a in arts})
        logs = _post(f"{url}/logs/filter", {"logs": {"flow_run_id": {"any_": flow_runs}}})
    assert idx["documents"] == frame.height and idx["version"].startswith("demo@")
    assert (scripted / ".sage" / "inputs" / "demo.jsonl").exists()  # the frame, as JSONL
    assert run.path == scripted / "runs" / "api-run" and run.run_id == "api-run"
    assert isinstance(run.dataset, pl.DataFrame) and run.dataset.height >= 1
    assert set(run.dataset["question"]) == {demo_generator_rule("")["question"]}
    assert run.metrics["funnel"]["seeds"] == 2 == run.summary["metrics"]["funnel"]["seeds"]
    assert run.manifest["params"]["attempts"] == 2
    assert val["items"] == run.dataset.height and run.validated is not None
    # the artifact keys are the run id, and the progress artifact ends at 100 %
    assert {a["key"] for a in arts} == set(keys)
    assert [a["data"] for a in arts if a["type"] == "progress"][-1] == 100.0
    lines = [x["message"] for x in logs if x.get("task_run_id")]
    assert any(m.startswith("seed s00000 (S=1) round 0 [generate]: ") for m in lines), lines
    assert any(m.startswith("seed s00001 (S=1) round 0 [generate]: ") for m in lines), lines
    err = capfd.readouterr().err
    assert "run api-run: done, " in err and "2/2 seeds" in err  # plain lines: not a terminal
    out = sage.export(run, format="hf", test_frac=0.0)
    exported = load_from_disk(out["paths"]["dataset_dict"])
    assert exported["train"].num_rows == run.validated.height
    assert set(exported["train"]["question"]) <= set(run.dataset["question"])
    assert sage.Run.open(scripted / "runs" / "latest").path == run.path


def test_an_hf_dataset_a_pandas_frame_and_records_index_as_the_same_corpus(scripted):
    """Every in-memory form gives the same passages as the file: re-indexing the same
    corpus from another form embeds nothing. A bad record names its line and field."""
    import pandas as pd
    from datasets import Dataset

    records = [json.loads(line) for line in DEMO_CORPUS.read_text().splitlines() if line]
    with sage.session():
        first = sage.index(DEMO_CORPUS, collection="c")
        again = {
            "hf": sage.index(Dataset.from_list(records), collection="c"),
            "pandas": sage.index(pd.DataFrame(records), collection="c"),
            "records": sage.index((r for r in records), collection="c"),
        }
        bad = [*records[:3], {"id": "x", "title": "T"}]  # no text
        with pytest.raises(SageError, match=r"inputs/bad\.jsonl:4.*'text'"):
            sage.index(bad, collection="bad")
    assert first["embedded"] == first["passages"] > 0
    for form, s in again.items():
        expected = (first["version"], 0, first["passages"])
        assert (s["version"], s["embedded"], s["reused"]) == expected, form
    assert (scripted / ".sage" / "inputs" / "c.jsonl").read_text().count("\n") == len(records)


def test_options_are_checked_before_anything_runs(scripted):
    with pytest.raises(SageError, match="unknown option 'attempt': not a generate option"):
        sage.generate(collection="demo", n=1, attempt=3)
    with pytest.raises(SageError, match="pass one split"):
        sage.index({"train": []}, collection="demo")
    with pytest.raises(SageError, match="give exactly one of --n"):
        sage.generate(collection="demo")
    with pytest.raises(SageError, match="unknown export option"):
        sage.export(scripted, format="hf", fmt="sft")
    assert not (scripted / "runs").exists()


def test_import_sage_from_another_directory_is_the_installed_package(tmp_path):
    """The editable install exposes the top-level package (pyproject's packages include
    it); it is this repository's, not another `sage` on the path."""
    code = "import sage, flows.api; print(sage.__file__, sage.generate is flows.api.generate)"
    cmd = [sys.executable, "-c", code]
    res = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, env=clean_env())
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(REPO / "sage" / "__init__.py"), "True"]
