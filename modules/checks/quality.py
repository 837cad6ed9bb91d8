"""Deterministic quality checks of generated QA pairs: answer leakage, single-search
shortcuts, diversity and ambiguous attempts (near-duplicates: ``modules/checks/dedup.py``)."""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Sequence
from typing import Any

from modules.index.passages import Retriever
from modules.textnorm import contains_answer, normalize

_STOP = set("a an the of in on at to for by and or de la le von van".split())


def leakage(question: str, answer: str, fuzzy: float = 0.88) -> str | None:
    """Why the answer leaks into the question, or None.

    ``answer_in_question``: the normalised answer appears as a phrase. ``variant_in_question``:
    every content token of the answer appears in the question, exactly or as a close variant
    (difflib ratio >= ``fuzzy``, e.g. "Halvard Drenn's" or "Drennish" for "Halvard Drenn").
    """
    if contains_answer(question, answer):
        return "answer_in_question"
    a_toks = [t for t in normalize(answer).split() if t not in _STOP]
    q_toks = normalize(question).split()
    if not a_toks or not q_toks:
        return None

    def near(tok: str) -> bool:
        if tok in q_toks:
            return True
        if len(tok) < 4 or tok.isdigit():
            return False
        return any(difflib.SequenceMatcher(None, tok, q).ratio() >= fuzzy for q in q_toks)

    return "variant_in_question" if all(near(t) for t in a_toks) else None


def answer_in_text(answer: str, text: str) -> bool:
    a = normalize(answer)
    return bool(a) and f" {a} " in f" {normalize(text)} "


def shortcut_probe(retriever: Retriever, question: str, answer: str, k: int = 3) -> int | None:
    """Rank (1-based) of the first passage containing the answer when the question itself is
    the only query, or None. A hit means a single search likely suffices."""
    for rank, p in enumerate(retriever.search(question, k=k), start=1):
        if answer_in_text(answer, f"{p.title} {p.text}"):
            return rank
    return None


def diversity(seed_docs: Sequence[str], answers: Sequence[str], top: int = 5) -> dict[str, Any]:
    """Distinct seed documents and answers (as shares of items), and the most repeated."""
    n = len(answers)
    ans = Counter(normalize(a) for a in answers)
    docs = Counter(seed_docs)
    return {
        "items": n,
        "distinct_seed_docs": len(docs),
        "seed_doc_diversity": round(len(docs) / n, 3) if n else None,
        "distinct_answers": len(ans),
        "answer_diversity": round(len(ans) / n, 3) if n else None,
        "top_answers": [{"answer": a, "count": c} for a, c in ans.most_common(top) if c > 1],
        "top_seed_docs": [{"doc_id": d, "count": c} for d, c in docs.most_common(top) if c > 1],
    }


def ambiguity(attempts: Sequence[dict[str, Any]], min_agree: int = 2) -> str | None:
    """A rival answer when correct attempts exist and at least ``min_agree`` incorrect,
    unforced attempts converge on the same different answer (the question may admit two
    answers); else None."""
    if not any(a.get("correct") for a in attempts):
        return None
    rivals = Counter(
        normalize(a.get("answer"))
        for a in attempts
        if not a.get("correct") and not a.get("forced") and normalize(a.get("answer"))
    )
    if not rivals:
        return None
    answer, count = rivals.most_common(1)[0]
    return answer if count >= min_agree else None
