"""The validation guards measured: decontamination recall and false flags, near-duplicate
time and memory at 20k and 200k questions, and the LM calls the solver checks add per item.

    flock /tmp/sage-cpu.lock env SAGE_N_THREADS=1 .venv/bin/python bench/guards_bench.py \
        --out bench/results/guards.json [--data ../shared/data] [--sizes 20000,200000] \
        [--only decontam,embedding,dedup,solver] [--paraphrases 60 --para-model llm15]

``--only`` re-runs some sections and keeps the others of ``--out`` (each section records
its command and date); ``--paraphrase-only`` just fills the paraphrase cache (a long LM
job split into runs that fit the CPU lock's turn).

Decontamination set, from ``qa/hotpotqa_dev_250.jsonl`` and ``qa/musique_train_100.json``
(read where they are, never copied): a seeded half of the questions is the eval set; the
items are its questions verbatim, reworded (2 or 4 word edits: a synonym swapped in, a word
dropped, at seeded positions), LM paraphrases of a seeded sample of them (the local 1.5B
model, cached in ``/tmp/sage-guards-paraphrases/``; empty, identical, answer-giving or
name-losing ones are dropped and counted), all with the eval answer; negatives are the
other half's questions with their own answers (real multi-hop questions of the same
sources) and the same questions given the answer of their nearest eval question (the
embedding rule's worst case). The paraphrases alternate between a dev and a test half, so
a threshold read off one half is checked on the other.

Near-duplicates: ``modules.checks.dedup.near_duplicates`` (exact float32 pass, and the int8
screen with exact rescoring) on N unit vectors (384-d, random, with 1 % planted noisy
copies whose recall is checked), each size in a fresh process (peak RSS from
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
    from modules.checks.eval_sets import load_evals

    paths = [data / "qa" / "hotpotqa_dev_250.jsonl", data / "qa" / "musique_train_100.json"]
    return [
        {"id": e.id, "file": Path(e.file).name, "question": e.question, "answers": e.answers}
        for e in load_evals(paths)
    ]


PARA_DIR = Path("/tmp/sage-guards-paraphrases")


def paraphrase_lm(models_dir: Path, model: str) -> tuple:
    """A local model (``llm`` 0.5B or ``llm15`` 1.5B) and a paraphrasing predictor."""
    import dspy

    from modules.llm.lm import LMConfig, build_lm

    class Paraphrase(dspy.Signature):
        """Reword the question so it asks exactly the same thing in different words and
        word order. Keep every name, title, date and number, so its answer is unchanged.
        Do not answer it."""

        question: str = dspy.InputField()
        paraphrase: str = dspy.OutputField(desc="the reworded question")

    from modules.settings import load_settings

    threads = load_settings().n_threads  # SAGE_N_THREADS (1 under the shared CPU lock)
    cfg = LMConfig(
        models_dir=models_dir, local_model=model, temperature=0.0, cache=False, n_threads=threads
    )
    return build_lm(cfg), dspy.Predict(Paraphrase)


def paraphrases(
    evals: list[dict], models_dir: Path, model: str, limit: int, generate: bool = True
) -> dict:
    """{eval id: paraphrase} for a seeded sample of ``limit`` eval questions, cached under
    ``PARA_DIR`` (outside the repo) so a re-run does not call the model again."""
    from modules.programs.adapter import json_adapter
    from modules.programs.predict import Meter, safe_predict

    cache = PARA_DIR / f"{model}.jsonl"
    done = {}
    if cache.exists():
        lines = [x for x in cache.read_text().splitlines() if x.endswith("}")]  # a cut line
        done = {r["id"]: r for r in map(json.loads, lines)}
    todo = [e for e in evals[:limit] if e["id"] not in done]
    if todo and generate:
        lm, pred = paraphrase_lm(models_dir, model)
        cache.parent.mkdir(parents=True, exist_ok=True)
        meter, adapter = Meter(), json_adapter()
        with cache.open("a") as f:
            for e in todo:
                t0 = time.perf_counter()
                out, _ = safe_predict(pred, meter, lm, adapter, {}, question=e["question"])
                rec = {
                    "id": e["id"],
                    "question": e["question"],
                    "paraphrase": str(getattr(out, "paraphrase", "") or "") if out else "",
                    "seconds": round(time.perf_counter() - t0, 1),
                }
                f.write(json.dumps(rec) + "\n")
                f.flush()
                done[e["id"]] = rec
    return {e["id"]: done[e["id"]] for e in evals[:limit] if e["id"] in done}


def names(text: str) -> set[str]:
    """Capitalised words (not the first) and numbers, normalised: what a paraphrase keeps."""
    from modules.textnorm import normalize

    words = [w.strip("?,.'\"()") for w in text.split()[1:]]
    return {normalize(w) for w in words if w[:1].isupper() or w[:1].isdigit()} - {""}


def paraphrase_check(rec: dict, answer: str) -> str | None:
    """Why a paraphrase is not a real one (None when it is): empty, the same normalised
    text, giving the answer, or losing half or more of the names and numbers."""
    from modules.textnorm import contains_answer, normalize

    p, q = rec["paraphrase"].strip(), rec["question"]
    if not p:
        return "empty"
    if normalize(p) == normalize(q):
        return "identical"
    if contains_answer(p, answer) and not contains_answer(q, answer):
        return "gives_the_answer"
    keep, have = names(q), f" {normalize(p)} "
    if keep and sum(f" {k} " in have for k in keep) < len(keep) / 2:
        return "lost_names"
    return None


def decontam_set(items: list[dict], seed: int, para: dict | None = None) -> tuple:
    """Eval items and cases: verbatim, rule-edited and (``para``: {eval id: paraphrase})
    LM-paraphrased copies, the unrelated half, and the unrelated half again with the answer
    of its nearest eval question (set later, by ``same_answer_negatives``)."""
    from modules.checks.eval_sets import EvalItem

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
    for ev in evals:
        if para and ev["id"] in para:
            q = para[ev["id"]]
            cases.append({"kind": "paraphrase_lm", "question": q, "answer": ev["answers"][0]})
            cases[-1]["of"] = ev["id"]
    for i in order[half:]:
        q, a = items[i]["question"], items[i]["answers"][0]
        cases.append({"kind": "unrelated", "question": q, "answer": a, "of": None})
    for i in order[half:]:
        q = items[i]["question"]
        cases.append({"kind": "unrelated_same_answer", "question": q, "answer": None, "of": None})
    eval_items = [EvalItem(e["file"], e["id"], e["question"], tuple(e["answers"])) for e in evals]
    return eval_items, cases


def same_answer_negatives(cases: list[dict], it, evals: list, ev) -> None:
    """Give each ``unrelated_same_answer`` case the answer of its most similar eval
    question: the embedding rule's worst case (only the cosine separates them)."""
    from modules.checks.dedup import unit_rows

    near = (unit_rows(it) @ unit_rows(ev).T).argmax(axis=1)
    for k, c in enumerate(cases):
        if c["kind"] == "unrelated_same_answer":
            c["answer"] = evals[int(near[k])].answers[0]


