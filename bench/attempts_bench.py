"""Concurrent vs sequential K search-agent attempts against a llama.cpp server with
parallel slots (the same local GGUF model, served).

    .venv/bin/python bench/attempts_bench.py --server-bin /path/to/llama-server \\
        --workdir /tmp/attbench --questions 4 --attempts 4 --parallel 4 --out /tmp/attempts.json

Its tables in docs/BENCHMARKS.md are history (commits 8ee1ca3, 3af0e14: sage's former
LiteLLM path); no results of it are kept in bench/results/, so --out is required.

Starts `llama-server --parallel P` on the pinned Qwen2.5-Coder-0.5B GGUF, indexes the demo
corpus (collection 'demo') in --workdir, then for each demo question runs the K judged
attempts (modules.programs.attempts.run_attempts) once sequentially (workers=1) and
once concurrently (workers=K), with the same rollout ids, and records wall time, LM calls,
parse rate and correctness. The DSPy cache is off, so no call is answered from cache.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from flows.data.qa_sets import load_qa  # noqa: E402
from modules import model_store  # noqa: E402
from modules.index.retriever import QdrantRetriever  # noqa: E402
from modules.llm.lm import LMConfig, build_lm  # noqa: E402
from modules.programs.agent import SearchAgent  # noqa: E402
from modules.programs.attempts import run_attempts  # noqa: E402
from modules.programs.judge import Judge  # noqa: E402

SAGE = str(Path(sys.executable).parent / "sage")


def wait_health(url: str, timeout: float = 300) -> None:
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise RuntimeError(f"{url} not healthy after {timeout} s")


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser()
    ap.add_argument("--server-bin", required=True)
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--attempts", type=int, default=4)
    ap.add_argument("--parallel", type=int, default=4)
    ap.add_argument("--max-searches", type=int, default=3)
    ap.add_argument("--ctx-per-slot", type=int, default=8192)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--port", type=int, default=8091)
    ap.add_argument(
        "--response-schema", choices=("on", "off"), default="on",
        help="on: send the signature schema (sage's default with api_base); off: JSON mode",
    )  # fmt: skip
    ap.add_argument("--models-dir", type=Path, default=Path.home() / ".cache/sage/models")
    ap.add_argument("--out", type=Path, required=True, help="the results file to write")
    return ap.parse_args()


def _rows(a: argparse.Namespace, agent: SearchAgent, judge: Judge) -> list[dict]:
    """Each demo question's K attempts, sequentially and then concurrently."""
    items = load_qa(REPO / "flows/data/demo/questions.jsonl", "qa")[: a.questions]
    rows = []
    for i, it in enumerate(items):
        for workers in (1, a.attempts):
            t0 = time.perf_counter()
            atts = run_attempts(agent, judge, it.question, it.answers, a.attempts,
                                1000 * i, 0.7, workers)  # fmt: skip
            wall = time.perf_counter() - t0
            steps = sum(x.step_calls for x in atts)
            rows.append({
                "qid": it.id, "workers": workers, "wall_s": round(wall, 1),
                "lm_calls": sum(x.meter["lm_calls"] for x in atts),
                "tokens": sum(x.meter["tokens"] for x in atts),
                "searches": [x.n_searches for x in atts],
                "correct": sum(x.correct for x in atts),
                "parse_rate": round(1 - sum(x.parse_failures for x in atts) / steps, 3)
                if steps else None,
            })  # fmt: skip
            print(json.dumps(rows[-1]), flush=True)
    return rows


def _summary(a: argparse.Namespace, rows: list[dict]) -> dict:
    seq = sum(r["wall_s"] for r in rows if r["workers"] == 1)
    con = sum(r["wall_s"] for r in rows if r["workers"] != 1)
    seq_calls = sum(r["lm_calls"] for r in rows if r["workers"] == 1)
    con_calls = sum(r["lm_calls"] for r in rows if r["workers"] != 1)
    return {
        "params": {k: str(v) for k, v in vars(a).items()},
        "sequential_s": round(seq, 1),
        "concurrent_s": round(con, 1),
        "speedup": round(seq / con, 2) if con else None,
        "sequential_s_per_call": round(seq / seq_calls, 2) if seq_calls else None,
        "concurrent_s_per_call": round(con / con_calls, 2) if con_calls else None,
        "rows": rows,
    }


def main() -> None:
    a = _args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [SAGE, "index", str(REPO / "flows/data/demo/corpus.jsonl"), "--collection", "demo"],
        cwd=a.workdir, check=True, capture_output=True,
    )  # fmt: skip
    gguf = model_store.llm_path(a.models_dir)
    log = (a.workdir / "server.log").open("w")  # noqa: SIM115 (lives as long as the server)
    server = subprocess.Popen(
        [a.server_bin, "-m", str(gguf), "--port", str(a.port), "--host", "127.0.0.1",
         "--parallel", str(a.parallel), "-c", str(a.ctx_per_slot * a.parallel),
         "--threads", str(a.threads), "--no-webui"],
        stdout=subprocess.DEVNULL, stderr=log,
        start_new_session=True,
    )  # fmt: skip
    try:
        wait_health(f"http://127.0.0.1:{a.port}/health")
        lm = build_lm(
            LMConfig(
                model="openai/qwen2.5-coder-0.5b",
                api_base=f"http://127.0.0.1:{a.port}/v1",
                api_key="none",
                cache=False,
                max_tokens=768,
                response_schema=a.response_schema == "on",
            )  # fmt: skip
        )
        retriever = QdrantRetriever(str(a.workdir / ".sage/qdrant"), "demo", a.models_dir)
        agent = SearchAgent(retriever, lm, max_searches=a.max_searches)
        judge = Judge(lm)
        out = _summary(a, _rows(a, agent, judge))
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(out, indent=2))
        print(json.dumps({k: v for k, v in out.items() if k != "rows"}, indent=2))
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
