"""Where a served run's CPU goes: cProfile in every thread of the real generate flow
(served LMs against bench/stub_server.py at latency 0, real Prefect, embedded Qdrant),
merged, the top functions by own CPU time (each thread's ``time.thread_time``: waiting for
the GIL, a lock or a socket is not counted) and by cumulative CPU time written to
``--out`` (a pstats file beside it: ``--out`` with ``.pstats``).

    .venv/bin/python bench/cpu_profile.py --workdir /tmp/servedbench --seeds 100

(``--workdir`` holds the indexed demo collection, as for bench/served_bench.py. cProfile
roughly doubles the cost of small Python calls, so read the shares, not the milliseconds.)
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import sys
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _profile_threads(profiles: list[cProfile.Profile]) -> None:
    """Every thread started from now on runs under its own profiler."""

    def start(*_args: object) -> None:
        sys.setprofile(None)
        p = cProfile.Profile(time.thread_time)  # CPU, not the waits
        profiles.append(p)
        p.enable()

    threading.setprofile(start)


def _top(stats: pstats.Stats, key: str, n: int) -> list[dict]:
    """The ``n`` functions with the largest ``key`` ('tottime' or 'cumtime')."""
    rows = []
    for (file, line, fn), (_cc, nc, tt, ct, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        rows.append({"function": f"{file}:{line}({fn})", "calls": nc,
                     "tottime_s": round(tt, 3), "cumtime_s": round(ct, 3)})  # fmt: skip
    rows.sort(key=lambda r: r[f"{key}_s"], reverse=True)
    return rows[:n]


def _args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--top", type=int, default=60)
    ap.add_argument(
        "--no-profile",
        action="store_true",
        help="only the process's CPU per LM call (the stub's threads included), unprofiled",
    )
    ap.add_argument("--out", type=Path, default=Path("/tmp/cpu_profile.json"))
    return ap.parse_args()


def _run(gen: Any, params: Any, overrides: dict, profiles: list | None) -> tuple[float, float]:
    """The generate flow (under a profiler per thread when ``profiles`` is a list): its
    process CPU and wall seconds."""
    from flows.engine.api_server import temporary_api

    with temporary_api():
        main_p = None
        if profiles is not None:
            _profile_threads(profiles)
            main_p = cProfile.Profile(time.thread_time)
            profiles.append(main_p)
        t0, c0 = time.process_time(), time.perf_counter()
        if main_p:
            main_p.enable()
        gen.generate_dataset(params, overrides)
        if main_p:
            main_p.disable()
            threading.setprofile(None)  # type: ignore[arg-type]
        return time.process_time() - t0, time.perf_counter() - c0


def main() -> None:
    a = _args()
    os.chdir(a.workdir)
    for k in [k for k in os.environ if k.startswith("SAGE_")]:
        del os.environ[k]
    os.environ["SAGE_API_KEY"] = "stub"

    import flows.generate as gen
    from bench.stub_server import StubServer

    server = StubServer(0.0)
    params = gen.GenerateParams(
        collection="demo", seeds=a.seeds, concurrency=str(a.concurrency),
        attempts=4, rounds=1, steps="2-3", max_searches=4, generator_searches=2,
        run_id=f"profile-{os.getpid()}",
    )  # fmt: skip
    profiles: list[cProfile.Profile] | None = None if a.no_profile else []
    cpu, wall = _run(gen, params, {"lm": "openai/stub", "api_base": server.url}, profiles)
    calls = sum(server.calls.values())
    server.close()
    report: dict[str, Any] = {"seeds": a.seeds, "lm_calls": calls, "cpu_s": round(cpu, 2),
                              "wall_s": round(wall, 2),
                              "cpu_ms_per_call": round(1000 * cpu / calls, 2),
                              "profiled": profiles is not None, "code": str(REPO)}  # fmt: skip
    if profiles is not None:
        for p in profiles:
            p.create_stats()
        stats = pstats.Stats(*profiles)
        stats.dump_stats(str(a.out.with_suffix(".pstats")))
        report.update(threads=len(profiles), by_tottime=_top(stats, "tottime", a.top),
                      by_cumtime=_top(stats, "cumtime", a.top))  # fmt: skip
        a.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: v for k, v in report.items() if not k.startswith("by_")}))


if __name__ == "__main__":
    main()