KINDS = ("verbatim", "reworded_2", "reworded_4", "paraphrase_lm")
NEGATIVES = ("unrelated", "unrelated_same_answer")


def rates(cases: list[dict], matches: list, split: str | None = None) -> dict:
    """Recall per copy kind (a flag naming the right eval item) and false flags per
    negative kind; ``split`` ("dev"/"test") keeps the paraphrases of that half only."""
    out = {}
    for kind in KINDS + NEGATIVES:
        idx = [i for i, c in enumerate(cases) if c["kind"] == kind]
        if split and kind == "paraphrase_lm":
            idx = [i for i in idx if cases[i].get("split") == split]
        if not idx:
            continue
        if kind in NEGATIVES:
            hit = sum(matches[i] is not None for i in idx)
            out[f"false_flag_rate_{kind}"] = round(hit / len(idx), 4)
        else:
            hit = sum(matches[i] is not None and matches[i].id == cases[i]["of"] for i in idx)
            out[f"recall_{kind}"] = round(hit / len(idx), 4)
        out[f"n_{kind}"] = len(idx)
    return out


def lm_paraphrases(evals: list[dict], models_dir: Path, model: str, limit: int) -> tuple:
    """({eval id: paraphrase} of the real ones, a report: counts, drop reasons, seconds).
    A negative ``limit`` uses the first ``-limit`` eval questions' cached ones only."""
    recs = paraphrases(evals, models_dir, model, abs(limit), limit > 0) if limit else {}
    answers = {e["id"]: e["answers"][0] for e in evals}
    why = {i: paraphrase_check(r, answers[i]) for i, r in recs.items()}
    good = {i: r["paraphrase"].strip() for i, r in recs.items() if why[i] is None}
    dropped: dict[str, int] = {}
    for reason in why.values():
        if reason:
            dropped[reason] = dropped.get(reason, 0) + 1
    report = {
        "model": model,
        "asked": len(recs),
        "kept": len(good),
        "dropped": dropped,
        "lm_seconds_total": round(sum(r.get("seconds", 0) for r in recs.values()), 1),
        "cache": str(PARA_DIR / f"{model}.jsonl"),
        "examples": [{"question": recs[i]["question"], "paraphrase": p} for i, p in good.items()][
            :5
        ],
    }
    return good, report


