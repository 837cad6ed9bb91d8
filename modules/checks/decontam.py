"""Decontamination against eval sets: a generated question is ``contaminated`` when it
shares a long normalised n-gram with an eval question, or when its MiniLM embedding is
within a cosine threshold of an eval question that has the same normalised answer.

Questions are short (HotpotQA and MuSiQue questions are 15-20 words), so the 13-grams of
LM pretraining decontamination miss most rewordings (24 % recall of copies with two words
edited, bench/results/guards.json). Shorter grams collide on templated openings: at 6
tokens "who was in charge of country" (after sage's normalisation: lower case, accents
folded, punctuation and articles dropped) flags an unrelated MuSiQue question, and such
prefixes run to 7 tokens ("who was in charge of country where"). So ``N_GRAM = 8``: one
token past the templates, and a copy with two or three words changed still keeps eight in
a row. The embedding rule (``COSINE = 0.85`` and the same normalised answer) catches most
rewordings the grams miss; the answer condition keeps unrelated questions out. An eval
question shorter than ``N_GRAM`` (but at least ``MIN_SHORT`` tokens) counts as one gram: an
item containing all of it matches. ``bench/guards_bench.py`` measures recall and false
flags of both rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from modules.checks.dedup import unit_rows
from modules.checks.eval_sets import EvalItem
from modules.textnorm import normalize

N_GRAM = 8
MIN_SHORT = 5
COSINE = 0.85


@dataclass(frozen=True)
class Match:
    """Why an item is contaminated, and by which eval item."""

    rule: str  # "ngram" or "embedding"
    file: str
    id: str
    cosine: float | None = None


def grams(tokens: Sequence[str], n: int) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1)}


class NgramIndex:
    """The n-grams of every eval question (short questions whole), to the first owner."""

    def __init__(self, evals: Sequence[EvalItem], n: int = N_GRAM):
        self.n = n
        self.owner: dict[tuple[str, ...], int] = {}
        self.short_lengths: set[int] = set()
        for k, ev in enumerate(evals):
            toks = normalize(ev.question).split()
            if len(toks) >= n:
                for g in grams(toks, n):
                    self.owner.setdefault(g, k)
            elif len(toks) >= MIN_SHORT:
                self.owner.setdefault(tuple(toks), k)
                self.short_lengths.add(len(toks))

    def match(self, question: str) -> int | None:
        """Index of an eval question sharing a gram with ``question``, or None."""
        toks = normalize(question).split()
        for n in (self.n, *sorted(self.short_lengths)):
            for g in grams(toks, n):
                if g in self.owner:
                    return self.owner[g]
        return None


def embedding_matches(
    items: np.ndarray,
    answers: Sequence[str],
    evals: np.ndarray,
    eval_answers: Sequence[Sequence[str]],
    threshold: float = COSINE,
    rows: int = 1024,
) -> dict[int, tuple[int, float]]:
    """{item index: (eval index, cosine)} for the most similar eval question with cosine >=
    ``threshold`` and the same normalised answer (tiles of ``rows`` items)."""
    if len(items) == 0 or len(evals) == 0:
        return {}
    a, e = unit_rows(items), unit_rows(evals)
    gold = [{normalize(x) for x in xs} for xs in eval_answers]
    out: dict[int, tuple[int, float]] = {}
    for r0 in range(0, len(a), rows):
        sims = a[r0 : r0 + rows] @ e.T
        for i, j in zip(*np.nonzero(sims >= threshold), strict=True):
            item, cos = r0 + int(i), float(sims[i, j])
            if normalize(answers[item]) in gold[j] and cos > out.get(item, (0, -1.0))[1]:
                out[item] = (int(j), round(cos, 4))
    return out


def contamination(
    questions: Sequence[str],
    answers: Sequence[str],
    evals: Sequence[EvalItem],
    vectors: np.ndarray | None = None,
    eval_vectors: np.ndarray | None = None,
    n: int = N_GRAM,
    threshold: float = COSINE,
) -> list[Match | None]:
    """One ``Match`` (n-gram first, then embedding) or None per question."""
    index = NgramIndex(evals, n)
    out: list[Match | None] = []
    for q in questions:
        k = index.match(q)
        out.append(Match("ngram", evals[k].file, evals[k].id) if k is not None else None)
    if vectors is not None and eval_vectors is not None:
        found = embedding_matches(
            vectors, answers, eval_vectors, [ev.answers for ev in evals], threshold
        )
        for i, (j, cos) in found.items():
            if out[i] is None:
                out[i] = Match("embedding", evals[j].file, evals[j].id, cos)
    return out
