"""Peak memory of `sage index`: one 5 MB document (800,000 words) and the shared corpus.

    .venv/bin/python bench/index_memory_bench.py [--cases doc5mb,corpus16k] \\
        [--data ../shared/data/wiki_paragraphs_16k.jsonl] [--words 800000] [--code CHECKOUT] \\
        [--kill-above-mb 4000] [--label sage] [--out bench/results/index_throughput.json]

``doc5mb`` is one JSONL record whose text is the shared Wikipedia paragraphs concatenated
until ``--words`` words (built in a temporary directory: the shared data is read, never
copied into the repository); ``corpus16k`` indexes the shared file as it is. Each case runs
the real CLI (`sage index FILE --collection C --json`) in a subprocess with a fresh data
directory and records its wall time, the peak RSS of its largest process (``ru_maxrss``)
and of the whole process tree (sampled every 0.5 s: the CLI and its Prefect API), the
passages indexed and the rate. ``--kill-above-mb`` stops a case whose tree passes that much
(an old checkout that would hold 8.8 GB for 10 minutes) and ``--time-limit`` one that runs
longer than a shared machine's turn: the row says which and when (its peak is then the
peak of the part that ran).
Rows are appended to ``memory_rows`` of the output file (a row measured again replaces it).
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.proc_tree import tree_rss_mb  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared" / "data" / "wiki_paragraphs_16k.jsonl"


def build_document(src: Path, words: int, dst: Path) -> int:
    """One record whose text is ``src``'s paragraphs concatenated up to ``words`` words."""
    parts, n = [], 0
    while n < words:
        with src.open() as fh:
            for line in fh:
                if line.strip():
                    text = json.loads(line)["text"]
                    parts.append(text)
                    n += len(text.split())
                    if n >= words:
                        break
    record = {"id": "big", "title": "Concatenated Wikipedia", "text": "\n\n".join(parts)}
    dst.write_text(json.dumps(record) + "\n")
    return n


def _watch(pid: int, limit_mb: float, out: dict, limit_s: float = 0.0) -> None:
    """Peak MB of the process tree every 0.5 s (and (seconds, MB of the CLI process) in
    ``out["samples"]``); kills it above ``limit_mb`` or after ``limit_s`` seconds (0:
    never), saying which in ``out["stopped"]``."""
    t0 = time.perf_counter()
    try:
        root = psutil.Process(pid)
        while root.is_running() and root.status() != psutil.STATUS_ZOMBIE:
            mb = tree_rss_mb(root)
            out["peak_tree_mb"] = max(out.get("peak_tree_mb", 0.0), mb)
            elapsed = time.perf_counter() - t0
            own = root.memory_info().rss / 2**20
            out.setdefault("samples", []).append((round(elapsed, 1), round(own, 1)))
            why = "memory" if limit_mb and mb > limit_mb else ""
            why = why or ("time" if limit_s and elapsed > limit_s else "")
            if why:
                out["stopped"], out["killed_at_s"] = why, round(elapsed, 1)
                for p in [*root.children(recursive=True), root]:
                    with contextlib.suppress(psutil.Error):
                        p.kill()
                return
            time.sleep(0.5)
    except psutil.Error:
        return


def run_case(
    path: Path, work: Path, code: Path, limit_mb: float, limit_s: float, extra_env: dict
) -> dict:
    """`sage index path` from ``code`` in ``work`` (``extra_env`` added to its environment);
    its memory, time and summary."""
    argv = ["sage", "index", str(path), "--collection", "mem", "--json"]
    cmd = [sys.executable, "-c",
           f"import sys; sys.argv = {argv!r}; from flows.cli.main import main; main()"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGE_")}
    env.update(PYTHONPATH=str(code), SAGE_DATA_DIR=str(work / "data"))
    for key in ("SAGE_MODELS_DIR", "SAGE_N_THREADS"):
        if key in os.environ:
            env[key] = os.environ[key]
    env.update(extra_env)
    t0 = time.perf_counter()
    with (work / "out.txt").open("wb") as out_f, (work / "err.txt").open("wb") as err_f:
        proc = subprocess.Popen(cmd, cwd=work, env=env, stdout=out_f, stderr=err_f)
        seen: dict = {}
        watcher = threading.Thread(
            target=_watch, args=(proc.pid, limit_mb, seen, limit_s), daemon=True
        )
        watcher.start()
        _, status, usage = os.wait4(proc.pid, 0)  # ru_maxrss: this child's largest process
    wall = time.perf_counter() - t0
    watcher.join()
    code_ = os.waitstatus_to_exitcode(status)
    samples = seen.get("samples", [])  # (seconds, MB of the CLI process)
    row = {"wall_s": round(wall, 1), "peak_tree_mb": round(seen.get("peak_tree_mb", 0.0), 1),
           "peak_process_mb": round(usage.ru_maxrss / 1024, 1), "returncode": code_,
           "rss_samples": samples[:: max(1, len(samples) // 200)]}  # fmt: skip
    if "killed_at_s" in seen:
        row.update(stopped=seen["stopped"], killed_at_s=seen["killed_at_s"])
        return row
    if code_ != 0:
        raise SystemExit(f"sage index failed: {(work / 'err.txt').read_text()[-2000:]}")
    text = (work / "out.txt").read_text()
    summary = json.loads(text[text.index("{") :])
    row.update(passages=summary["passages"], documents=summary["documents"],
               flow_s=summary["seconds"], passages_per_s=summary["passages_per_s"])  # fmt: skip
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", default="doc5mb,corpus16k")
    ap.add_argument("--data", type=Path, default=SHARED)
    ap.add_argument("--words", type=int, default=800_000)
    ap.add_argument("--code", type=Path, default=REPO, help="the checkout to measure")
    ap.add_argument("--kill-above-mb", type=float, default=0.0)
    ap.add_argument("--time-limit", type=float, default=0.0, help="stop a case after S s")
    ap.add_argument("--records", type=int, default=0, help="corpus16k: the first N records")
    ap.add_argument("--env", nargs="*", default=[], help="KEY=VALUE for the sage process")
    ap.add_argument("--label", default="sage")
    ap.add_argument("--out", type=Path, default=REPO / "bench/results/index_throughput.json")
    a = ap.parse_args()
    if not a.data.is_file():
        raise SystemExit(f"{a.data}: no such file (see ../shared/data/README.md)")
    result = json.loads(a.out.read_text()) if a.out.exists() else {}
    rows = result.get("memory_rows", [])
    env = dict(kv.split("=", 1) for kv in a.env)
    for case in a.cases.split(","):
        with tempfile.TemporaryDirectory(prefix="sage-indexmem-") as tmp:
            work = Path(tmp)
            path, words = a.data, None
            if case == "doc5mb":
                path = work / "one_document.jsonl"
                words = build_document(a.data, a.words, path)
            elif a.records:
                path = work / "prefix.jsonl"
                with a.data.open() as src:
                    path.write_text("".join(itertools.islice(src, a.records)))
            size_mb = round(path.stat().st_size / 2**20, 2)
            row = {"case": case, "label": a.label, "input_mb": size_mb,
                   "words": words, "date": time.strftime("%Y-%m-%d %H:%M"),
                   "records": a.records or None, "env": a.env,
                   **run_case(path, work, a.code.resolve(), a.kill_above_mb, a.time_limit, env),
                   "load_avg_after": [round(x, 2) for x in os.getloadavg()]}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows = [r for r in rows if (r["case"], r["label"]) != (case, a.label)] + [row]
        result["memory_rows"] = rows
        a.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
