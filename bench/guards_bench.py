"""The validation guards measured: decontamination recall and false flags, near-duplicate
time and memory at 20k and 200k questions, and the LM calls the solver checks add per item.

    .venv/bin/python bench/guards_bench.py --out bench/results/guards.json \
        [--data ../shared/data] [--sizes 20000,200000] [--solver-items 8]

Decontamination set, from ``qa/hotpotqa_dev_250.jsonl`` and ``qa/musique_train_100.json``
(read where they are, never copied): a seeded half of the questions is the eval set; the
items are its questions verbatim, reworded (2 or 4 word edits: a synonym swapped in, a word
dropped, at seeded positions) with the eval answer, and the other half's questions as the
unrelated ones (real multi-hop questions of the same sources: the hard negatives). Every
rule is run on n-gram lengths 6/8/10/13 and cosines 0.85/0.9/0.95 (MiniLM, as the index).

Near-duplicates: ``modules.dedup.near_duplicates`` on N unit vectors (384-d, random, with 1 %
planted noisy copies whose recall is checked), each size in a fresh process (peak RSS from
``getrusage``). Embedding questions is measured apart, on the real questions: a validation
embeds only its own questions; a published version's vectors are cached by file hash.

Solver checks: the single-passage and closed-book checks with the bundled local model on
MuSiQue items (their supporting paragraphs as the passages): LM calls per item and flags.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SYNONYMS = {
    "what": "which",
    "which": "what",
    "film": "movie",
    "movie": "film",
    "born": "brought up",
    "american": "US",
    "city": "town",
    "town": "city",
    "band": "group",
    "group": "band",
    "played": "portrayed",
    "who": "which person",
    "country": "nation",
    "largest": "biggest",
    "founded": "established",
    "company": "firm",
    "wrote": "authored",
    "song": "track",
}


def reword(question: str, edits: int, rng: random.Random) -> str:
    """``edits`` word edits: a synonym where one exists, else the word dropped."""
    words = question.rstrip("?").split()
    for _ in range(min(edits, max(1, len(words) - 3))):
        i = rng.randrange(len(words))
        syn = SYNONYMS.get(words[i].lower())
        if syn:
            words[i] = syn
        else:
            del words[i]
    return " ".join(words) + "?"


def qa_items(data: Path) -> list[dict]:
    from modules.eval_sets import load_evals

    paths = [data / "qa" / "hotpotqa_dev_250.jsonl", data / "qa" / "musique_train_100.json"]
    return [
        {"id": e.id, "file": Path(e.file).name, "question": e.question, "answers": e.answers}
        for e in load_evals(paths)
    ]


def decontam_set(items: list[dict], seed: int) -> tuple[list, list[dict]]:
    from modules.eval_sets import EvalItem

    rng = random.Random(seed)
    order = list(range(len(items)))
    rng.shuffle(order)
    half = len(order) // 2
    evals = [items[i] for i in order[:half]]
    cases = []
    for k, ev in enumerate(evals):
        kind = ("verbatim", "reworded_2", "reworded_4")[k % 3]
        q = ev["question"] if kind == "verbatim" else reword(ev["question"], int(kind[-1]), rng)
        cases.append({"kind": kind, "question": q, "answer": ev["answers"][0], "of": ev["id"]})
    for i in order[half:]:
        cases.append(
            {
                "kind": "unrelated",
                "question": items[i]["question"],
                "answer": items[i]["answers"][0],
                "of": None,
            }
        )
    eval_items = [EvalItem(e["file"], e["id"], e["question"], tuple(e["answers"])) for e in evals]
    return eval_items, cases


def rates(cases: list[dict], matches: list) -> dict:
    out = {}
    for kind in ("verbatim", "reworded_2", "reworded_4", "unrelated"):
        idx = [i for i, c in enumerate(cases) if c["kind"] == kind]
        if kind == "unrelated":
            hit = sum(matches[i] is not None for i in idx)
            out["false_flag_rate"] = round(hit / len(idx), 4)
        else:
            hit = sum(matches[i] is not None and matches[i].id == cases[i]["of"] for i in idx)
            out[f"recall_{kind}"] = round(hit / len(idx), 4)
        out[f"n_{kind}"] = len(idx)
    return out


def bench_decontam(data: Path, seed: int) -> dict:
    import numpy as np

    from modules import decontam, embeddings
    from modules.settings import load_settings

    evals, cases = decontam_set(qa_items(data), seed)
    models = load_settings().models_dir
    t0 = time.perf_counter()
    ev = np.asarray(embeddings.embed_dense(models, [e.question for e in evals]), np.float32)
    it = np.asarray(embeddings.embed_dense(models, [c["question"] for c in cases]), np.float32)
    embed_s = time.perf_counter() - t0
    qs, ans = [c["question"] for c in cases], [c["answer"] for c in cases]
    grid = []
    for n in (6, 7, 8, 10, 13):
        grid.append(
            {"rule": "ngram", "n": n} | rates(cases, decontam.contamination(qs, ans, evals, n=n))
        )
    for cos in (0.85, 0.9, 0.95):
        emb = decontam.embedding_matches(it, ans, ev, [e.answers for e in evals], cos)
        found = [
            decontam.Match("embedding", evals[emb[i][0]].file, evals[emb[i][0]].id)
            if i in emb
            else None
            for i in range(len(cases))
        ]
        grid.append({"rule": "embedding", "cosine": cos} | rates(cases, found))
    for n, cos in ((6, 0.85), (7, 0.85), (8, 0.85), (8, 0.9)):
        both = decontam.contamination(qs, ans, evals, it, ev, n=n, threshold=cos)
        grid.append({"rule": "both", "n": n, "cosine": cos} | rates(cases, both))
    default = decontam.contamination(qs, ans, evals, it, ev)
    return {
        "eval_questions": len(evals),
        "items": len(cases),
        "embed_seconds": round(embed_s, 2),
        "grid": grid,
        "default": {"n": decontam.N_GRAM, "cosine": decontam.COSINE} | rates(cases, default),
    }


def dedup_child(n: int, first: int, seed: int) -> dict:
    """One near-duplicate run in this process: items from ``first`` on are the run's (the
    rest earlier versions); time, CPU time, peak RSS and the planted copies' recall."""
    import resource

    import numpy as np

    from modules import dedup

    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, 384)).astype(np.float32)
    planted = rng.choice(np.arange(n - n // 10, n), size=n // 100, replace=False)
    src = rng.integers(0, n // 2, size=len(planted))
    vecs[planted] = vecs[src] + 0.15 * rng.normal(size=(len(planted), 384)).astype(np.float32)
    cpu0, t0 = time.process_time(), time.perf_counter()
    found = dedup.near_duplicates(vecs, 0.92, first=first)
    secs, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    hits = {d.index: d.of for d in found}
    recall = sum(hits.get(int(p)) == int(s) for p, s in zip(planted, src, strict=True))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "questions": n,
        "run_items": n - first,
        "seconds": round(secs, 1),
        "cpu_seconds": round(cpu, 1),
        "found": len(found),
        "planted": len(planted),
        "planted_recall": round(recall / len(planted), 4),
        "peak_rss_mb": round(rss),
        "load_average_1min": os.getloadavg()[0],
    }


def bench_dedup(sizes: list[int], seed: int) -> list[dict]:
    """Per size: every item new (one run of N), and a nightly run (the newest 10 % new)."""
    out = []
    for n in sizes:
        for first in (0, n - n // 10):
            cmd = [
                sys.executable,
                __file__,
                "--dedup-child",
                str(n),
                "--first",
                str(first),
                "--seed",
                str(seed),
            ]
            res = subprocess.run(cmd, capture_output=True, text=True, check=True)
            out.append(json.loads(res.stdout.strip().splitlines()[-1]))
            print(out[-1], file=sys.stderr)
    return out


def bench_embedding(data: Path, n: int = 2000) -> dict:
    from modules import embeddings
    from modules.settings import load_settings

    qs = [i["question"] for i in qa_items(data)]
    texts = [qs[i % len(qs)] + f" ({i})" for i in range(n)]
    embeddings.embed_dense(load_settings().models_dir, texts[:64])  # load the model
    t0 = time.perf_counter()
    embeddings.embed_dense(load_settings().models_dir, texts)
    per_s = n / (time.perf_counter() - t0)
    return {"questions": n, "per_second": round(per_s), "seconds_200k": round(200_000 / per_s)}


def bench_solver(data: Path, limit: int) -> dict:
    from modules.judge import Judge
    from modules.lm import LMConfig, build_lm
    from modules.settings import load_settings
    from modules.solver_checks import SolverChecks

    items = json.loads((data / "qa" / "musique_train_100.json").read_text())[:limit]
    lm = build_lm(
        LMConfig(model="local", models_dir=load_settings().models_dir, cache=False, temperature=0.0)
    )
    checks, rows = SolverChecks(lm, Judge(lm), passage_chars=2400), []
    for it in items:
        notes = [
            {"id": f"{it['id']}#{k}", "title": p["title"], "text": p["paragraph_text"]}
            for k, p in enumerate(it["paragraphs"])
            if p["is_supporting"]
        ]
        res = checks(
            {
                "question": it["question"],
                "answer": it["answer"],
                "aliases": it.get("answer_aliases") or [],
            },
            notes,
        )
        rows.append(
            {
                "id": it["id"],
                "supporting": len(notes),
                "lm_calls": res.meter["lm_calls"],
                "single_passage": res.single_passage is not None,
                "closed_book": bool(res.closed_book),
                "seconds": round(res.meter["seconds"], 1),
            }
        )
    n = len(rows)
    return {
        "model": "local (bundled 0.5B)",
        "items": n,
        "lm_calls_per_item": round(sum(r["lm_calls"] for r in rows) / n, 2),
        "max_lm_calls_per_item_bound": "supporting passages + 1, plus a judge call per "
        "answer that is not an exact match",
        "single_passage": sum(r["single_passage"] for r in rows),
        "closed_book": sum(r["closed_book"] for r in rows),
        "seconds_per_item": round(sum(r["seconds"] for r in rows) / n, 1),
        "rows": rows,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--sizes", default="20000,200000")
    ap.add_argument("--solver-items", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dedup-child", type=int)
    ap.add_argument("--first", type=int, default=0)
    a = ap.parse_args()
    if a.dedup_child:
        print(json.dumps(dedup_child(a.dedup_child, a.first, a.seed)))
        return
    if a.out is None or not (a.data / "qa").is_dir():
        ap.error("--out is required, and --data must hold qa/ (see ../shared/data/README.md)")
    result = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "decontamination": bench_decontam(a.data, a.seed),
        "question_embedding": bench_embedding(a.data),
        "near_duplicates": bench_dedup([int(x) for x in a.sizes.split(",")], a.seed),
    }
    if a.solver_items:
        result["solver_checks"] = bench_solver(a.data, a.solver_items)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "solver_checks"}, indent=1))


if __name__ == "__main__":
    main()
