"""Retrieval recall@3/@10 (HotpotQA questions, MuSiQue sub-questions) and search latency.

Needs a collection built by `sage index` on wiki_paragraphs_16k.jsonl (the shared data,
found beside the checkout or with --data). Latency at larger sizes is
bench/retrieval_scale_bench.py.

    .venv/bin/python bench/retrieval_bench.py --qdrant .sage/qdrant --collection wiki \
        --out bench/results/retrieval.json [--latency-queries 60]
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from modules.index import store  # noqa: E402
from modules.index.retriever import MODES, QdrantRetriever  # noqa: E402

DATA = REPO.parent / "shared" / "data"  # the shared benchmark data beside the checkout
MODELS = Path.home() / ".cache" / "sage" / "models"


def _norm(text: str) -> str:
    return " ".join(text.split()).lower()


def gold_index(corpus: Path) -> dict[str, str]:
    """(normalised title + text) and text alone -> corpus doc id."""
    out: dict[str, str] = {}
    for line in corpus.open():
        d = json.loads(line)
        out[_norm(d["title"]) + "\x1f" + _norm(d["text"])] = str(d["id"])
        out.setdefault(_norm(d["text"]), str(d["id"]))
    return out


def _lookup(index: dict[str, str], title: str, text: str) -> str | None:
    return index.get(_norm(title) + "\x1f" + _norm(text)) or index.get(_norm(text))


def hotpot_queries(index: dict[str, str], data: Path) -> list[tuple[str, set[str]]]:
    out = []
    for line in (data / "qa" / "hotpotqa_dev_250.jsonl").open():
        q = json.loads(line)
        gold = {_lookup(index, c["title"], c["paragraph_text"]) for c in q["contexts"]
                if c["is_supporting"]}  # fmt: skip
        out.append((q["question_text"], {g for g in gold if g}))
    return out


def musique_queries(index: dict[str, str], data: Path) -> list[tuple[str, set[str]]]:
    """One query per hop: '#k' replaced by hop k's answer, 'X >> relation' -> 'X relation'."""
    out = []
    for q in json.loads((data / "qa" / "musique_train_100.json").read_text()):
        answers: list[str] = []
        for step in q["question_decomposition"]:
            text = re.sub(r"#(\d+)", lambda m, a=answers: a[int(m.group(1)) - 1], step["question"])
            text = text.replace(">>", " ").strip()
            answers.append(step["answer"])
            para = q["paragraphs"][step["paragraph_support_idx"]]
            gold = _lookup(index, para["title"], para["paragraph_text"])
            out.append((text, {gold} if gold else set()))
    return out


def recall(retriever: QdrantRetriever, queries: list[tuple[str, set[str]]]) -> dict:
    hits = {3: 0.0, 10: 0.0}
    lat = []
    usable = [(q, g) for q, g in queries if g]
    if not usable:
        return {"queries": 0, "unmapped_gold": len(queries)}
    for q, gold in usable:
        t0 = time.perf_counter()
        docs = [p.doc_id for p in retriever.search(q, k=10)]
        lat.append(time.perf_counter() - t0)
        for k in hits:
            hits[k] += len(gold & set(docs[:k])) / len(gold)
    return {"queries": len(usable), "unmapped_gold": len(queries) - len(usable),
            "recall@3": round(hits[3] / len(usable), 4),
            "recall@10": round(hits[10] / len(usable), 4), **_pct(lat)}  # fmt: skip


def _pct(lat: list[float]) -> dict:
    s = sorted(lat)
    return {"p50_ms": round(1000 * statistics.median(s), 1),
            "p95_ms": round(1000 * s[min(len(s) - 1, int(0.95 * len(s)))], 1)}  # fmt: skip


def latency(retriever: QdrantRetriever, queries: list[str]) -> dict:
    retriever.search(queries[0])  # warm-up
    lat = []
    for q in queries:
        t0 = time.perf_counter()
        retriever.search(q, k=3)
        lat.append(time.perf_counter() - t0)
    return {"queries": len(lat), **_pct(lat)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--qdrant", required=True, help="the embedded store path (or a server URL)")
    ap.add_argument("--collection", default="wiki")
    ap.add_argument("--data", type=Path, default=DATA, help="the shared benchmark data folder")
    ap.add_argument("--latency-queries", type=int, default=60)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    index = gold_index(a.data / "wiki_paragraphs_16k.jsonl")
    sets = {"hotpotqa": hotpot_queries(index, a.data),
            "musique_subq": musique_queries(index, a.data)}  # fmt: skip
    vs = store.open_store(a.qdrant)
    n = vs.count(store.resolve(vs, a.collection))
    result: dict = {"date": time.strftime("%Y-%m-%d %H:%M"), "passages": n, "recall": {}}
    for mode in MODES:
        r = QdrantRetriever(a.qdrant, a.collection, MODELS, mode=mode)  # type: ignore[arg-type]
        result["recall"][mode] = {name: recall(r, qs) for name, qs in sets.items()}
        print(mode, json.dumps(result["recall"][mode]), flush=True)
    lat_q = [q for q, _ in sets["hotpotqa"][: a.latency_queries]]
    result["latency_16k"] = {
        m: latency(QdrantRetriever(a.qdrant, a.collection, MODELS, mode=m), lat_q) for m in MODES
    }
    print("latency_16k", json.dumps(result["latency_16k"]), flush=True)
    print(json.dumps(result, indent=2))
    if a.out:
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
