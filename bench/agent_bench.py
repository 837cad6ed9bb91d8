"""Search agent on HotpotQA with the local model: step parse rate, seconds and LM calls per
attempt, accuracy (judge) over an index of the shared Wikipedia paragraphs.

    .venv/bin/sage --qdrant /tmp/wiki/qdrant index ../shared/data/wiki_paragraphs_16k.jsonl \\
        --collection wiki
    .venv/bin/python bench/agent_bench.py --qdrant /tmp/wiki/qdrant --collection wiki --n 20 \\
        --out /tmp/agent.json

No results of it are kept in bench/results/ (docs/BENCHMARKS.md's HotpotQA table is
history, recorded with `sage evaluate` at commit 8ee1ca3), so --out is required.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from modules.index.retriever import QdrantRetriever
from modules.llm.lm import LMConfig, build_lm
from modules.programs.agent import SearchAgent
from modules.programs.judge import Judge
from modules.programs.predict import Meter

REPO = Path(__file__).resolve().parents[1]
HOTPOT = REPO.parent / "shared" / "data" / "qa" / "hotpotqa_dev_250.jsonl"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--qdrant", required=True)
    ap.add_argument("--collection", default="wiki")
    ap.add_argument("--n", type=int, default=20)
    ap.add_argument("--max-searches", type=int, default=10)
    ap.add_argument("--models-dir", type=Path, default=Path.home() / ".cache/sage/models")
    ap.add_argument("--out", type=Path, required=True, help="the results file to write")
    a = ap.parse_args()
    lm = build_lm(LMConfig(model="local", models_dir=a.models_dir, cache=False))
    agent = SearchAgent(
        QdrantRetriever(a.qdrant, a.collection, a.models_dir), lm=lm, max_searches=a.max_searches
    )
    judge = Judge(lm)
    rows = []
    for line in HOTPOT.read_text().splitlines()[: a.n]:
        q = json.loads(line)
        golds = [s for o in q["answers_objects"] for s in o["spans"]]
        t0 = time.perf_counter()
        res = agent(q["question_text"], rollout_id=1, temperature=0.7)
        j = judge(q["question_text"], golds[0], res.answer, aliases=golds[1:], meter=Meter())
        rows.append(
            {
                "id": q["question_id"],
                "gold": golds,
                "answer": res.answer,
                "correct": j.correct,
                "method": j.method,
                "searches": res.n_searches,
                "steps": res.step_calls,
                "parse_failures": res.parse_failures,
                "lm_calls": res.meter.lm_calls,
                "tokens": res.meter.tokens,
                "seconds": round(time.perf_counter() - t0, 1),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    n = len(rows)
    steps = sum(r["steps"] for r in rows)
    summary = {
        "n": n,
        "accuracy": round(sum(r["correct"] for r in rows) / n, 3),
        "step_parse_rate": round(1 - sum(r["parse_failures"] for r in rows) / steps, 3),
        "seconds_per_attempt": round(sum(r["seconds"] for r in rows) / n, 1),
        "lm_calls_per_attempt": round(sum(r["lm_calls"] for r in rows) / n, 1),
        "mean_searches": round(sum(r["searches"] for r in rows) / n, 2),
        "rows": rows,
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps({k: v for k, v in summary.items() if k != "rows"}, indent=2))


if __name__ == "__main__":
    main()
