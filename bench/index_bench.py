"""Indexing throughput: `sage index` versus a bare fastembed + Qdrant Edge loop, same data.

Each side runs in its own subprocess (fresh store directory) so peak RSS is per side; runs
alternate (bare, sage, sage, bare, ...) to cancel drift in machine load.

    .venv/bin/python bench/index_bench.py ../shared/data/wiki_paragraphs_16k.jsonl \
        --limit 2000 --rounds 2 --out bench/results/index_throughput.json
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MODELS = Path(os.environ.get("SAGE_MODELS_DIR", Path.home() / ".cache" / "sage" / "models"))


def bare(data: Path, shard_dir: Path, batch: int = 256) -> int:
    """The baseline: read JSONL, embed dense + BM25 in batches, upsert into one Edge shard,
    flush and optimize. No validation, no chunking, no versions."""
    from fastembed import SparseTextEmbedding, TextEmbedding
    from fastembed.common.model_description import ModelSource, PoolingType
    from qdrant_edge import (
        CountRequest,
        Distance,
        EdgeConfig,
        EdgeShard,
        EdgeSparseVectorParams,
        EdgeVectorParams,
        Modifier,
        Point,
        SparseVector,  # fmt: skip
        UpdateOperation,
    )

    TextEmbedding.add_custom_model(
        "bare/minilm", PoolingType.MEAN, True, ModelSource(hf="x/y"), 384, "model.onnx"
    )
    dense = TextEmbedding("bare/minilm", specific_model_path=str(MODELS / "embedder"))
    sparse = SparseTextEmbedding("Qdrant/bm25", specific_model_path=str(MODELS / "bm25"))
    shard = EdgeShard.create(str(shard_dir), EdgeConfig(
        vectors={"dense": EdgeVectorParams(size=384, distance=Distance.Cosine)},
        sparse_vectors={"bm25": EdgeSparseVectorParams(modifier=Modifier.Idf)},
        wal_enabled=False,
    ))  # fmt: skip
    docs = [json.loads(line) for line in data.open() if line.strip()]
    for i in range(0, len(docs), batch):
        chunk = docs[i : i + batch]
        texts = [f"{d['title']}\n{d['text']}" for d in chunk]
        dv = list(dense.embed(texts, batch_size=64))
        sv = list(sparse.embed(texts))
        points = [
            Point(uuid.uuid5(uuid.NAMESPACE_URL, str(d["id"])),
                  {"dense": v.tolist(), "bm25": SparseVector(indices=s.indices.tolist(),
                                                             values=s.values.tolist())},
                  {"doc_id": str(d["id"]), "title": d["title"], "text": d["text"]})
            for d, v, s in zip(chunk, dv, sv, strict=True)
        ]  # fmt: skip
        shard.update(UpdateOperation.upsert_points(points))
    shard.flush()
    shard.optimize()
    n = shard.count(CountRequest(exact=True))
    shard.close()
    return n


def _child(cmd: list[str], env: dict[str, str]) -> dict:
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    out = proc.stdout.read() if proc.stdout else b""
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise RuntimeError(f"{cmd[:4]} failed with status {status}")
    return {"wall_s": round(wall, 2), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
            "stdout": out.decode()[-2000:]}  # fmt: skip


def run_side(side: str, data: Path, work: Path) -> dict:
    env = {**os.environ, "PYTHONPATH": str(REPO), "SAGE_DATA_DIR": str(work / "data")}
    if side == "bare":
        cmd = [sys.executable, __file__, "--child-bare", str(data), str(work / "bare_shard")]
    else:
        cmd = [sys.executable, __file__, "--child-sage", str(data)]
    res = _child(cmd, env)
    last = res.pop("stdout").strip().splitlines()
    res["summary"] = json.loads("\n".join(last[last.index("{") :])) if "{" in last else last[-1:]
    return res


def child_sage(data: Path) -> None:
    """`sage index DATA --collection bench --json`, through the real Typer app."""
    sys.argv = ["sage", "index", str(data), "--collection", "bench", "--json"]
    from flows.cli.main import main

    main()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("data", type=Path)
    ap.add_argument("extra", nargs="?")
    ap.add_argument("--limit", type=int, default=0, help="first N records only (0 = all)")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--out", type=Path)
    ap.add_argument("--child-bare", action="store_true")
    ap.add_argument("--child-sage", action="store_true")
    a = ap.parse_args()
    if a.child_bare:
        print(json.dumps({"points": bare(a.data, Path(a.extra))}))
        return
    if a.child_sage:
        child_sage(a.data)
        return
    with tempfile.TemporaryDirectory(prefix="sage-bench-") as tmp:
        data = a.data
        if a.limit:
            data = Path(tmp) / "subset.jsonl"
            with a.data.open() as src, data.open("w") as dst:
                for i, line in enumerate(src):
                    if i >= a.limit:
                        break
                    dst.write(line)
        n = sum(1 for line in data.open() if line.strip())
        runs = []
        for r in range(a.rounds):
            for side in ("bare", "sage") if r % 2 == 0 else ("sage", "bare"):
                work = Path(tmp) / f"{side}{r}"
                res = run_side(side, data, work)
                res.update(side=side, round=r, docs_per_s=round(n / res["wall_s"], 2))
                print(json.dumps(res), flush=True)
                runs.append(res)
    rate = {s: sum(x["docs_per_s"] for x in runs if x["side"] == s) / a.rounds
            for s in ("bare", "sage")}  # fmt: skip
    result = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "data": str(a.data),
        "records": n,
        "runs": runs,
        "mean_docs_per_s": rate,
        "ratio_sage_over_bare": round(rate["sage"] / rate["bare"], 3),
        "load_avg": os.getloadavg(),
    }
    print(json.dumps(result, indent=2))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
