"""The generate flow end to end: real Prefect (ephemeral), real embedded Qdrant, real fastembed.

One test uses the real local LLM; the kill/resume and retry tests drive the same real flow
with scripted LMs (tests/drivers/scripted_generate.py) so they are fast and deterministic.
"""

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

from flows.runs.export import export_run
from flows.runs.finalise import DATASET_SCHEMA
from flows.runs.metrics import CANDIDATE_SCHEMA
from tests.helpers import DRIVER, SAGE, clean_env


@pytest.fixture(scope="module")
def workdir(indexed_workdir) -> Path:
    """A working directory whose embedded Qdrant holds the demo corpus as collection 'demo'."""
    return indexed_workdir("gen")


def _driver(wd: Path, run_id: str, delay: float, fail_first: int, seeds: int = 3):
    return subprocess.Popen(
        [sys.executable, str(DRIVER), run_id, str(delay), str(fail_first), str(seeds)],
        cwd=wd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(own_api=True),
    )


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_kill_9_mid_run_then_resume_loses_and_duplicates_nothing(workdir):
    """kill -9 loses no finished round, leaves no process behind (the temporary Prefect
    API dies with its parent), and the re-run resumes without redoing a round."""
    import psutil

    ckpt = workdir / "runs" / "kill" / "checkpoints.jsonl"
    proc = _driver(workdir, "kill", delay=0.4, fail_first=0, seeds=4)
    deadline = time.time() + 240
    while len(_lines(ckpt)) < 2 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None, "the run finished before it could be killed: raise the delay"
    children = psutil.Process(proc.pid).children(recursive=True)
    assert any("uvicorn" in " ".join(c.cmdline()) for c in children)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind after kill -9: {[c.cmdline() for c in alive]}"
    before = _lines(ckpt)
    assert len(before) >= 2
    proc = _driver(workdir, "kill", delay=0.0, fail_first=0, seeds=4)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    after = _lines(ckpt)
    assert after[: len(before)] == before  # nothing rewritten or lost
    keys = [(json.loads(x)["seed_id"], json.loads(x)["round"]) for x in after]
    assert len(keys) == len(set(keys)), "a round was redone after resume"
    assert {k[0] for k in keys} == {f"s{i:05d}" for i in range(4)}
    manifest = json.loads((workdir / "runs" / "kill" / "manifest.json").read_text())
    assert manifest["resumed"] == 1


def test_sigterm_exits_at_once_and_the_run_resumes(workdir):
    """SIGTERM while a seed is in flight (each scripted LM call sleeps 3 s) leaves at once,
    takes the ephemeral Prefect API down with it, and the run then resumes to completion."""
    import psutil

    ckpt = workdir / "runs" / "term" / "checkpoints.jsonl"
    proc = _driver(workdir, "term", delay=3.0, fail_first=0, seeds=2)
    deadline = time.time() + 240
    while not _lines(ckpt) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert proc.poll() is None and _lines(ckpt), "no round was checkpointed before the signal"
    children = psutil.Process(proc.pid).children(recursive=True)
    t0 = time.time()
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert time.time() - t0 < 15, "SIGTERM waited for the seed in flight"
    assert proc.returncode == 128 + signal.SIGTERM, out[-2000:]
    assert "sage: terminated" in out
    _, alive = psutil.wait_procs(children, timeout=10)
    assert not alive, f"left behind: {[c.cmdline() for c in alive]}"
    proc = _driver(workdir, "term", delay=0.0, fail_first=0, seeds=2)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    seeds = {json.loads(x)["seed_id"] for x in _lines(ckpt)}
    assert seeds == {"s00000", "s00001"}


def test_transient_lm_failure_is_retried_in_one_layer_not_by_the_task(workdir):
    proc = _driver(workdir, "retry", delay=0.0, fail_first=2, seeds=1)
    out, _ = proc.communicate(timeout=300)
    assert proc.returncode == 0, out[-3000:]
    assert "FAILURES_LEFT 0" in out and "failed:" not in out  # DSPy's loop retried the calls
    assert "Retry 1/3" not in out  # and the Prefect task never re-ran the seed
    rounds = [json.loads(x) for x in _lines(workdir / "runs" / "retry" / "checkpoints.jsonl")]
    # the scripted agent answers right in one search: accepted at once where S=1; where S=2
    # too easy, then (the scripted reviser writes the same pair) too easy again, the last round
    s = rounds[0]["target_steps"]
    expected = ["accepted"] if s == 1 else ["too_easy", "too_easy"]
    assert [r["status"] for r in rounds] == expected, rounds
    assert {r["seed_id"] for r in rounds} == {"s00000"} and s in (1, 2)