def rule_matches(rule: dict, qs, ans, evals, it, ev) -> list:
    from modules.checks import decontam

    if rule["rule"] == "ngram":
        return decontam.contamination(qs, ans, evals, n=rule["n"])
    if rule["rule"] == "both":
        return decontam.contamination(qs, ans, evals, it, ev, rule["n"], rule["cosine"])
    emb = decontam.embedding_matches(it, ans, ev, [e.answers for e in evals], rule["cosine"])
    return [
        decontam.Match("embedding", evals[emb[i][0]].file, evals[emb[i][0]].id)
        if i in emb
        else None
        for i in range(len(qs))
    ]


RULES = (
    [{"rule": "ngram", "n": n} for n in (6, 7, 8, 10, 13)]
    + [{"rule": "embedding", "cosine": c} for c in (0.75, 0.8, 0.85, 0.9, 0.95)]
    + [{"rule": "both", "n": 8, "cosine": c} for c in (0.75, 0.8, 0.85, 0.9)]
    + [{"rule": "both", "n": 7, "cosine": 0.85}]
)


def screen_pair_rate(vectors, threshold: float = 0.92) -> dict:
    """On real, distinct questions: the share of pairs at or above the near-duplicate
    threshold and above the int8 screen's cut (what the screen must rescore), and the
    share of 4,096-column row-tiles that share predicts at 200k questions."""
    import numpy as np

    from modules.checks.dedup import SCREEN_COLS, unit_rows
    from modules.checks.dedup_int8 import Int8Screen

    m = unit_rows(vectors)
    screen = Int8Screen(m, threshold)
    sims = (m @ m.T)[np.triu_indices(len(m), 1)]
    cut = threshold - screen.bound
    rate = float((sims >= cut).mean())
    return {
        "questions": len(m),
        "pairs": len(sims),
        "share_at_threshold": round(float((sims >= threshold).mean()), 6),
        "screen_cut_cosine": round(cut, 4),
        "share_above_cut": round(rate, 6),
        "predicted_rescored_row_tiles": round(1 - (1 - rate) ** SCREEN_COLS, 4),
    }


