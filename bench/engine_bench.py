"""The local engine (xllamacpp: llama.cpp's server in process) where it stands against its
limit on this machine: raw prompt/generation speed on a realistic agent step, the prompt
cache across the steps of one attempt, and K attempts concurrent vs sequential.

    .venv/bin/python bench/engine_bench.py --workdir /tmp/enginebench

1. Indexes the demo corpus (collection 'demo') in --workdir.
2. Cache: runs the search agent (max 4 searches) on demo questions until one attempt makes
   4 searches, and records per step the prompt tokens served from the slot's KV cache
   (``timings.cache_n``) and evaluated anew (``prompt_n``).
3. Speed: replays that attempt's last step (the longest prompt) with ``cache_prompt`` off,
   three times: prompt tokens/s, generated tokens/s, seconds per step.
4. K attempts: for --questions demo questions, the K judged attempts once one after another
   (workers=1) and once at the same time (workers=K, K parallel slots), same rollout ids.
The DSPy cache is off, so no call is answered from a disk cache.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import dspy  # noqa: E402

from flows.data.qa_sets import load_qa  # noqa: E402
from modules.index.retriever import QdrantRetriever  # noqa: E402
from modules.llm.lm import LMConfig, build_lm  # noqa: E402
from modules.llm.local_engine import system_info  # noqa: E402
from modules.programs.agent import SearchAgent  # noqa: E402
from modules.programs.attempts import run_attempts  # noqa: E402
from modules.programs.judge import Judge  # noqa: E402
from modules.programs.signatures import NextStep  # noqa: E402

SAGE = str(Path(sys.executable).parent / "sage")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def cpu_flags() -> list[str]:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags = line.split(":", 1)[1].split()
            return sorted(f for f in flags if f.startswith(("avx", "amx", "fma", "f16c")))
    return []


def cache_per_step(lm, agent: SearchAgent, questions: list) -> dict:
    """Per-step cache share of the first attempt that makes exactly 4 searches."""
    for i, it in enumerate(questions):
        lm.engine.timings.clear()
        res = agent(it.question, rollout_id=7000 + i, temperature=0.7)
        if res.n_searches == 4 and not res.parse_failures:
            steps = []
            for n, t in enumerate(lm.engine.timings, start=1):
                total, cached = t["cache_n"] + t["prompt_n"], t["cache_n"]
                share = round(cached / total, 3) if total else None
                steps.append({"step": n, "prompt_tokens": total, "cached": cached, "share": share})
            later = steps[1:]
            return {
                "qid": it.id,
                "steps": steps,
                "share_all_steps": round(
                    sum(s["cached"] for s in steps) / sum(s["prompt_tokens"] for s in steps), 3
                ),
                "share_steps_2_on": round(
                    sum(s["cached"] for s in later) / sum(s["prompt_tokens"] for s in later), 3
                ),
                "last_step_inputs": {"question": it.question, "trace": res.trace},
            }
    raise SystemExit("no 4-search attempt among the demo questions; raise --cache-tries")


def raw_speed(lm, agent: SearchAgent, last: dict, repeats: int = 3) -> dict:
    """The longest step replayed with cache_prompt off: prefill and decode speed."""
    from modules.programs.agent import render_trajectory

    traj = render_trajectory(last["trace"], agent.passage_chars, agent.trajectory_chars)
    inputs = {"question": last["question"], "trajectory": traj, "searches_left": 1}
    messages = dspy.JSONAdapter().format(dspy.Predict(NextStep).signature, [], inputs)
    schema = {"type": "json_schema", "json_schema": {"name": "NextStep", "schema": {
        "type": "object", "required": ["reasoning", "action", "text"],
        "properties": {"reasoning": {"type": "string", "maxLength": 400},
                       "action": {"enum": ["search", "answer"]},
                       "text": {"type": "string", "maxLength": 400}}}}}  # fmt: skip
    rows = []
    for r in range(repeats):
        body = {"messages": messages, "max_tokens": 256, "temperature": 0.7, "seed": r,
                "cache_prompt": False, "response_format": schema}  # fmt: skip
        t0 = time.perf_counter()
        out = lm.engine.server.handle_chat_completions(body)
        wall = time.perf_counter() - t0
        t = out["timings"]
        rows.append({"wall_s": round(wall, 2), "prompt_tokens": t["prompt_n"],
                     "prompt_tok_s": round(t["prompt_per_second"], 1),
                     "generated_tokens": t["predicted_n"],
                     "gen_tok_s": round(t["predicted_per_second"], 1)})  # fmt: skip
    return {"repeats": rows}


def k_attempts(agent, judge, questions, k: int) -> dict:
    rows = []
    for i, it in enumerate(questions):
        for workers in (1, k):
            t0 = time.perf_counter()
            atts = run_attempts(agent, judge, it.question, it.answers, k, 1000 * i, 0.7, workers)
            wall = time.perf_counter() - t0
            rows.append({"qid": it.id, "workers": workers, "wall_s": round(wall, 1),
                         "lm_calls": sum(a.meter["lm_calls"] for a in atts),
                         "searches": [a.n_searches for a in atts],
                         "correct": sum(a.correct for a in atts)})  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    seq = [r for r in rows if r["workers"] == 1]
    con = [r for r in rows if r["workers"] != 1]
    seq_s, con_s = sum(r["wall_s"] for r in seq), sum(r["wall_s"] for r in con)
    seq_calls, con_calls = sum(r["lm_calls"] for r in seq), sum(r["lm_calls"] for r in con)
    return {
        "sequential_s": round(seq_s, 1),
        "concurrent_s": round(con_s, 1),
        "sequential_s_per_call": round(seq_s / seq_calls, 2),
        "concurrent_s_per_call": round(con_s / con_calls, 2),
        "per_call_speedup": round((seq_s / seq_calls) / (con_s / con_calls), 2),
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--questions", type=int, default=2, help="questions for the K test")
    ap.add_argument("--attempts", type=int, default=4)
    ap.add_argument("--max-searches", type=int, default=4)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--models-dir", type=Path, default=Path.home() / ".cache/sage/models")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "engine.json")
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [SAGE, "index", str(REPO / "flows/data/demo/corpus.jsonl"), "--collection", "demo"],
        cwd=a.workdir, check=True, capture_output=True,
    )  # fmt: skip
    lm = build_lm(LMConfig(model="local", models_dir=a.models_dir, cache=False,
                           n_threads=a.threads, n_parallel=a.attempts))  # fmt: skip
    retriever = QdrantRetriever(str(a.workdir / ".sage/qdrant"), "demo", a.models_dir)
    agent = SearchAgent(retriever, lm, max_searches=a.max_searches)
    judge = Judge(lm)
    questions = load_qa(REPO / "flows/data/demo/questions.jsonl", "qa")
    t0 = time.time()
    cache = cache_per_step(lm, agent, questions)
    last = cache.pop("last_step_inputs")
    print(json.dumps(cache), flush=True)
    speed = raw_speed(lm, agent, last)
    print(json.dumps(speed), flush=True)
    k = k_attempts(agent, judge, questions[: a.questions], a.attempts)
    out = {
        "date": time.strftime("%Y-%m-%d"),
        "command": "python bench/engine_bench.py " + " ".join(sys.argv[1:]),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "cores": os.cpu_count(),
        "engine_system_info": system_info(),
        "params": {k_: str(v) for k_, v in vars(a).items()},
        "cache_4_search_attempt": cache,
        "raw_step_speed": speed,
        "k_attempts": k,
        "bench_seconds": round(time.time() - t0, 1),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))
    print(json.dumps({k_: v for k_, v in out.items() if k_ != "k_attempts"}, indent=2))


if __name__ == "__main__":
    main()
