"""Fresh `sage demo --seed N` runs, one at a time: wall and CPU time, the machine's load, the
accepted items, and per round the rules the written pairs broke and the outcome.

    .venv/bin/python -m bench.demo_bench --seeds 0 1 2 3 4 --out bench/results/demo.json

Models must be cached (`sage models pull`); each run gets its own run id in one data
directory (the demo corpus is indexed by the first run, then found unchanged). The goal
(issue #25): >= 3 of 5 runs accept an item needing >= 2 searches, each run <= 8 minutes on
2 cores. Other processes on the machine inflate wall times: `load` records `os.getloadavg`
before and after each run, and `cpu_seconds` the run's own CPU time.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

GOAL = {"runs_accepting": 3, "of": 5, "min_searches": 2, "minutes_per_run": 8.0}


def _cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def _violations(trace: list[dict[str, Any]]) -> list[str]:
    """The rules the round's written pairs broke, and its parse failures."""
    out = [f"rule: {t['rule_violation']}" for t in trace if t.get("rule_violation")]
    return out + [f"parse: {t['error']}" for t in trace if t.get("type") == "parse_failure"]


def _round_row(r: dict[str, Any]) -> dict[str, Any]:
    cand = r.get("candidate") or {}
    attempts = r.get("attempts") or []
    return {
        "round": r.get("round"),
        "mode": r.get("mode"),
        "status": r.get("status"),
        "question": cand.get("question"),
        "answer": cand.get("answer"),
        "violations": _violations(r.get("generator_trace") or []),
        "attempts": [
            {
                "answer": a.get("answer"),
                "correct": a.get("correct"),
                "n_searches": a.get("n_searches"),
                "searches_made": a.get("searches_made"),
                "queries": [t["query"] for t in a.get("trace") or [] if t["type"] == "search"],
                "agent_parse_failures": sum(
                    t["type"] == "parse_failure" for t in a.get("trace") or []
                ),
            }
            for a in attempts
        ],
        "meter": r.get("meter"),
    }


def read_run(run_dir: Path) -> dict[str, Any]:
    """Accepted items and per-round rows of a finished run directory."""
    rounds = []
    traces = run_dir / "traces.jsonl"
    if traces.exists():
        rounds = [json.loads(x) for x in traces.read_text().splitlines() if x.strip()]
    accepted = []
    dataset = run_dir / "dataset.jsonl"
    if dataset.exists():
        accepted = [json.loads(x) for x in dataset.read_text().splitlines() if x.strip()]
    items = [
        {k: a.get(k) for k in ("question", "answer", "target_steps", "min_searches", "round")}
        for a in accepted
    ]
    return {"accepted": items, "rounds": [_round_row(r) for r in rounds]}


def run_one(seed: int, data_dir: Path, extra: list[str]) -> dict[str, Any]:
    """One `sage demo --seed N` in ``data_dir`` (its own run id), timed."""
    run_id = f"bench-seed{seed}-{int(time.time())}"
    env = {**os.environ, "SAGE_DATA_DIR": str(data_dir), "SAGE_RUNS_DIR": str(data_dir / "runs")}
    cmd = [str(Path(sys.executable).parent / "sage"), "demo", "--seed", str(seed),
           "--run-id", run_id, *extra]  # fmt: skip
    load_before, cpu0, t0 = os.getloadavg(), _cpu_children(), time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, _cpu_children() - cpu0
    row = {
        "seed": seed,
        "run_id": run_id,
        "returncode": proc.returncode,
        "wall_seconds": round(wall, 1),
        "cpu_seconds": round(cpu, 1),
        "load_before": [round(x, 2) for x in load_before],
        "load_after": [round(x, 2) for x in os.getloadavg()],
        "stdout_tail": proc.stdout.strip().splitlines()[-12:],
        "stderr_tail": proc.stderr.strip().splitlines()[-3:],
        **read_run(data_dir / "runs" / run_id),
    }
    row["accepted_2plus"] = any((a["min_searches"] or 0) >= 2 for a in row["accepted"])
    return row


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    hits = sum(r["accepted_2plus"] for r in runs)
    within = sum(r["wall_seconds"] <= GOAL["minutes_per_run"] * 60 for r in runs)
    return {
        "runs": len(runs),
        "accepting_2plus": hits,
        "within_8_minutes": within,
        "goal_met": hits >= GOAL["runs_accepting"] and within == len(runs),
        "mean_wall_seconds": round(sum(r["wall_seconds"] for r in runs) / max(1, len(runs)), 1),
        "mean_cpu_seconds": round(sum(r["cpu_seconds"] for r in runs) / max(1, len(runs)), 1),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--data-dir", type=Path, default=None, help="default: a temporary dir")
    ap.add_argument("--append", action="store_true", help="add runs to an existing --out")
    ap.add_argument("extra", nargs="*", help="more `sage demo` options, after --")
    a = ap.parse_args()
    data_dir = a.data_dir or Path(tempfile.mkdtemp(prefix="sage-demo-bench-"))
    command = " ".join(["python -m bench.demo_bench", *sys.argv[1:]])
    result: dict[str, Any] = {
        "commands": [],
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "goal": GOAL,
        "runs": [],
    }
    if a.append and a.out.exists():
        result = json.loads(a.out.read_text())
    result["commands"] = [*result.get("commands", []), f"{time.strftime('%F %T %Z')}: {command}"]
    for seed in a.seeds:
        result["runs"].append(run_one(seed, data_dir, a.extra))
        result["summary"] = summarize(result["runs"])
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=1, ensure_ascii=False) + "\n")
        r = result["runs"][-1]
        line = f"seed {seed}: {r['wall_seconds']} s, accepted {len(r['accepted'])}"
        print(f"{line}, 2+ searches {r['accepted_2plus']}, load {r['load_before']}", flush=True)
    print(json.dumps(result["summary"]))


if __name__ == "__main__":
    main()