def bench_decontam(data: Path, seed: int, model: str, limit: int) -> dict:
    import numpy as np

    from modules.checks import decontam
    from modules.index import embeddings
    from modules.settings import load_settings

    items, models = qa_items(data), load_settings().models_dir
    evals0, _ = decontam_set(items, seed)
    pool = [next(e for e in items if e["id"] == x.id) for x in evals0]  # the seeded order
    para, para_report = lm_paraphrases(pool, models, model, limit)
    evals, cases = decontam_set(items, seed, para)
    for k, c in enumerate(c for c in cases if c["kind"] == "paraphrase_lm"):
        c["split"] = ("dev", "test")[k % 2]
    t0 = time.perf_counter()
    ev = np.asarray(embeddings.embed_dense(models, [e.question for e in evals]), np.float32)
    it = np.asarray(embeddings.embed_dense(models, [c["question"] for c in cases]), np.float32)
    embed_s = time.perf_counter() - t0
    same_answer_negatives(cases, it, evals, ev)
    qs, ans = [c["question"] for c in cases], [c["answer"] for c in cases]
    grid = []
    for rule in RULES:
        found = rule_matches(rule, qs, ans, evals, it, ev)
        row = rule | rates(cases, found)
        if para:
            row["paraphrase_dev"] = rates(cases, found, "dev").get("recall_paraphrase_lm")
            row["paraphrase_test"] = rates(cases, found, "test").get("recall_paraphrase_lm")
        grid.append(row)
    default = decontam.contamination(qs, ans, evals, it, ev)
    return {
        "eval_questions": len(evals),
        "items": len(cases),
        "embed_seconds": round(embed_s, 2),
        "real_question_pairs": screen_pair_rate(
            np.vstack([ev, it[[c["kind"] == "unrelated" for c in cases]]])
        ),
        "paraphrases": para_report,
        "grid": grid,
        "default": {"n": decontam.N_GRAM, "cosine": decontam.COSINE} | rates(cases, default),
    }


