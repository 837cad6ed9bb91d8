"""Served models under the two profiles, against real HTTP servers on 127.0.0.1 (scripted
answers, no model): what each role's requests carry, where they go, and how much of the
retrieved text reaches the prompts."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from bench.stub_server import ProbeServer, StubServer
from modules.config import build_config
from modules.index.passages import Passage
from modules.llm.lm import build_lm, lm_config
from modules.programs.context import flat
from modules.programs.sage import Sage, SageLMs
from modules.settings import load_settings
from tests.helpers import SAGE, OverlapRetriever, clean_env

PROFILE_BODIES = {  # kind -> (temperature, max_tokens) of a first try under each profile
    "paper": {"research": (1.0, 4096), "write": (1.0, 4096), "revise": (1.0, 4096),
              "step": (1.0, 2048), "judge": (0.0, 512)},
    "small": {"research": (0.7, 768), "write": (0.7, 768), "revise": (0.7, 768),
              "step": (0.7, 768), "judge": (0.0, 768)},
}  # fmt: skip


@pytest.fixture(scope="module")
def workdir(indexed_workdir) -> Path:
    return indexed_workdir("served")


def _sage(wd: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SAGE, *args], cwd=wd, capture_output=True, text=True, timeout=600, env=clean_env()
    )


def _generate(wd: Path, run_id: str, *global_args: str, steps: str = "2") -> dict:
    res = _sage(wd, *global_args, "generate", "--collection", "demo", "--seeds", "2",
                "--steps", steps, "--rounds", "1", "--attempts", "2", "--run-id", run_id,
                "--json")  # fmt: skip
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout)


def _first_tries(server: StubServer) -> dict[str, set[tuple[float, int]]]:
    """The (temperature, max_tokens) pairs each kind's requests carried."""
    out: dict[str, set[tuple[float, int]]] = {}
    for kind, body in server.requests:
        out.setdefault(kind, set()).add((body["temperature"], body["max_tokens"]))
    return out


@pytest.mark.parametrize("profile", ["paper", "small"])
def test_each_role_goes_to_its_own_server_with_its_profiles_settings(workdir, profile):
    gen, judge = StubServer(record=True), StubServer(record=True)
    try:
        args = ["--lm", "openai/stub", "--api-base", gen.url, "--judge-lm", "openai/judge",
                "--judge-api-base", judge.url]  # fmt: skip
        if profile == "small":
            args += ["--profile", "small"]
        summary = _generate(workdir, f"mixed-{profile}", *args)
    finally:
        gen.close()
        judge.close()
    assert summary["metrics"]["funnel"]["seeds"] == 2
    assert judge.requests and {k for k, _ in judge.requests} == {"judge"}
    assert {b["model"] for _, b in judge.requests} == {"judge"}
    assert "judge" not in {k for k, _ in gen.requests}
    assert {b["model"] for _, b in gen.requests} == {"stub"}
    seen = {**_first_tries(gen), **_first_tries(judge)}
    for kind, expected in PROFILE_BODIES[profile].items():
        if kind in seen:  # retries sample at max(temperature, 0.7): allowed beside the first
            assert expected in seen[kind], (kind, seen[kind])
            assert seen[kind] <= {expected, (max(expected[0], 0.7), expected[1])}, kind
    assert {"research", "write", "step", "judge"} <= set(seen)
    manifest = json.loads((workdir / "runs" / f"mixed-{profile}" / "manifest.json").read_text())
    assert manifest["config"]["profile"] == profile
    assert manifest["endpoints"] == {"generator": gen.url, "agent": gen.url, "judge": judge.url}


def test_no_target_runs_and_a_resume_under_another_profile_is_refused(workdir):
    server = StubServer()
    try:
        args = ["--lm", "openai/stub", "--api-base", server.url]
        summary = _generate(workdir, "any-s", *args, steps="any")
        cands = pl.read_parquet(Path(summary["run_dir"]) / "candidates.parquet")
        assert cands["target_steps"].null_count() == cands.height > 0
        assert summary["accepted"] == cands.filter(pl.col("pass_at_k"))["seed_id"].n_unique()
        assert summary["accepted"] >= 1  # the stub's agent solves its pairs: pass@K accepts
        again = _sage(workdir, "--profile", "small", *args, "generate", "--collection", "demo",
                      "--seeds", "2", "--steps", "any", "--rounds", "1", "--attempts", "2",
                      "--run-id", "any-s")  # fmt: skip
    finally:
        server.close()
    assert again.returncode == 1
    last = again.stderr.strip().splitlines()[-1]
    assert last.startswith("sage: error:") and "profile: 'paper' -> 'small'" in last


