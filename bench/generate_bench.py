"""Generation cost on the local model: LM calls/tokens per accepted item, seconds per seed,
and Prefect's share of the run time.

    .venv/bin/python bench/generate_bench.py --workdir /tmp/genbench --seeds 3 \\
        --out /tmp/generate.json

No results of it are kept in bench/results/ (docs/BENCHMARKS.md's generation table is
history), so --out is required.

Indexes the demo corpus (collection 'demo') in --workdir, runs `sage generate` there and
reads the run's metrics. Prefect overhead = wall time of the flow minus the time spent
inside the SAGE program (sum of per-round seconds), as a share of the wall time.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import polars as pl

REPO = Path(__file__).resolve().parents[1]
SAGE = str(Path(sys.executable).parent / "sage")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--attempts", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--steps", default="2-3")
    ap.add_argument("--max-searches", type=int, default=4)
    ap.add_argument("--generator-searches", type=int, default=3)
    ap.add_argument("--out", type=Path, required=True, help="the results file to write")
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    corpus = REPO / "flows" / "data" / "demo" / "corpus.jsonl"
    index = [SAGE, "index", str(corpus), "--collection", "demo", "--json"]
    subprocess.run(index, cwd=a.workdir, check=True, capture_output=True)
    run_id = f"bench-{int(time.time())}"
    t0 = time.perf_counter()
    args = f"--seeds {a.seeds} --attempts {a.attempts} --rounds {a.rounds} --steps {a.steps}"
    args += f" --max-searches {a.max_searches} --generator-searches {a.generator_searches}"
    res = subprocess.run(
        [SAGE, "generate", "--collection", "demo", *args.split(), "--run-id", run_id, "--json"],
        cwd=a.workdir,
        capture_output=True,
        text=True,
        check=True,
    )
    process_s = time.perf_counter() - t0
    summary = json.loads(res.stdout[res.stdout.index("{") :])
    run = Path(summary["run_dir"])
    cands = pl.read_parquet(run / "candidates.parquet")
    metrics = json.loads((run / "metrics.json").read_text())
    model_s = float(cands["seconds"].sum())
    wall = float(summary["wall_seconds"])
    attempts = [
        a
        for line in (run / "traces.jsonl").read_text().splitlines()
        for a in json.loads(line)["attempts"]
    ]
    steps = sum(a["step_calls"] for a in attempts)
    fails = sum(a["parse_failures"] for a in attempts)
    out = {
        "params": vars(a) | {"workdir": str(a.workdir), "out": str(a.out)},
        "process_seconds": round(process_s, 1),
        "flow_wall_seconds": wall,
        "model_seconds": round(model_s, 1),
        "prefect_overhead_share": round(max(0.0, wall - model_s) / wall, 3) if wall else None,
        "seconds_per_seed": round(wall / a.seeds, 1),
        "accepted": summary["accepted"],
        "lm_calls": metrics["cost"]["lm_calls"],
        "tokens": metrics["cost"]["tokens"],
        "lm_calls_per_accepted": metrics["cost"]["lm_calls_per_accepted"],
        "tokens_per_accepted": metrics["cost"]["tokens_per_accepted"],
        "agent_steps": steps,
        "agent_step_parse_rate": round(1 - fails / steps, 3) if steps else None,
        "per_round": metrics["per_round"],
        "status_counts": metrics["status_counts"],
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
