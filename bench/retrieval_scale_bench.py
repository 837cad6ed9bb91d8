"""Search latency and build cost of the embedded index at 17.5k, ~100k and 1M passages.

    .venv/bin/python bench/retrieval_scale_bench.py --source /tmp/wiki/.sage/qdrant \\
        --collection wiki --sizes 17553,105318,1000000 [--local-mode-max 105318]

The source is a collection built by `sage index` on ``wiki_paragraphs_16k.jsonl`` (real
MiniLM and BM25 vectors). A size above the source's is made by copying every point with a
new id, its dense vector perturbed (Gaussian noise, renormalised) and its BM25 vector kept:
synthetic points with the real vectors' distribution. Each (backend, size) runs in its own
process (``--child``): build the collection (insert, then Edge's HNSW/optimize; local mode
has none), then time ``--queries`` HotpotQA questions per mode through the real retriever
(query embedding included), after one warm-up. Rows go to
``bench/results/retrieval_scale.json``: {backend, passages, mode, p50_ms, p95_ms, build_s,
rss_mb}. "local-mode" is qdrant-client's local mode (sage's old embedded backend).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

from modules.index import store  # noqa: E402
from modules.index.retriever import MODES, QdrantRetriever  # noqa: E402

MODELS = Path.home() / ".cache" / "sage" / "models"
DATA = REPO.parent / "shared" / "data"


def source_points(location: str, collection: str) -> list[store.StorePoint]:
    vs = store.open_store(location)
    return [p for b in vs.scroll(store.resolve(vs, collection), with_vectors=True) for p in b]


def synthetic(points: list[store.StorePoint], n: int, seed: int = 0):
    """``n`` points: the source points, then perturbed copies with new ids, in batches."""
    rng = np.random.default_rng(seed)
    base = np.asarray([p.dense for p in points], dtype=np.float32)
    made, copy = 0, 0
    while made < n:
        take = min(len(points), n - made)
        vecs = base[:take]
        if copy:
            vecs = vecs + rng.normal(0, 0.02, vecs.shape).astype(np.float32)
            vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
        batch = []
        for i in range(take):
            p = points[i]
            pid = p.id if not copy else str(uuid.uuid5(uuid.NAMESPACE_OID, f"{p.id}/{copy}"))
            payload = {**p.payload, "pid": f"{p.payload.get('pid')}/{copy}"}
            batch.append(store.StorePoint(pid, payload, vecs[i].tolist(), p.sparse))
            if len(batch) == 2048:
                yield batch
                batch = []
        if batch:
            yield batch
        made += take
        copy += 1


def open_backend(backend: str, root: Path) -> store.VectorStore:
    if backend == "edge":
        from modules.index.edge_store import EdgeStore

        return EdgeStore(root)
    from qdrant_client import QdrantClient

    from modules.index.server_store import ServerStore

    # in memory: the same brute-force engine as its path mode, without its slow persistence
    return ServerStore("local-mode", client=QdrantClient(location=":memory:"))


def child(a: argparse.Namespace) -> None:
    lines = (a.data / "qa" / "hotpotqa_dev_250.jsonl").read_text().splitlines()
    questions = [json.loads(x)["question_text"] for x in lines]
    points = source_points(a.source, a.collection)
    with tempfile.TemporaryDirectory(dir=a.workdir) as tmp:
        vs = open_backend(a.backend, Path(tmp) / "store")
        t0 = time.perf_counter()
        vs.create_version("big@1", {})
        for batch in synthetic(points, a.passages):
            vs.upsert("big@1", batch)
        inserted = time.perf_counter() - t0
        vs.mark_complete("big@1")
        vs.swap_alias("big", "big@1")
        build = time.perf_counter() - t0
        rows = []
        for mode in MODES:
            r = QdrantRetriever.__new__(QdrantRetriever)  # the real retriever on this store
            r.store, r.collection, r.models_dir = vs, "big@1", MODELS
            r.mode, r.k, r.candidates = mode, 3, 50
            r.search(questions[0])  # warm-up
            lat = []
            for q in questions[1 : a.queries + 1]:
                t = time.perf_counter()
                r.search(q, k=3)
                lat.append(1000 * (time.perf_counter() - t))
            lat.sort()
            rows.append({
                "backend": a.backend, "passages": vs.count("big@1"), "mode": mode,
                "p50_ms": round(statistics.median(lat), 2),
                "p95_ms": round(lat[min(len(lat) - 1, int(0.95 * len(lat)))], 2),
                "build_s": round(build, 1), "insert_s": round(inserted, 1),
                "rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                "queries": len(lat),
            })  # fmt: skip
        vs.close()
    print(json.dumps(rows), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", required=True, help="embedded store holding the real collection")
    ap.add_argument("--collection", default="wiki")
    ap.add_argument("--sizes", default="17553,105318,1000000")
    ap.add_argument("--backends", default="edge,local-mode")
    ap.add_argument("--local-mode-max", type=int, default=105318)
    ap.add_argument("--queries", type=int, default=100)
    ap.add_argument("--data", type=Path, default=DATA)
    ap.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()))
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "retrieval_scale.json")
    ap.add_argument("--child", action="store_true")
    ap.add_argument("--backend", default="edge")
    ap.add_argument("--passages", type=int, default=0)
    a = ap.parse_args()
    if a.child:
        return child(a)
    rows = json.loads(a.out.read_text()) if a.out.exists() else []
    for n in [int(x) for x in a.sizes.split(",")]:
        for backend in a.backends.split(","):
            if backend == "local-mode" and n > a.local_mode_max:
                continue
            cmd = [sys.executable, __file__, "--child", "--backend", backend, "--passages",
                   str(n), "--source", a.source, "--collection", a.collection,
                   "--queries", str(a.queries), "--data", str(a.data),
                   "--workdir", str(a.workdir)]  # fmt: skip
            out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
            new = json.loads(out.strip().splitlines()[-1])
            print(json.dumps(new), flush=True)
            keep = [
                r for r in rows if (r["backend"], r["passages"]) != (backend, new[0]["passages"])
            ]
            rows = keep + new
            a.out.parent.mkdir(parents=True, exist_ok=True)
            a.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