def test_bad_settings_are_one_line_and_write_no_run(workdir):
    cases = [
        (["--profile", "huge"], "profile"),
        (["--judge-api-base", "judge.example"], "judge_api_base"),
    ]
    for args, named in cases:
        res = _sage(workdir, "--lm", "openai/stub", *args, "generate", "--collection", "demo",
                    "--seeds", "1", "--run-id", "bad-setting")  # fmt: skip
        lines = res.stderr.strip().splitlines()
        assert res.returncode == 1 and lines[-1].startswith("sage: error:"), res.stderr
        assert named in lines[-1]
    env = {**clean_env(), "SAGE_AGENT_CONTEXT_WINDOW": "1500"}
    res = subprocess.run(
        [SAGE, "--lm", "openai/stub", "--api-base", "http://127.0.0.1:9/v1", "generate",
         "--collection", "demo", "--seeds", "1", "--run-id", "bad-setting"],
        cwd=workdir, capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert res.returncode == 1 and "agent_context_window" in res.stderr.strip().splitlines()[-1]
    assert not (workdir / "runs" / "bad-setting").exists()


# -- how much retrieved text the prompts show ----------------------------------------------

FILLER = "harbour lighthouse ferry granite tidal beacon orchard quarry meadow citadel".split()


def _passages(n: int = 40) -> list[Passage]:
    """Passages of exactly 600 characters, each naming its own topic and ending in a fact."""
    out = []
    for i in range(n):
        head = f"Topic{i} is described here."
        tail = f" Its founding date is day {i} of the year 18{i:02d}."
        words = [FILLER[(i + j) % len(FILLER)] for j in range(200)]
        body = " ".join(words)[: 600 - len(head) - len(tail) - 1]
        text = f"{head} {body}{tail}"
        out.append(Passage(f"p{i}", f"d{i}", f"Title {i}", text.ljust(600, ".")[:600]))
    return out


def _prompts(server: ProbeServer, kind: str) -> list[str]:
    return [b["messages"][-1]["content"] for b in server.bodies[kind]]


def _round(profile: str, monkeypatch) -> tuple[ProbeServer, Any]:
    """One round (K=1) under ``profile`` against the probe server; the server is closed."""
    server, sage, _ = _run(profile, monkeypatch)
    try:
        return server, sage(document="Seed\nTopic0 seed document.", target_steps=2).rounds[0]
    finally:
        server.close()


def _run(profile: str, monkeypatch) -> tuple[ProbeServer, Sage, list[Passage]]:
    for key in [k for k in os.environ if k.startswith("SAGE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SAGE_CONFIG", "/nonexistent/sage.toml")
    server = ProbeServer(  # 8 searches for 3 new passages each; 12 research searches
        lambda done: " ".join(f"Topic{done * 3 + j}" for j in range(3)) + "?" if done < 8 else None,
        lambda n: f"Topic{n * 3 + 1}" if n < 12 else None,
    )
    settings = load_settings(lm="openai/stub", api_base=server.url, profile=profile)
    config = build_config(settings, attempts=1, rounds=0, generator_searches=20)
    lms = SageLMs(*(build_lm(lm_config(settings, r)) for r in ("generator", "agent", "judge")))
    for lm in (lms.generator, lms.agent):
        lm.cache = False
    passages = _passages()
    sage = Sage(OverlapRetriever(passages), lms, config)
    return server, sage, passages


def test_paper_shows_every_retrieved_passage_whole(monkeypatch):
    server, rr = _round("paper", monkeypatch)
    trace = rr.attempts[0].trace
    searches = [t for t in trace if t["type"] == "search"]
    assert len(searches) == 8 and len(_prompts(server, "step")) == 9
    for i, step in enumerate(searches):  # every passage of search i is whole in step i + 1
        for p in step["passages"]:
            assert p["chars"] == 600 and flat(p["text"]) in _prompts(server, "step")[i + 1]
    notes = rr.notes[1:]
    assert len([t for t in rr.generator_trace if t["type"] == "search"]) == 12
    assert len(notes) >= 12
    write = _prompts(server, "write")[-1]
    assert all(flat(n["text"]) in write for n in notes)  # every note, whole, at write time
    assert rr.meter["cut_chars"] == 0 and rr.meter["shown_chars"] > 0


def test_small_keeps_its_cuts(monkeypatch):
    server, rr = _round("small", monkeypatch)
    searches = [t for t in rr.attempts[0].trace if t["type"] == "search"]
    for step in searches:
        for p in step["passages"]:
            assert len(p["text"]) <= 450 and p["chars"] == 600  # cut to 450, length kept
    last = _prompts(server, "step")[-1]
    trajectory = last.split("[[ ## trajectory ## ]]")[1].split("[[ ## searches_left ## ]]")[0]
    assert len(trajectory.strip()) <= 9000  # 8 searches of 3 x 450 characters do not fit:
    assert flat(searches[0]["passages"][0]["text"])[:200] not in last  # the oldest shrank
    assert flat(searches[-1]["passages"][0]["text"]) in last  # the newest kept its 450
    notes = rr.notes[1:]
    write = _prompts(server, "write")[-1]
    assert sum(flat(n["text"]) in write for n in notes) == 0  # notes cut to 350 characters
    assert rr.meter["cut_chars"] > 0
