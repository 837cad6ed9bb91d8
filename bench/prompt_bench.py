"""What the prompts of a served model hold, under each profile, on the demo corpus.

The demo corpus is indexed (real Qdrant Edge, real fastembed) into a temporary data dir;
a scripted chat server on 127.0.0.1 (``bench.stub_server.ProbeServer``) drives the search
agent through ``--searches`` searches per question (queries: other demo questions, so
each search brings new passages) and the generator through ``--research`` searches, and
keeps every request. Reported per profile:

- ``agent_shown_share``: retrieved characters shown in the agent's step prompts over those
  retrieved (goal 1.00 under ``paper``);
- ``notes_visible_share``: the share of the generator's notes whose whole text is in the
  WriteQA prompt after ``--research`` searches (goal 1.00), and its characters' share;
- prompt size per agent step and per WriteQA, in characters and estimated tokens
  (characters / 4: the stub has no tokenizer; a real tokenizer gives ~3.5-4.5 for English);
- ``prefix_share``: per agent step after the first, the longest common prefix with the
  previous step's whole prompt (system + user messages) over its length: what vLLM's and
  SGLang's automatic prefix caching can reuse (goal >= 0.9).

    .venv/bin/python -m bench.prompt_bench --out bench/results/served_prompts.json
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import tempfile
from pathlib import Path
from statistics import mean
from typing import Any

from bench.stub_server import ProbeServer

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "flows" / "data" / "demo"
CHARS_PER_TOKEN = 4.0


def _index(data_dir: Path) -> None:
    sage = str(Path(sys.executable).parent / "sage")
    env = {**os.environ, "SAGE_DATA_DIR": str(data_dir)}
    subprocess.run([sage, "index", str(DEMO / "corpus.jsonl"), "--collection", "demo"],
                   check=True, env=env, capture_output=True)  # fmt: skip


def _whole(body: dict) -> str:
    return "\n".join(str(m.get("content") or "") for m in body["messages"])


def _prefix(prev: str, cur: str) -> tuple[int, int, int]:
    """(common prefix, previous length, current length) of two consecutive prompts."""
    return len(os.path.commonprefix([prev, cur])), len(prev), len(cur)


def _prefix_stats(prefix: list[tuple[int, int, int]]) -> dict:
    """``mean``: per step, common prefix / current prompt (the issue's measure; each step's
    new passages are new text, so it grows with the trajectory); ``weighted``: the same over
    all characters; ``reuse``: common prefix / previous prompt (how much of the previous
    prompt, all of it cacheable, survives)."""
    shares = [n / cur for n, _, cur in prefix]
    return {
        "mean": round(mean(shares), 4),
        "min": round(min(shares), 4),
        "weighted": round(sum(n for n, _, _ in prefix) / sum(c for _, _, c in prefix), 4),
        "reuse_mean": round(mean(n / prev for n, prev, _ in prefix), 4),
        "steps": len(prefix),
    }


def _agent_prompts(
    sage: Any, server: Any, questions: list[str], state: dict[str, int]
) -> tuple[int, int, list[tuple[int, int, int]]]:
    """The agent on each question: retrieved characters shown and cut, and how much of
    each step's prompt the next step's repeats (``_prefix``)."""
    shown = cut = steps_before = 0
    prefix: list[tuple[int, int, int]] = []
    for i, q in enumerate(questions):
        state["q"] = i
        res = sage.agent(q, rollout_id=i)
        shown, cut = shown + res.meter.shown_chars, cut + res.meter.cut_chars
        bodies = server.bodies["step"][steps_before:]
        steps_before = len(server.bodies["step"])
        texts = [_whole(b) for b in bodies]
        prefix += [_prefix(p, c) for p, c in zip(texts, texts[1:], strict=False)]
    return shown, cut, prefix


def _profile(profile: str, data_dir: Path, questions: list[str], a: argparse.Namespace) -> dict:
    from modules.config import build_config
    from modules.index.retriever import open_retriever
    from modules.llm.lm import build_lm, lm_config
    from modules.programs.sage import Sage, SageLMs
    from modules.settings import load_settings

    state = {"q": 0}
    server = ProbeServer(
        lambda done: (
            questions[(state["q"] + done + 1) % len(questions)] if done < a.searches else None
        ),
        lambda n: questions[(n * 7 + 3) % len(questions)] if n < a.research else None,
    )
    try:
        settings = load_settings(lm="openai/stub", api_base=server.url, profile=profile,
                                 data_dir=data_dir)  # fmt: skip
        config = build_config(settings, attempts=1, rounds=0, max_searches=a.searches,
                              generator_searches=a.research)  # fmt: skip
        lms = [build_lm(lm_config(settings, r)) for r in ("generator", "agent", "judge")]
        for lm in lms:
            lm.cache = False
        retriever = open_retriever(settings, collection="demo", k=3)
        sage = Sage(retriever, SageLMs(*lms), config)
        shown, cut, prefix = _agent_prompts(sage, server, questions[: a.questions], state)
        step_chars = [len(_whole(b)) for b in server.bodies["step"]]
        gen = sage.generator(f"Seed\n{questions[0]}", 3, rollout_id=1)
        write = _whole(server.bodies["write"][-1])
        notes = gen.notes[1:]
        visible = sum(" ".join(n["text"].split()) in write for n in notes)
        return {
            "profile": profile,
            "agent_questions": a.questions,
            "agent_searches_per_question": a.searches,
            "agent_shown_share": round(shown / (shown + cut), 4) if shown + cut else None,
            "agent_shown_chars": shown,
            "agent_cut_chars": cut,
            "agent_step_prompt_chars": {
                "mean": round(mean(step_chars)),
                "max": max(step_chars),
            },  # fmt: skip
            "agent_step_prompt_tokens_est": {
                "mean": round(mean(step_chars) / CHARS_PER_TOKEN),
                "max": round(max(step_chars) / CHARS_PER_TOKEN),
            },
            "prefix_share": _prefix_stats(prefix),
            "generator_research_searches": len([t for t in gen.trace if t["type"] == "search"]),
            "notes": len(notes),
            "notes_visible_share": round(visible / len(notes), 4) if notes else None,
            "notes_chars_shown_share": round(
                gen.meter.shown_chars / (gen.meter.shown_chars + gen.meter.cut_chars), 4
            )
            if gen.meter.shown_chars + gen.meter.cut_chars
            else None,  # fmt: skip
            "writeqa_prompt_chars": len(write),
            "writeqa_prompt_tokens_est": round(len(write) / CHARS_PER_TOKEN),
        }
    finally:
        server.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=10, help="agent questions per profile")
    ap.add_argument("--searches", type=int, default=10, help="agent searches per question")
    ap.add_argument("--research", type=int, default=12, help="generator research searches")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "served_prompts.json")
    a = ap.parse_args()
    for key in [k for k in os.environ if k.startswith("SAGE_")]:
        del os.environ[key]
    os.environ["SAGE_CONFIG"] = "/nonexistent/sage.toml"
    questions = [json.loads(x)["question"] for x in (DEMO / "questions.jsonl").open()]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / ".sage"
        _index(data_dir)
        rows = [_profile(p, data_dir, questions, a) for p in ("paper", "small")]
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines()
                  if ln.startswith("Model name")), platform.processor())  # fmt: skip
    out = {
        "bench": "prompt_bench",
        "command": "python -m bench.prompt_bench " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": {"cpu": model, "cores": os.cpu_count()},
        "corpus": "flows/data/demo/corpus.jsonl (indexed: Qdrant Edge, MiniLM + BM25)",
        "tokens_estimate": f"characters / {CHARS_PER_TOKEN}",
        "profiles": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
