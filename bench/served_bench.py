"""Throughput of `sage generate` against a served model: CPU per LM call and efficiency.

    .venv/bin/python bench/served_bench.py --workdir /tmp/servedbench \\
        [--latencies 0,0.5,2] [--concurrency 1,8,32,128] [--attempt-workers 1,4]

The model is bench/stub_server.py: an OpenAI-compatible HTTP server on 127.0.0.1 answering
every sage signature with valid JSON after ``latency`` seconds (searches, a revision per
seed and LLM-judge calls are all exercised). Each grid cell runs the real CLI (`sage --lm
openai/stub --api-base ... generate`: the served engine, real Prefect, embedded Qdrant Edge,
checkpoints) in a subprocess on the demo corpus, and records:

- ``lm_calls``: requests the stub served; ``wall_s``: the command's wall time;
- ``cpu_ms_per_call``: the sage process's CPU time (user + system, its temporary Prefect
  API included) per LM call in steady state: three 1-seed runs measured first give the
  fixed cost of a command (imports, starting the Prefect API, loading the embedder: ~16 s
  of CPU), whose mean is subtracted with those runs' calls
  (``cpu_ms_per_call_with_startup`` does not subtract it);
- ``efficiency``: ideal wall time / the flow's own wall time (``flow_wall_s``: from the
  seed plan to the written run, after process start, the Prefect API and loading the
  services; ``efficiency_with_startup`` uses ``wall_s``). Ideal = latency x (G + A /
  min(W, K)) / C,
  where G counts generator and reviser calls (sequential within a seed), A agent and judge
  calls (K attempts of which W run at once) and C the seeds in flight (under a
  ``--rate-limit`` N, at most N): the time the run
  would take if sage itself cost nothing. Undefined at latency 0.
- ``rss_mb``: peak resident memory of the sage process tree (the CLI, its Prefect API, Dask
  workers), sampled every 0.5 s; ``rss_growth_kb_per_call``: the slope of that memory over
  the LM calls served, fitted on the samples after the first 20 % of the calls (start-up
  and warm caches excluded) up to the last call (the run's dataset and reports excluded;
  ``rss_growth_kb_per_call_with_tail`` includes them; ``rss_samples``: the samples): what a
  longer run adds per call; ``rss_growth_kb_per_call_sage_process`` and
  ``rss_samples_sage_process``: the same for the sage process alone (not its Prefect API);
  ``..._second_half``: both fitted after half of the calls, when the bounded caches are full.

Rows go to ``bench/results/served_throughput.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.limited_server import LimitedStubServer  # noqa: E402
from bench.proc_tree import tree_rss_mb  # noqa: E402
from bench.stub_server import StubServer  # noqa: E402

SAGE = str(Path(sys.executable).parent / "sage")


def sage_command(code: Path | None) -> list[str]:
    """`sage`, or another checkout's entry point (as its pyproject.toml names it)."""
    if code is None:
        return [SAGE]
    import tomllib

    target = tomllib.loads((code / "pyproject.toml").read_text())["project"]["scripts"]["sage"]
    module, func = target.split(":")
    return [sys.executable, "-c", f"from {module} import {func}; {func}()"]


def _sample_rss(
    pid: int, server: StubServer, out: list[tuple[int, float]], own: list[tuple[int, float]]
) -> None:
    """(LM calls served, MB resident in the process tree) into ``out`` and (calls, MB of the
    sage process alone, its Prefect API and workers left out) into ``own``, every 0.5 s
    until ``pid`` exits."""
    try:
        root = psutil.Process(pid)
        while root.is_running() and root.status() != psutil.STATUS_ZOMBIE:
            calls = sum(server.calls.values())
            out.append((calls, tree_rss_mb(root)))
            own.append((calls, root.memory_info().rss / 2**20))
            time.sleep(0.5)
    except psutil.Error:
        return


