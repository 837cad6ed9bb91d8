"""Where a served run's memory grows: tracemalloc snapshots of the real generate flow
(served LMs against bench/stub_server.py, real Prefect, embedded Qdrant) after seed
``--first`` and seed ``--last`` finished, diffed by traceback; the top growth sites are
printed and written to ``--out``.

    .venv/bin/python bench/memory_trace.py --workdir /tmp/servedbench --first 100 --last 400

(``--workdir`` holds the indexed demo collection, as for bench/served_bench.py.)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tracemalloc
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def owner(files: list[str]) -> str:
    """Whose code allocated what grew: the frame nearest the allocation that is in sage's
    query cache, Prefect, DSPy, sage's flows or sage's modules (the standard library and
    pydantic are looked through)."""
    buckets = (
        ("modules/index/embeddings.py", "sage query cache (bounded)"),
        ("/prefect/", "prefect"),
        ("/dspy/", "dspy"),
        ("/flows/", "sage flows"),
        ("/modules/", "sage modules"),
    )
    for name in reversed(files):
        for part, who in buckets:
            if part in name:
                return who
    return "other"


def _diff(first: tracemalloc.Snapshot, last: tracemalloc.Snapshot, calls: int) -> dict:
    """Heap growth between two snapshots by traceback: total, per LM call, by owner, top 25."""
    filters = [tracemalloc.Filter(False, tracemalloc.__file__)]
    stats = last.filter_traces(filters).compare_to(first.filter_traces(filters), "traceback")
    top = []
    for st in stats[:25]:
        frames = [f"{f.filename}:{f.lineno}" for f in st.traceback]
        top.append({"size_diff_kb": round(st.size_diff / 1024, 1),
                    "count_diff": st.count_diff, "traceback": frames})  # fmt: skip
    total = sum(st.size_diff for st in stats) / 1024
    owners: dict[str, float] = {}
    for st in stats:
        who = owner([f.filename for f in st.traceback])
        owners[who] = owners.get(who, 0.0) + st.size_diff / 1024
    return {"total_growth_kb": round(total, 1), "lm_calls_between": calls,
            "kb_per_call": round(total / max(1, calls), 2),
            "kb_by_owner": {k: round(v, 1) for k, v in sorted(owners.items())},
            "top": top}  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--first", type=int, default=100)
    ap.add_argument("--last", type=int, default=400)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--frames", type=int, default=12)
    ap.add_argument("--out", type=Path, default=Path("/tmp/memory_trace.json"))
    a = ap.parse_args()
    os.chdir(a.workdir)
    for k in [k for k in os.environ if k.startswith("SAGE_")]:
        del os.environ[k]
    os.environ["SAGE_API_KEY"] = "stub"

    import flows.generate as gen
    from bench.stub_server import StubServer
    from flows.engine.api_server import temporary_api

    server = StubServer(0.0)
    snaps: dict[int, tracemalloc.Snapshot] = {}
    done = {"n": 0}
    calls_at: dict[int, int] = {}
    original = gen.Ledger.add

    def add(self, rounds):  # count finished seeds, snapshot at the two marks
        original(self, rounds)
        done["n"] += 1
        if done["n"] in (a.first, a.last):
            import gc

            gc.collect()
            snaps[done["n"]] = tracemalloc.take_snapshot()
            calls_at[done["n"]] = sum(server.calls.values())
            print("snapshot at seed", done["n"], "calls", calls_at[done["n"]], flush=True)

    gen.Ledger.add = add
    tracemalloc.start(a.frames)
    params = gen.GenerateParams(
        collection="demo", seeds=a.last + a.concurrency, concurrency=str(a.concurrency),
        attempts=4, rounds=1, steps="2-3", max_searches=4, generator_searches=2,
        run_id=f"trace-{os.getpid()}",
    )  # fmt: skip
    with temporary_api():
        gen.generate_dataset(params, {"lm": "openai/stub", "api_base": server.url})
    calls_total = sum(server.calls.values())
    server.close()
    report = _diff(snaps[a.first], snaps[a.last], calls_at[a.last] - calls_at[a.first])
    report |= {"seeds": [a.first, a.last], "lm_calls_total": calls_total}
    a.out.write_text(json.dumps(report, indent=2))
    print(json.dumps({k: report[k] for k in ("total_growth_kb", "kb_per_call", "kb_by_owner")}))
    for t in report["top"][:12]:
        print(t["size_diff_kb"], "KB", t["count_diff"], "objs")
        for line in t["traceback"][-6:]:
            print("    ", line)


if __name__ == "__main__":
    main()
