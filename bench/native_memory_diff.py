"""What grew between two moments of a run, native allocations included (tracemalloc sees
only Python's): the allocations live at ``--to`` of a memray capture minus those live at
``--from`` (fractions of its snapshots), summed by stack, largest first.

    pip install memray   # for this measurement only; not a sage dependency
    memray run --native -q -o gen.bin .venv/bin/sage --lm openai/stub --api-base URL \\
        generate --collection demo --seeds 300 --concurrency 32 ...
    .venv/bin/python bench/native_memory_diff.py gen.bin --from 0.32 --to 0.93
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any


def _live(interval: Any, snapshot: int) -> bool:
    gone = interval.deallocated_before_snapshot
    return interval.allocated_before_snapshot <= snapshot and (gone is None or gone > snapshot)


def _frames(record: Any, depth: int) -> str:
    try:
        stack = record.hybrid_stack_trace(max_stacks=depth)
    except AssertionError:  # memray cannot merge some threads' stacks: the native one
        stack = record.native_stack_trace(max_stacks=depth)
    return " <- ".join(f"{fn}@{path.split('/')[-1]}:{line}" for fn, path, line in stack)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("capture")
    ap.add_argument("--from", dest="start", type=float, default=0.3)
    ap.add_argument("--to", dest="end", type=float, default=0.9)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--top", type=int, default=30)
    a = ap.parse_args()
    import memray

    reader = memray.FileReader(a.capture)
    snaps = list(reader.get_memory_snapshots())
    first, last = int(a.start * len(snaps)), int(a.end * len(snaps))
    rss, heap = (
        (snaps[first].rss >> 20, snaps[last].rss >> 20),
        (snaps[first].heap >> 20, snaps[last].heap >> 20),
    )
    print(f"RSS {rss[0]} -> {rss[1]} MB, tracked heap {heap[0]} -> {heap[1]} MB")
    grown: dict[str, int] = defaultdict(int)
    for rec in reader.get_temporal_allocation_records(merge_threads=True):
        delta = sum(iv.n_bytes for iv in rec.intervals if _live(iv, last)) - sum(
            iv.n_bytes for iv in rec.intervals if _live(iv, first)
        )
        if delta:
            grown[_frames(rec, a.depth)] += delta
    print(f"grew {sum(grown.values()) / 2**20:.2f} MB in all")
    for stack, delta in sorted(grown.items(), key=lambda kv: -kv[1])[: a.top]:
        print(f"{delta / 1024:10.1f} KB  {stack}")


if __name__ == "__main__":
    main()