@pytest.mark.llm
def test_tiny_generation_with_the_local_model_writes_every_artifact(workdir, llm_models_dir):
    args = "--collection demo --seeds 1 --attempts 2 --rounds 1 --steps 2 --max-searches 2"
    res = subprocess.run(
        [
            SAGE,
            "generate",
            *args.split(),
            "--generator-searches",
            "1",
            "--run-id",
            "real",
            "--json",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        timeout=1500,
        env=clean_env(),
    )
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout[res.stdout.index("{") :])
    run = Path(summary["run_dir"])
    # each artifact holds what it must (the parquet files, traces, manifest and metrics
    # are read below); the report names the run and the plots it shows are PNG images
    report = (run / "report.md").read_text()
    assert report.startswith(f"# sage run `{summary['run_id']}`")
    assert "![by round](plot_rounds.png)" in report
    for png in ("plot_rounds.png", "plot_target_steps.png"):
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
    accepted = (run / "dataset.jsonl").read_text().splitlines()  # empty when nothing passed
    assert len(accepted) == summary["accepted"]
    assert pl.read_parquet(run / "dataset.parquet").schema == pl.Schema(DATASET_SCHEMA)
    cands = pl.read_parquet(run / "candidates.parquet")
    assert cands.schema == pl.Schema(CANDIDATE_SCHEMA) and cands.height >= 1
    assert set(cands["status"]) <= {
        "accepted",
        "too_easy",
        "incorrect",
        "generation_failed",
        "discarded",
        "unverified",
    }
    traces = [json.loads(x) for x in _lines(run / "traces.jsonl")]
    assert len(traces) == cands.height
    for t in traces:  # every attempt that ran has a trace and a bounded search count
        for a in t["attempts"]:
            assert a["trace"] and 0 <= a["n_searches"] <= 2
    manifest = json.loads((run / "manifest.json").read_text())
    assert manifest["collection_version"].startswith("demo@")
    assert manifest["packages"]["dspy"] and "api_key" not in json.dumps(manifest["settings"])
    metrics = json.loads((run / "metrics.json").read_text())
    assert [r["round"] for r in metrics["per_round"]] == [0, 1]
    assert metrics["cost"]["lm_calls"] == int(cands["lm_calls"].sum()) > 0
    assert (workdir / "runs" / "latest").resolve() == run.resolve()
    out = export_run(run, "searchr1")
    rl = pl.read_parquet(out["paths"]["train"])
    assert rl.columns == ["id", "question", "golden_answers", "data_source", "prompt",
                          "ability", "reward_model", "extra_info"]  # fmt: skip
    assert rl.height == pl.read_parquet(run / "dataset.parquet").height


def test_thread_runner_runs_concurrency_seeds_at_once(workdir, monkeypatch):
    """`--concurrency 2` on the thread runner: the first LM call of each seed waits at a
    barrier for the other seed's; run one seed at a time, the barrier would break (its
    timeout) and the seeds fail. Scripted LMs (RuleLM) through plug_lms, in process."""
    import threading

    from flows.generate import GenerateParams, generate_dataset
    from tests.helpers import RuleLM, demo_agent_rule, demo_generator_rule, plug_lms

    barrier, met = threading.Barrier(2, timeout=60), []

    def generator_rule(prompt: str):
        if len(met) < 2 and "searches_left" in prompt:
            met.append(threading.current_thread().name)
            barrier.wait()  # both seeds' first generator calls are in flight together
        return demo_generator_rule(prompt)

    agent = RuleLM(demo_agent_rule)
    plug_lms(monkeypatch, {"generator": RuleLM(generator_rule), "agent": agent, "judge": agent})
    for k in [k for k in os.environ if k.startswith("SAGE_")]:
        monkeypatch.delenv(k)
    monkeypatch.chdir(workdir)
    params = GenerateParams(collection="demo", seeds=2, steps="1", rounds=0, attempts=1,
                            run_id="conc2", max_searches=2, generator_searches=1,
                            concurrency=2)  # fmt: skip
    out = generate_dataset(params)
    assert not barrier.broken and len(met) == 2 and met[0] != met[1]  # two threads
    rounds = [json.loads(x) for x in _lines(workdir / "runs" / "conc2" / "checkpoints.jsonl")]
    assert sorted(r["seed_id"] for r in rounds) == ["s00000", "s00001"]
    assert {r["pid"] for r in rounds} == {os.getpid()}  # threads of this process
    assert [r["status"] for r in rounds] == ["accepted", "accepted"]  # S=1: one search
    assert out["accepted"] == 1  # both wrote the same scripted question: one is a duplicate