def dedup_child(n: int, first: int, seed: int, fast: bool) -> dict:
    """One near-duplicate run in this process: items from ``first`` on are the run's (the
    rest earlier versions); time, CPU time, peak RSS and the planted copies' recall."""
    import resource

    import numpy as np

    from modules.checks import dedup

    rng = np.random.default_rng(seed)
    vecs = rng.normal(size=(n, 384)).astype(np.float32)
    planted = rng.choice(np.arange(n - n // 10, n), size=n // 100, replace=False)
    src = rng.integers(0, n // 2, size=len(planted))
    vecs[planted] = vecs[src] + 0.15 * rng.normal(size=(len(planted), 384)).astype(np.float32)
    cpu0, t0 = time.process_time(), time.perf_counter()
    stats: dict = {}
    found = dedup.near_duplicates(vecs, 0.92, first=first, fast=fast, stats=stats)
    secs, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    hits = {d.index: d.of for d in found}
    recall = sum(hits.get(int(p)) == int(s) for p, s in zip(planted, src, strict=True))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "pass": "int8 screen + exact rescoring" if fast else "exact float32",
        "questions": n,
        "run_items": n - first,
        "rescored_row_tiles": f"{stats.get('rescored', 0)}/{stats.get('screened', 0)}",
        "seconds": round(secs, 1),
        "cpu_seconds": round(cpu, 1),
        "found": len(found),
        "planted": len(planted),
        "planted_recall": round(recall / len(planted), 4),
        "peak_rss_mb": round(rss),
        "load_average_1min": os.getloadavg()[0],
    }


def bench_dedup(sizes: list[int], seed: int, modes: list[str], exact_max: int) -> dict:
    """Per size and pass (the exact one up to ``exact_max`` items): every item new (one
    run of N), and a nightly run (the newest 10 % new), each in a fresh process."""
    rows = []
    for n in sizes:
        for mode in [m for m in modes if m == "fast" or n <= exact_max]:
            for first in (0, n - n // 10):
                cmd = [sys.executable, __file__, "--dedup-child", str(n), "--first", str(first)]
                cmd += ["--seed", str(seed), "--mode", mode]
                res = subprocess.run(cmd, capture_output=True, text=True, check=True)
                rows.append(json.loads(res.stdout.strip().splitlines()[-1]))
                print(rows[-1], file=sys.stderr)
    return {"threshold": 0.92, "rows": rows}


def bench_embedding(data: Path, n: int = 2000) -> dict:
    from modules.index import embeddings
    from modules.settings import load_settings

    qs = [i["question"] for i in qa_items(data)]
    texts = [qs[i % len(qs)] + f" ({i})" for i in range(n)]
    embeddings.embed_dense(load_settings().models_dir, texts[:64])  # load the model
    t0 = time.perf_counter()
    embeddings.embed_dense(load_settings().models_dir, texts)
    per_s = n / (time.perf_counter() - t0)
    return {"questions": n, "per_second": round(per_s), "seconds_200k": round(200_000 / per_s)}


def bench_solver(data: Path, limit: int) -> dict:
    from modules.checks.solver_checks import SolverChecks
    from modules.llm.lm import LMConfig, build_lm
    from modules.programs.judge import Judge
    from modules.settings import load_settings

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


def fill_paraphrases(a: argparse.Namespace) -> None:
    """Only the LM part: paraphrase (and cache) the sample, in runs that may be cut off."""
    from modules.settings import load_settings

    items = qa_items(a.data)
    evals, _ = decontam_set(items, a.seed)
    pool = [next(e for e in items if e["id"] == x.id) for x in evals]  # the seeded order
    recs = paraphrases(pool, load_settings().models_dir, a.para_model, a.paraphrases)
    print(f"{len(recs)} paraphrases cached in {PARA_DIR}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--sizes", default="20000,200000")
    ap.add_argument("--solver-items", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--para-model", default="llm15", help="local model that paraphrases")
    ap.add_argument(
        "--paraphrases",
        type=int,
        default=80,
        help="eval questions paraphrased (negative: from the cache only)",
    )
    ap.add_argument("--only", default="", help="comma list: decontam,embedding,dedup,solver")
    ap.add_argument("--dedup-child", type=int)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--mode", default="fast", help="near-duplicate pass: fast or exact")
    ap.add_argument("--modes", default="exact,fast", help="passes bench_dedup measures")
    ap.add_argument("--exact-max", type=int, default=20000, help="largest size run exactly")
    ap.add_argument("--paraphrase-only", action="store_true", help="fill the cache, then stop")
    a = ap.parse_args()
    if a.dedup_child:
        print(json.dumps(dedup_child(a.dedup_child, a.first, a.seed, a.mode == "fast")))
        return
    if a.out is None or not (a.data / "qa").is_dir():
        ap.error("--out is required, and --data must hold qa/ (see ../shared/data/README.md)")
    if a.paraphrase_only:
        fill_paraphrases(a)
        return
    parts = a.only.split(",") if a.only else ["decontam", "embedding", "dedup", "solver"]
    result = json.loads(a.out.read_text()) if a.only and a.out.exists() else {}
    command = " ".join([Path(sys.executable).name, *sys.argv])
    result |= {"date": time.strftime("%Y-%m-%d"), "machine": platform.processor() or "x86_64"}
    result |= {"cpus": os.cpu_count(), "command": command}
    sizes, modes = [int(x) for x in a.sizes.split(",")], a.modes.split(",")
    runs = {
        "decontam": (
            "decontamination",
            lambda: bench_decontam(a.data, a.seed, a.para_model, a.paraphrases),
        ),
        "embedding": ("question_embedding", lambda: bench_embedding(a.data)),
        "dedup": ("near_duplicates", lambda: bench_dedup(sizes, a.seed, modes, a.exact_max)),
        "solver": ("solver_checks", lambda: bench_solver(a.data, a.solver_items)),
    }
    for part in parts:
        key, run = runs[part]
        result[key] = run() | {"date": time.strftime("%Y-%m-%d %H:%M"), "command": command}
        a.out.parent.mkdir(parents=True, exist_ok=True)
        a.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if k != "solver_checks"}, indent=1))


if __name__ == "__main__":
    main()
