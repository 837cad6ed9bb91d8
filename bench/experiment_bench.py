"""What `sage experiment` costs and measures: wall time and LM calls per arm, and its table.

    # cost at scale: the stub model server (bench/stub_server.py, no model) behind
    # --lm openai/stub, 200 seeds, K=2, R=2
    .venv/bin/python -m bench.experiment_bench --stub --seeds 200 --concurrency 8 \\
        --out bench/results/experiment_stub.json
    # a real run on the bundled local model (CPU)
    SAGE_N_THREADS=2 .venv/bin/python -m bench.experiment_bench --seeds 4 \\
        --out bench/results/experiment_local.json

Indexes the demo corpus (collection 'demo') in a temporary data dir (or --workdir), runs
`sage experiment --json` there and keeps its summary: the table, the paired differences,
each arm's wall seconds and LM calls (the shared round 0 counted once, under round0).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAGE = str(Path(sys.executable).parent / "sage")
CORPUS = REPO / "flows" / "data" / "demo" / "corpus.jsonl"


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--stub", action="store_true", help="the stub server, not the local model")
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--attempts", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--steps", default="2-3")
    ap.add_argument("--max-searches", type=int, default=4)
    ap.add_argument("--generator-searches", type=int, default=2)
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--answer-types", default="entity", help="the stub answers entities only")
    ap.add_argument("--latency", type=float, default=0.0, help="stub seconds per request")
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--run-id", default=None, help="resume this experiment (in --workdir)")
    ap.add_argument(
        "--table-only",
        action="store_true",
        help="no run: the table of --run-id's finished rounds (a stopped run)",
    )
    ap.add_argument("--out", type=Path, required=True, help="the results file to write")
    return ap.parse_args()


def _machine() -> dict:
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    info = dict(ln.split(":", 1) for ln in cpu.splitlines() if ":" in ln)
    flags = info.get("Flags", "").split()
    return {"cpu": info.get("Model name", "").strip(), "cores": os.cpu_count(),
            "flags": [f for f in flags if f.startswith(("avx", "amx"))]}  # fmt: skip


def _command(a: argparse.Namespace, lm: list[str], run_id: str) -> list[str]:
    return [SAGE, *lm, "experiment", "--collection", "demo", "--seeds", str(a.seeds),
            "--steps", a.steps, "--rounds", str(a.rounds), "--attempts", str(a.attempts),
            "--max-searches", str(a.max_searches), "--generator-searches",
            str(a.generator_searches), "--concurrency", str(a.concurrency),
            "--answer-types", a.answer_types,
            "--run-id", run_id, "--json"]  # fmt: skip


def run(a: argparse.Namespace, wd: Path) -> dict:
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("SAGE_") or k == "SAGE_N_THREADS"
    }
    subprocess.run([SAGE, "index", str(CORPUS), "--collection", "demo", "--json"], cwd=wd,
                   check=True, capture_output=True, env=env)  # fmt: skip
    server, lm = None, []
    if a.stub:
        from bench.stub_server import StubServer

        server = StubServer(latency=a.latency)
        lm, env = ["--lm", "openai/stub", "--api-base", server.url], env | {"SAGE_API_KEY": "stub"}
    cmd = _command(a, lm, a.run_id or f"bench-{int(time.time())}")
    t0 = time.perf_counter()
    try:
        res = subprocess.run(cmd, cwd=wd, capture_output=True, text=True, env=env)
    finally:
        calls = dict(server.calls) if server else None
        if server:
            server.close()
    if res.returncode:
        sys.exit(res.stderr[-3000:])
    summary = json.loads(res.stdout)
    table_md = (Path(summary["run_dir"]) / "experiment" / "table.md").read_text()
    return {"wall_seconds_process": round(time.perf_counter() - t0, 1), "server_calls": calls,
            "summary": summary, "table_md": table_md}  # fmt: skip


def finished_rounds(root: Path) -> dict:
    """The table of what a stopped experiment finished (every arm's checkpointed rounds; an
    arm not started yet holds the shared round 0), and its rounds, LM calls and seconds."""
    from flows.reports.experiment_table import build_table
    from flows.runs.finalise import group_rounds, summary_of
    from flows.runs.metrics import candidates_frame
    from flows.runs.store import RunStore

    p = json.loads((root / "manifest.json").read_text())["params"]
    shared = [summary_of(r) for r in RunStore(root, "round0").iter_records()]
    frames, done = {}, {"round0": _cost(shared)}
    for arm in p["arms"].split(","):
        own = [summary_of(r) for r in RunStore(root, arm).iter_records()]
        computed = own if arm == "no-target" else [r for r in own if r["round"] > 0]
        done[arm] = _cost(computed)
        rows = own if arm == "no-target" else [*shared, *computed]
        if rows:
            frames[arm] = candidates_frame([r for rs in group_rounds(rows).values() for r in rs])
    return {"rounds_done": done, **build_table(frames, p["rounds"], p["seed"], p["bootstrap"])}


def _cost(recs: list[dict]) -> dict:
    return {"rounds": len(recs), "lm_calls": sum(r["lm_calls"] for r in recs),
            "seconds": round(sum(r["seconds"] for r in recs), 1)}  # fmt: skip


def table_only(a: argparse.Namespace) -> None:
    root = a.workdir / "runs" / a.run_id / "experiment"
    params = json.loads((root / "manifest.json").read_text())["params"]
    out = {
        "bench": "experiment_bench",
        "partial": True,
        "command": "python -m bench.experiment_bench " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "params": params,
        **finished_rounds(root),
    }
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out["rounds_done"], indent=2))


def main() -> None:
    a = _args()
    if a.table_only:
        return table_only(a)
    with tempfile.TemporaryDirectory() as tmp:
        wd = a.workdir or Path(tmp)
        wd.mkdir(parents=True, exist_ok=True)
        result = run(a, wd)
    s = result["summary"]
    out = {
        "bench": "experiment_bench",
        "command": "python -m bench.experiment_bench " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "machine": _machine(),
        "lm": "stub server (no model)" if a.stub else "local (Qwen2.5-Coder-0.5B, llama.cpp)",
        "corpus": "flows/data/demo/corpus.jsonl (85 documents)",
        "seeds": a.seeds, "attempts": a.attempts, "rounds": a.rounds, "steps": a.steps,
        "answer_types": a.answer_types, "resumed": s["resumed"],
        "wall_seconds": s["wall_seconds"] | {"process": result["wall_seconds_process"]},
        "lm_calls": s["lm_calls"], "server_calls": result["server_calls"],
        "table": s["table"], "paired": s["paired"], "warnings": s["warnings"],
        "table_md": result["table_md"],
    }  # fmt: skip
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps({k: out[k] for k in ("wall_seconds", "lm_calls", "server_calls")}, indent=2))


if __name__ == "__main__":
    main()
