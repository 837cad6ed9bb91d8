"""The judge's false-accept and false-reject rates on cases built from MuSiQue.

    .venv/bin/python bench/judge_bench.py [--data ../shared/data] [--limit 100] [--no-llm-only]

Cases per question of ``qa/musique_train_100.json`` (gold = the answer):
- positive ``alias``: each answer alias as the response, the judge given no aliases (it must
  see that the names are the same);
- positive ``sentence``: "The answer is <gold>." with the aliases;
- negative ``bridge``: the first hop's answer (the bridge entity: the classic agent error);
- negative ``other``: another question's gold sharing a content word with this gold (or,
  failing that, with this question).
Every case goes through `sage judge` twice, with ``--no-llm`` and with the configured judge
model (the local one by default); results go to ``bench/results/judge.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from modules.textnorm import normalize, tokens  # noqa: E402

SAGE = str(Path(sys.executable).parent / "sage")
STOP = set("of the a an and in on at to for by with is was as from or de la le".split())


def content(text: str) -> set[str]:
    return {t for t in tokens(text) if t not in STOP and len(t) > 2}


def build_cases(items: list[dict]) -> list[dict]:
    cases = []
    golds = [(i, it["answer"]) for i, it in enumerate(items)]
    for i, it in enumerate(items):
        q, gold, aliases = it["question"], it["answer"], list(it.get("answer_aliases") or [])
        same = {normalize(gold), *(normalize(a) for a in aliases)}
        for alias in aliases:
            if normalize(alias) != normalize(gold):
                cases.append({"kind": "alias", "expect": True, "qid": it["id"], "question": q,
                              "gold": gold, "aliases": [], "response": alias})  # fmt: skip
        cases.append({"kind": "sentence", "expect": True, "qid": it["id"], "question": q,
                      "gold": gold, "aliases": aliases,
                      "response": f"The answer is {gold}."})  # fmt: skip
        bridge = (it.get("question_decomposition") or [{}])[0].get("answer")
        if bridge and normalize(bridge) not in same:
            cases.append({"kind": "bridge", "expect": False, "qid": it["id"], "question": q,
                          "gold": gold, "aliases": aliases, "response": bridge})  # fmt: skip
        words = content(gold)
        other = next((g for j, g in golds if j != i and content(g) & words
                      and normalize(g) not in same), None)  # fmt: skip
        other = other or next((g for j, g in golds if j != i and content(g) & content(q)
                               and normalize(g) not in same), None)  # fmt: skip
        if other:
            cases.append({"kind": "other", "expect": False, "qid": it["id"], "question": q,
                          "gold": gold, "aliases": aliases, "response": other})  # fmt: skip
    return cases


def rates(cases: list[dict], verdicts: list[dict]) -> dict:
    out: dict = {}
    for kind in ("alias", "sentence", "bridge", "other"):
        pairs = [(c, v) for c, v in zip(cases, verdicts, strict=True) if c["kind"] == kind]
        wrong = [p for p in pairs if p[1]["correct"] != p[0]["expect"]]
        out[kind] = {"cases": len(pairs), "wrong": len(wrong)}
    pos = [(c, v) for c, v in zip(cases, verdicts, strict=True) if c["expect"]]
    neg = [(c, v) for c, v in zip(cases, verdicts, strict=True) if not c["expect"]]
    fa = sum(v["correct"] for _, v in neg)
    fr = sum(not v["correct"] for _, v in pos)
    out["false_accepts"] = {"n": fa, "of": len(neg), "rate": round(fa / len(neg), 4)}
    out["false_rejects"] = {"n": fr, "of": len(pos), "rate": round(fr / len(pos), 4)}
    methods: dict[str, int] = {}
    for v in verdicts:
        methods[v["method"]] = methods.get(v["method"], 0) + 1
    out["by_method"] = methods
    out["examples_wrong"] = [
        {"kind": c["kind"], "gold": c["gold"], "response": c["response"], **v}
        for c, v in zip(cases, verdicts, strict=True)
        if v["correct"] != c["expect"] and v["method"] != "undecided"
    ][:12]
    return out


def run_judge(path: Path, out: Path, no_llm: bool, concurrency: int) -> tuple[list[dict], float]:
    cmd = [SAGE, "judge", str(path), "--out", str(out), "--concurrency", str(concurrency)]
    t0 = time.perf_counter()
    subprocess.run(cmd + (["--no-llm"] if no_llm else []), check=True, capture_output=True)
    secs = time.perf_counter() - t0
    return [json.loads(x) for x in out.read_text().splitlines()], secs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    ap.add_argument("--limit", type=int, default=100)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/judgebench"))
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--no-llm-only", action="store_true")
    ap.add_argument("--out", type=Path, default=REPO / "bench" / "results" / "judge.json")
    a = ap.parse_args()
    src = a.data / "qa" / "musique_train_100.json"
    if not src.exists():
        raise SystemExit(f"{src} is missing (pass --data DIR)")
    items = json.loads(src.read_text())[: a.limit]
    cases = build_cases(items)
    a.workdir.mkdir(parents=True, exist_ok=True)
    path = a.workdir / "cases.jsonl"
    path.write_text("".join(json.dumps({k: c[k] for k in ("question", "gold", "aliases",
                                       "response")}) + "\n" for c in cases))  # fmt: skip
    result = {"date": time.strftime("%Y-%m-%d"), "questions": len(items), "cases": len(cases),
              "command": "python bench/judge_bench.py " + " ".join(sys.argv[1:])}  # fmt: skip
    verdicts, secs = run_judge(path, a.workdir / "no_llm.jsonl", True, 1)
    result["model_free"] = rates(cases, verdicts) | {"seconds": round(secs, 1)}
    print(json.dumps(result["model_free"], indent=1), flush=True)
    if not a.no_llm_only:
        verdicts, secs = run_judge(path, a.workdir / "llm.jsonl", False, a.concurrency)
        result["with_llm"] = rates(cases, verdicts) | {"seconds": round(secs, 1)}
        print(json.dumps(result["with_llm"], indent=1), flush=True)
    a.out.parent.mkdir(parents=True, exist_ok=True)
    a.out.write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
