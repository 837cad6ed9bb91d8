"""`sage experiment` end to end: real Prefect, real embedded Qdrant, real fastembed, real
checkpoints; the LMs are scripted (tests/drivers/scripted_experiment.py: feedback always
fixes the too-easy pair, resampling never does) or the stub model server over HTTP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import polars as pl
import pytest

from bench.stub_server import StubServer
from flows.experiment import run_experiment
from flows.runs.metrics import CANDIDATE_SCHEMA
from modules.errors import SageError
from tests.drivers import scripted_experiment as scripted
from tests.helpers import REPO, SAGE, clean_env, plug_lms

ARMS = ("round0", "no-target", "feedback", "resample")
DRIVER = REPO / "tests" / "drivers" / "scripted_experiment.py"


@pytest.fixture(scope="module")
def workdir(indexed_workdir) -> Path:
    return indexed_workdir("exp")


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def _ckpts(root: Path) -> dict[str, list[str]]:
    return {arm: _lines(root / arm / "checkpoints.jsonl") for arm in ARMS}


def _computed_calls(lines: dict[str, list[str]]) -> int:
    """LM calls of the rounds computed: round 0 once (the arms' round-0 lines are copies)."""
    total = 0
    for arm, rows in lines.items():
        for rec in map(json.loads, rows):
            if arm in ("round0", "no-target") or rec["round"] > 0:
                total += rec["lm_calls"]
    return total


def test_scripted_arms_give_the_exact_table_paired_and_computed_once(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    lms = scripted.scripted_lms()
    plug_lms(monkeypatch, lms)
    out = run_experiment(scripted.params("exact", 6))
    root = workdir / "runs" / "exact" / "experiment"
    rows = {(t["arm"], t["round"]): t for t in out["table"]}
    assert list(rows) == [("no-target", 0), ("feedback", 0), ("feedback", 1), ("feedback", 2),
                          ("resample", 0), ("resample", 1), ("resample", 2)]  # fmt: skip
    # every pair is solved (the judge agrees with every answer): 100 % correct everywhere
    assert {t["pct_correct"] for t in out["table"]} == {100.0}
    assert [rows[("feedback", r)]["pct_pass"] for r in range(3)] == [0.0, 100.0, 100.0]
    assert [rows[("resample", r)]["pct_pass"] for r in range(3)] == [0.0, 0.0, 0.0]
    assert rows[("no-target", 0)]["pct_pass"] is None  # no S: "pass" is undefined
    assert [rows[("feedback", r)]["mean_searches"] for r in range(3)] == [1.0, 2.0, 2.0]
    assert [rows[("resample", r)]["mean_searches"] for r in range(3)] == [1.0, 1.0, 1.0]
    # per seed: round 0 = 2 generator + 2 x 2 agent calls; a revision 1 + 2 x 3; a resample 6
    assert [rows[("feedback", r)]["lm_calls"] for r in range(3)] == [6.0, 13.0, 13.0]
    assert [rows[("resample", r)]["lm_calls"] for r in range(3)] == [6.0, 12.0, 18.0]
    assert rows[("feedback", 1)]["pct_pass_ci"] == [100.0, 100.0]
    paired = {(p["round"], p["metric"]): (p["diff"], p["ci"]) for p in out["paired"]}
    assert paired[(0, "pct_pass")] == (0.0, [0.0, 0.0])
    assert paired[(1, "pct_pass")] == paired[(2, "pct_pass")] == (100.0, [100.0, 100.0])
    assert paired[(2, "pct_correct")] == (0.0, [0.0, 0.0])
    # pairing: both arms hold the shared round-0 lines byte for byte, computed once
    lines = _ckpts(root)
    shared = lines["round0"]
    assert len(shared) == 6
    for arm in ("feedback", "resample"):
        assert [x for x in lines[arm] if json.loads(x)["round"] == 0] == shared
    calls = sum(len(lm.prompts) for lm in lms.values())
    assert calls == _computed_calls(lines) == sum(out["lm_calls"].values())
    # generator calls: round 0 (2 per seed) once, no-target 2, resample 2 x 2, feedback 1
    assert len(lms["generator"].prompts) == 6 * (2 + 2 + 4 + 1)
    # the point values are the arm runs' own per-round metrics
    for arm in ("feedback", "resample"):
        m = json.loads((root / arm / "metrics.json").read_text())["per_round"]
        assert [rows[(arm, r)]["pct_pass"] for r in range(3)] == [x["pct_pass"] for x in m]
    _check_outputs(root)
    _check_artifacts("exact")
    # a finished experiment re-run computes nothing and writes the same table
    before = (root / "table.json").read_text()
    again = run_experiment(scripted.params("exact", 6))
    assert sum(len(lm.prompts) for lm in lms.values()) == calls and again["resumed"]
    assert (root / "table.json").read_text() == before and _ckpts(root) == lines
    with pytest.raises(SageError, match="exists with attempts=2, not 3"):
        run_experiment(scripted.params("exact", 6).model_copy(update={"attempts": 3}))


def _check_outputs(root: Path) -> None:
    md = (root / "table.md").read_text()
    assert "| +1 feedback | 6 | 100.0 [100.0, 100.0] | 100.0 [100.0, 100.0] |" in md
    assert "77 / 31 / 83.2 / 4.1" in md and "Gemini 2.5 Flash" in md  # the paper's, beside
    assert "| 1 | 6 | pct_pass | +100.0 [+100.0, +100.0] |" in md
    csv = pl.read_csv(root / "table.csv")
    assert {"arm", "round", "pct_pass", "pct_pass_lo", "pct_pass_hi"} <= set(csv.columns)
    assert csv.height == 7
    assert json.loads((root / "table.json").read_text())["paired"]
    assert (root / "plot_experiment.png").read_bytes()[:4] == b"\x89PNG"
    html = (root / "report.html").read_text()
    assert '<section id="experiment">' in html and "data:image/png;base64," in html
    cands = pl.read_parquet(root / "feedback" / "candidates.parquet")
    assert dict(cands.schema) == CANDIDATE_SCHEMA and not (root / "latest").exists()


def _check_artifacts(run_id: str) -> None:
    """The Prefect table and markdown artifacts of the experiment (the flow's own API)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey

    keys = [f"sage-{run_id}-experiment-table", f"sage-{run_id}-experiment-report"]
    with get_client(sync_client=True) as client:
        found = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=keys))
        )
    by_key = {a.key: a for a in found}
    assert set(by_key) == set(keys)
    table = by_key[keys[0]].data
    rows = json.loads(table) if isinstance(table, str) else table
    assert len(rows) == 7 and {"arm", "round", "pct_pass"} <= set(rows[0])
    assert "Gemini 2.5 Flash" in by_key[keys[1]].data


def _driver(wd: Path, run_id: str, delay: float) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, str(DRIVER), run_id, str(delay), "6"], cwd=wd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=clean_env(own_api=True))  # fmt: skip


def test_kill_9_in_the_second_arm_then_resume_recomputes_no_round(workdir):
    root = workdir / "runs" / "kill" / "experiment"
    proc = _driver(workdir, "kill", delay=0.3)
    fb = root / "feedback" / "checkpoints.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and proc.poll() is None:
        if any(json.loads(x)["round"] > 0 for x in _lines(fb)):
            break
        time.sleep(0.2)
    assert proc.poll() is None, "the run ended before the second arm: raise the delay"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    before = _ckpts(root)
    assert len(before["round0"]) == 6 and len(before["no-target"]) == 6
    assert not before["resample"] or all(json.loads(x)["round"] == 0 for x in before["resample"])
    proc = _driver(workdir, "kill", delay=0.0)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    after = _ckpts(root)
    for arm in ARMS:
        assert after[arm][: len(before[arm])] == before[arm], arm  # nothing rewritten or lost
        keys = [(r["seed_id"], r["round"]) for r in map(json.loads, after[arm])]
        assert len(keys) == len(set(keys)), f"a round of {arm} was redone"
    new = {arm: after[arm][len(before[arm]) :] for arm in ARMS}
    assert not new["round0"] and not new["no-target"]  # the finished arm and round 0 stand
    calls = json.loads(next(x for x in out.splitlines() if x.startswith("CALLS "))[6:])
    assert sum(calls.values()) == _computed_calls(new) > 0  # only the unfinished rounds ran
    summary = json.loads(next(x for x in out.splitlines() if x.startswith("SUMMARY "))[8:])
    assert summary["resumed"]
    fb_rows = [t for t in summary["table"] if t["arm"] == "feedback"]
    assert [t["pct_pass"] for t in fb_rows] == [0.0, 100.0, 100.0]


def _sage(wd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([SAGE, *args], cwd=wd, capture_output=True, text=True, timeout=300,
                          env=env or clean_env())  # fmt: skip


def test_cli_json_with_few_seeds_warns_and_bad_input_is_one_line(workdir):
    env = clean_env() | {"SAGE_API_KEY": "stub"}
    server = StubServer()
    try:
        res = _sage(workdir, "--lm", "openai/stub", "--api-base", server.url, "experiment",
                    "--collection", "demo", "--seeds", "3", "--steps", "2", "--rounds", "1",
                    "--attempts", "2", "--max-searches", "3", "--generator-searches", "1",
                    "--answer-types", "entity", "--arms", "feedback,resample",
                    "--run-id", "few", "--json", env=env)  # fmt: skip
    finally:
        server.close()
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    assert set(out) >= {"run_dir", "table", "paired"}
    assert set(out["table"][0]) == {"arm", "round", "n_seeds", "pct_correct", "pct_correct_ci",
                                    "pct_pass", "pct_pass_ci", "avg_at_k", "mean_searches",
                                    "lm_calls", "tokens"}  # fmt: skip
    assert [(t["arm"], t["round"]) for t in out["table"]] == [
        ("feedback", 0), ("feedback", 1), ("resample", 0), ("resample", 1)]  # fmt: skip
    assert all(t["pct_pass_ci"] is None for t in out["table"])
    assert {p["metric"] for p in out["paired"]} == {"pct_pass", "pct_correct"}
    assert "warning: only 3 seed(s)" in res.stderr
    assert "[n/a]" in (Path(out["run_dir"]) / "experiment" / "table.md").read_text()
    for args, message in [
        (["--arms", "feedback,magic"], "unknown arm 'magic'"),
        (["--rounds", "0"], "--rounds"),
        (["--collection", "nope"], "nope"),
    ]:
        bad = _sage(workdir, "experiment", "--collection", "demo", "--seeds", "2", *args)
        lines = bad.stderr.strip().splitlines()
        assert bad.returncode == 1 and lines[-1].startswith("sage: error: "), bad.stderr[-2000:]
        assert message in lines[-1] and len(lines) == 1, bad.stderr[-2000:]