def _growth_kb_per_call(
    samples: list[tuple[int, float]], calls: int, tail: bool = False, start: float = 0.2
) -> float | None:
    """Least-squares slope of MB over calls (KB per call), after ``start`` of the calls and,
    unless ``tail``, before the last call was served: after it the run writes its dataset,
    reports and plots (pyarrow, matplotlib: tens of MB) while the call count stands still,
    which a fit over calls would read as growth per call."""
    last = next((i for i, (c, _) in enumerate(samples) if c >= calls), len(samples))
    pts = [(c, m) for c, m in (samples if tail else samples[: last + 1]) if c >= start * calls]
    if len(pts) < 5 or pts[-1][0] == pts[0][0]:
        return None
    mc = sum(c for c, _ in pts) / len(pts)
    mm = sum(m for _, m in pts) / len(pts)
    var = sum((c - mc) ** 2 for c, _ in pts)
    return round(1024 * sum((c - mc) * (m - mm) for c, m in pts) / var, 2)


def _memory(samples: list[tuple[int, float]], own: list[tuple[int, float]], calls: int) -> dict:
    """A cell's memory fields (see the module docstring) from its RSS samples."""
    return {
        "rss_mb": round(max((m for _, m in samples), default=0.0), 1),
        "rss_growth_kb_per_call": _growth_kb_per_call(samples, calls),
        "rss_growth_kb_per_call_with_tail": _growth_kb_per_call(samples, calls, tail=True),
        "rss_samples": samples[:: max(1, len(samples) // 200)],  # (calls served, MB)
        "rss_growth_kb_per_call_sage_process": _growth_kb_per_call(own, calls),
        "rss_samples_sage_process": own[:: max(1, len(own) // 200)],
        # the second half only: the bounded caches (queries, LM responses, SQLite
        # connections per thread) fill early in a run; what still grows here grows all night
        "rss_growth_kb_per_call_second_half": _growth_kb_per_call(samples, calls, start=0.5),
        "rss_growth_kb_per_call_sage_process_second_half": _growth_kb_per_call(
            own, calls, start=0.5
        ),
    }


def _cell_command(
    a: argparse.Namespace,
    url: str,
    run_id: str,
    conc: int | str,
    workers: int,
    seeds: int,
    client: str,
) -> tuple[list[str], dict[str, str]]:
    """The `sage generate` command of one cell against the stub at ``url``, and its env."""
    runner = ["--task-runner", "dask"] if a.processes > 1 else []
    cmd = [*sage_command(a.code), "--lm", "openai/stub", "--api-base", url, "generate",
           *runner,
           "--collection", "demo", "--seeds", str(seeds), "--concurrency", str(conc),
           "--attempt-workers", str(workers), "--attempts", "4", "--rounds", "1",
           "--steps", "2-3", "--max-searches", "4", "--generator-searches", "2",
           "--run-id", run_id, "--json"]  # fmt: skip
    if conc == "auto":
        cmd += ["--max-concurrency", str(a.max_concurrency)]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGE_")}
    env["SAGE_API_KEY"] = "stub"
    env.update(dict(kv.split("=", 1) for kv in a.env))  # e.g. SAGE_MAX_CONCURRENCY=64
    if client:
        env["SAGE_SERVED_ENGINE"] = client
    if a.code:  # measure another checkout's sage with this driver
        env["PYTHONPATH"] = str(a.code)
    return cmd, env


def run_cell(
    a: argparse.Namespace,
    latency: float,
    conc: int | str,
    workers: int,
    seeds: int | None = None,
    client: str = "",
) -> dict:
    server = LimitedStubServer(latency, a.rate_limit) if a.rate_limit else StubServer(latency)
    width = a.max_concurrency if conc == "auto" else int(conc)
    seeds = seeds or max(a.min_seeds, 2 * width)
    run_id = f"l{latency}-c{conc}-w{workers}-{int(time.time())}"
    cmd, env = _cell_command(a, server.url, run_id, conc, workers, seeds, client)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=a.workdir, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE)  # fmt: skip
    samples: list[tuple[int, float]] = []
    own: list[tuple[int, float]] = []
    sampler = threading.Thread(
        target=_sample_rss, args=(proc.pid, server, samples, own), daemon=True
    )
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - t0
    sampler.join()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)  # sage and its reaped children
    server.close()
    if proc.returncode != 0:
        raise SystemExit(f"cell failed: {err.decode()[-2000:]}")
    calls = sum(server.calls.values())
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    g = server.calls["research"] + server.calls["write"] + server.calls["revise"]
    agent = calls - g
    lanes = min(width, a.rate_limit) if a.rate_limit else width  # what the server allows
    ideal = latency * (g + agent / min(workers, 4)) / lanes if latency else None
    summary = json.loads(out)
    flow_wall = float(summary["wall_seconds"])  # the generation itself, after start-up
    fixed_s, fixed_calls = a.startup if getattr(a, "startup", None) else (0.0, 0)
    steady = (cpu_s - fixed_s) / max(1, calls - fixed_calls)
    return {
        "cpu_s": round(cpu_s, 2),
        "latency_s": latency, "processes": a.processes, "concurrency": conc,
        "attempt_workers": workers,
        "seeds": seeds, "lm_calls": calls, "wall_s": round(wall, 2),
        "lm_calls_per_s": round(calls / wall, 1),
        "cpu_ms_per_call": round(1000 * steady, 2),
        "cpu_ms_per_call_with_startup": round(1000 * cpu_s / calls, 2),
        "efficiency": round(ideal / flow_wall, 3) if ideal else None,
        "efficiency_with_startup": round(ideal / wall, 3) if ideal else None,
        "flow_wall_s": round(flow_wall, 2),
        **_memory(samples, own, calls),
        "accepted": summary["accepted"], "calls_by_kind": dict(server.calls),
        "label": a.label, "client": client or "default", "env": a.env,
        "rate_limit": a.rate_limit, "throttled": getattr(server, "throttled", 0),
        "failed_seeds": summary.get("failed_seeds"),
        "concurrency_levels": summary.get("concurrency"),
    }  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--latencies", default="0,0.5,2")
    ap.add_argument("--concurrency", default="1,8,32,128")
    ap.add_argument("--attempt-workers", default="1,4")
    ap.add_argument("--min-seeds", type=int, default=8)
    ap.add_argument("--clients", default="", help="e.g. native,dspy (SAGE_SERVED_ENGINE)")
    ap.add_argument("--rate-limit", type=int, default=0, help="stub: 429 above N at once")
    ap.add_argument("--max-concurrency", type=int, default=64, help="for --concurrency auto")
    ap.add_argument("--label", default="sage", help="names the code measured in each row")
    ap.add_argument("--processes", type=int, default=1, help=">1: --task-runner dask")
    ap.add_argument("--code", type=Path, help="another checkout to run (lever comparisons)")
    ap.add_argument("--env", nargs="*", default=[], help="KEY=VALUE for the sage process")
    ap.add_argument(
        "--out", type=Path, default=REPO / "bench" / "results" / "served_throughput.json"
    )
    a = ap.parse_args()
    a.workdir.mkdir(parents=True, exist_ok=True)
    if not (a.workdir / ".sage" / "qdrant" / "aliases" / "demo").exists():
        subprocess.run([SAGE, "index", str(REPO / "flows/data/demo/corpus.jsonl"),
                        "--collection", "demo"], cwd=a.workdir, check=True)  # fmt: skip
    rows = json.loads(a.out.read_text()) if a.out.exists() else []
    first = (a.clients or "").split(",")[0]
    ones = [run_cell(a, 0.0, 1, 1, seeds=1, client=first) for _ in range(3)]  # start-up
    a.startup = (sum(o["cpu_s"] for o in ones) / 3, sum(o["lm_calls"] for o in ones) / 3)
    print(
        json.dumps({"startup_cpu_s": [o["cpu_s"] for o in ones], "startup_lm_calls": a.startup[1]})
    )
    clients = a.clients.split(",") if a.clients else [""]
    for latency in [float(x) for x in a.latencies.split(",")]:
        for conc in [x if x == "auto" else int(x) for x in a.concurrency.split(",")]:
            for workers in [int(x) for x in a.attempt_workers.split(",")]:
                for client in clients:  # alternating: each cell with every client in turn
                    row = run_cell(a, latency, conc, workers, client=client)
                    print(json.dumps(row), flush=True)
                    rows = [r for r in rows if _key(r) != _key(row)] + [row]
                    a.out.parent.mkdir(parents=True, exist_ok=True)
                    a.out.write_text(json.dumps(rows, indent=2))


def _key(r: dict) -> tuple:
    """What a row measures: a row measured again replaces it."""
    return (r.get("label"), r.get("client", "default"), r["latency_s"], r["processes"],
            r["concurrency"], r["attempt_workers"], r.get("rate_limit"))  # fmt: skip


if __name__ == "__main__":
    main()
