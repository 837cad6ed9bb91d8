"""SQuAD-style answer normalisation, exact match and token F1."""

from __future__ import annotations

import re
import string
import unicodedata
from collections import Counter
from decimal import Decimal

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_THOUSANDS = re.compile(r"(?<=\d),(?=\d{3}(?!\d))")
_PUNCT = str.maketrans({c: " " for c in string.punctuation + "‘’“”–—"})


def normalize(text: str | None) -> str:
    """Lower-case, strip accents, punctuation, articles and extra whitespace."""
    if not text:
        return ""
    text = unicodedata.normalize("NFKD", str(text))
    text = "".join(c for c in text if not unicodedata.combining(c)).lower()
    text = _THOUSANDS.sub("", text)  # "7,531" -> "7531" anywhere, not only alone
    text = text.translate(_PUNCT)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def tokens(text: str | None) -> list[str]:
    return normalize(text).split()


def exact_match(pred: str | None, gold: str | None) -> bool:
    p = normalize(pred)
    return bool(p) and p == normalize(gold)


def token_f1(pred: str | None, gold: str | None) -> float:
    p, g = tokens(pred), tokens(gold)
    if not p or not g:
        return 0.0
    common = sum((Counter(p) & Counter(g)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(g)
    return 2 * precision * recall / (precision + recall)


def best_match(pred: str | None, golds: list[str]) -> tuple[bool, float]:
    """(exact match with any gold, best token F1 over golds)."""
    golds = [g for g in golds if g and g.strip()]
    em = any(exact_match(pred, g) for g in golds)
    f1 = max((token_f1(pred, g) for g in golds), default=0.0)
    return em, f1


_FUNCTION_WORDS = frozenset("of on in and to for at by with is was as from or".split())


def gold_recall(response: str | None, gold: str | None) -> float:
    """Share of the gold answer's content words that appear in the response."""
    g = tokens(gold)
    g = [t for t in g if t not in _FUNCTION_WORDS] or g
    if not g:
        return 0.0
    r = set(tokens(response))
    return sum(t in r for t in g) / len(g)


def contains_answer(question: str, answer: str) -> bool:
    """Whether the normalised answer appears as a whole phrase in the question."""
    a, q = normalize(answer), normalize(question)
    return bool(a) and f" {a} " in f" {q} "


_SCALES = {"thousand": 10**3, "million": 10**6, "billion": 10**9, "trillion": 10**12}
_UNITS = "zero one two three four five six seven eight nine ten eleven twelve thirteen "
_UNITS += "fourteen fifteen sixteen seventeen eighteen nineteen twenty"
_TENS = {"thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "seventy": 70, "eighty": 80}
_WORD_NUMBERS = {w: i for i, w in enumerate(_UNITS.split())} | _TENS | {"ninety": 90}
_NUMBER = re.compile(
    r"(?<![\w.])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+))?(?!,\d{3})"
    r"(?:\s*(thousand|million|billion|trillion)\b)?"
)
_NUMBER_WORD = re.compile(r"\b(" + "|".join(_WORD_NUMBERS) + r")\b")


def numbers(text: str | None) -> set[Decimal]:
    """Every number in ``text`` as a value: "7,531", "7531" and "7531.0" are one number,
    "3 million" is 3,000,000, and the words zero..twenty, thirty..ninety count too."""
    if not text:
        return set()
    low = unicodedata.normalize("NFKC", str(text)).lower()
    out: set[Decimal] = set()
    for whole, frac, scale in _NUMBER.findall(low):
        value = Decimal(whole.replace(",", "") + (f".{frac}" if frac else ""))
        out.add((value * _SCALES.get(scale, 1)).normalize())
    out.update(Decimal(_WORD_NUMBERS[w]) for w in _NUMBER_WORD.findall(low))
    return out


_QUERY_FILLER = _FUNCTION_WORDS | frozenset(
    "what when where which who whom whose why how did does do were are be been has have had".split()
)


def _stem(word: str) -> str:
    for suffix in ("ing", "ed", "es", "s"):
        if len(word) > len(suffix) + 3 and word.endswith(suffix):
            return word[: -len(suffix)]
    return word


def query_key(text: str | None) -> frozenset[str]:
    """A search query's content: its words without question words, auxiliaries and
    prepositions, crudely stemmed. "When did the Land League form?" and "When was the Land
    League formed?" share one key: the second is the same search."""
    return frozenset(_stem(w) for w in tokens(text) if w not in _QUERY_FILLER)
