"""Screening an answer before any LLM judge reads it: text aimed at the grader, and answers
that hedge over several candidates or run far longer than the gold, are refused outright.

One small rule, shared by the exported reward function (copied into ``reward.py``) and any
judge that needs it. It runs after the exact-match accept, so an answer equal to a gold
answer is never refused; words that occur in a gold answer are never counted against it.
"""

from __future__ import annotations

import re

from modules.textnorm import tokens

# Words a short entity, date or number answer has no reason to contain (unless the gold
# does): verdicts and words addressed to a grader or about its instructions.
GRADER_WORDS = frozenset(
    "correct incorrect true false yes wrong grader grade graded grading judge judged "
    "verdict score scored reward ignore instruction instructions prompt system assistant "
    "mark marked accept accepted approve approved evaluator evaluate evaluated evaluation "
    "rubric credit override overrule reviewer examiner".split()
)
_ALTERNATIVES = re.compile(r"\s(?:and/or|or)\s|[;|/\n]", re.IGNORECASE)
_MARKUP = set("<>{}[]`")


def _alternatives(text: str) -> int:
    return len(_ALTERNATIVES.split(text))


def screen_answer(
    answer: str | None, golds: list[str], ratio: int = 3, extra_words: int = 10
) -> str | None:
    """Why ``answer`` must not reach an LLM judge, or None when it may.

    Refused: an empty answer; more than ``ratio`` x the longest gold's words +
    ``extra_words`` words; a grader-directed word (``GRADER_WORDS``) not in any gold;
    markup characters (``<>{}[]`` and backticks) the golds lack; more alternatives ("or",
    ";", "|", "/", a new line) than a gold has, or two more commas than any gold (a list
    of candidates; one extra comma is allowed: "January 10, 1888" for "10 January 1888").
    """
    text = str(answer or "")
    words = tokens(text)
    golds = [str(g) for g in golds if g and str(g).strip()]
    if not words:
        return "empty answer"
    longest = max((len(tokens(g)) for g in golds), default=1)
    if len(words) > ratio * longest + extra_words:
        return f"too long: {len(words)} words for a {longest}-word gold answer"
    gold_words = {w for g in golds for w in tokens(g)}
    addressed = sorted(set(words) & GRADER_WORDS - gold_words)
    if addressed:
        return f"grader-directed words: {', '.join(addressed)}"
    if (set(text) & _MARKUP) - {c for g in golds for c in g}:
        return "markup characters"
    if _alternatives(text) > max((_alternatives(g) for g in golds), default=1):
        return "several candidates"
    if text.count(",") > max((g.count(",") for g in golds), default=0) + 1:
        return "a list of candidates"
    return None
