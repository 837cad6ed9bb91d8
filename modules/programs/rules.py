"""The model-free rules a written question/answer pair must follow (generator and reviser,
every model): a broken rule is fed back to the writer as the reason, once."""

from __future__ import annotations

import re
from typing import Any

from modules.programs.signatures import ANSWER_TYPES
from modules.textnorm import contains_answer, normalize, numbers

MAX_QUESTION_WORDS = 60
MAX_ANSWER_WORDS = 10
# "how"/"why" questions ask for a method or a cause; "how many/much/old ..." ask for a number
_HOW_WHY = re.compile(
    r"^\s*(why\b|how\b(?!\s+(many|much|long|old|far|tall|high|large|big|deep|wide|often)\b))",
    re.I,
)
_NOTE_REF = re.compile(r"\bP\d+\b")
_STANDALONE = re.compile(r"\b(the|this) (document|passage|text|article)\b", re.I)
# Text sage itself writes into prompts (feedback, trace renderings, placeholders, field
# names): an answer that repeats it was copied from the prompt, not found in a passage.
_PROMPT_TEXT = re.compile(
    r"\((correct|wrong), \d+ searches?\)|\bsearches?\)|final answer:|too easy:|incorrect:"
    r"|shown above|no searches yet|none yet|no attempt|broke a rule|search \d+:",
    re.I,
)
_PLACEHOLDERS = frozenset(
    {
        "none",
        "null",
        "n a",
        "unknown",
        "not found",
        "no answer",
        "answer",
        "question",
        "plan",
        "reasoning",
        "notes",
        "document",
        "feedback",
        "analysis",
        "text",
        "query",
        "true",
        "false",
        *ANSWER_TYPES,
    }
)
_MONTHS = (
    "january february march april may june july august september october november "
    "december jan feb mar apr jun jul aug sep sept oct nov dec"
).split()
_NUMBER_WORDS = set(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty thirty forty fifty sixty seventy "
    "eighty ninety hundred thousand million billion first second third fourth fifth sixth "
    "seventh eighth ninth tenth dozen".split()
)
_MEASURE = re.compile(
    r"^\s*(about |around |some |over |up to )?[\d.,]+\s*(%|percent|per cent|km|kilomet|"
    r"metre|meter|mile|feet|foot|ft|kg|kilogram|tonne|ton|litre|liter|hectare|acre|"
    r"square|years?|months?|days?|hours?|people|inhabitants|residents)",
    re.I,
)
_VERB = re.compile(r"\b(is|was|are|were|has|had|have|will|would|can|could)\b", re.I)
# where an answer lists parts ("1798, Vaunt Harbour"); "7,531" and "3 May 1798" are one part
_PARTS = re.compile(r",\s+|;\s*|\s+and\s+|\s*/\s*")
# words that carry no subject: a seed title's "The", "of" (see ``asks_past_seed``)
_LINK_WORDS = frozenset("a an the of in on at and for to de von van".split())


def _has_date(norm: str) -> bool:
    words = norm.split()
    return bool(
        re.search(r"\b\d{1,4}(s|st|nd|rd|th)?\b", norm)
        or set(words) & set(_MONTHS)
        or re.search(r"\b(century|decade|bc|ad|bce|ce)\b", norm)
    )


def type_violation(answer: str, answer_type: str) -> str | None:
    """Why an answer does not fit its type (a number holds a number, a date a day, month
    or year, an entity is a name: not a sentence or a measurement phrase), or None."""
    norm = normalize(answer)
    words = norm.split()
    if answer_type == "number" and not (numbers(answer) or _NUMBER_WORDS & set(words)):
        return "a number answer must contain a number"
    if answer_type == "date":
        if not _has_date(norm):
            return "a date answer must contain a day, month or year"
        if not all(_has_date(normalize(part)) for part in _PARTS.split(answer) if part.strip()):
            return "a date answer must be the date alone, not a date and a name"
    if answer_type == "entity":
        if _MEASURE.match(answer):
            return "an entity answer must be a name, not a measurement"
        if len(words) > 3 and (_VERB.search(answer) or answer.rstrip().endswith(".")):
            return "an entity answer must be a name, not a sentence"
    return None


def _subject_words(title: str) -> set[str]:
    return {w for w in normalize(title).split() if w not in _LINK_WORDS}


def names_subject(question: str, title: str) -> bool:
    """Whether a question names a subject: at least half of its title's words."""
    words = _subject_words(title)
    return not words or len(words & set(normalize(question).split())) * 2 >= len(words)


def _holders(answer: str, notes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The searched notes that give an answer the seed note (P1) does not."""
    if not notes or contains_answer(notes[0]["text"], answer):
        return []
    return [n for n in notes[1:] if contains_answer(n["text"], answer)]


def holder_words(answer: str, notes: list[dict[str, Any]]) -> tuple[str, ...]:
    """The title words of the notes that give the answer and not of the seed's: what a
    bridge question must leave for the search to find."""
    seed = _subject_words(notes[0]["title"]) if notes else set()
    words = {w for n in _holders(answer, notes) for w in _subject_words(n["title"])}
    return tuple(sorted(words - seed))


def asks_past_seed(question: str, answer: str, notes: list[dict[str, Any]]) -> str | None:
    """Why a question skips its seed (the small profile's bridge rule), or None. When the
    answer is not in the seed document (P1) but in a note found by search, the question
    must ask about the seed's subject (name at least half of its title's words) and must
    not name that note's subject (all of its title's words): else one search of the named
    subject answers it, and the seed's link is never followed."""
    holders = _holders(answer, notes)
    if not holders:
        return None
    asked = set(normalize(question).split())
    seed = _subject_words(notes[0]["title"])
    for note in holders:
        words = _subject_words(note["title"])
        if words and words <= asked and not words <= seed:
            return (
                f"the question names {note['title']}, whose passage gives the answer: ask "
                f"about {notes[0]['title']} and leave {note['title']} for the search to find"
            )
    if not names_subject(question, notes[0]["title"]):
        return (
            f"the answer comes from another passage, so the question must ask about the "
            f"seed's subject, {notes[0]['title']}"
        )
    return None


def copied_from_prompt(answer: str) -> str | None:
    """Why an answer repeats text sage wrote into the prompt, or None."""
    if _PROMPT_TEXT.search(answer) or normalize(answer) in _PLACEHOLDERS:
        return "the answer must be a fact from the passages, not text from these instructions"
    if _NOTE_REF.search(answer):
        return "the answer must be the fact itself, not a note reference like P2"
    return None


def check_candidate(question: str, answer: str, answer_type: str | None = None) -> str | None:
    """Why a pair breaks the rules, or None."""
    if not question.strip() or not answer.strip():
        return "empty question or answer"
    if not question.rstrip().endswith("?"):
        return "the question must be a question ending with '?', not a statement"
    if len(question.split()) > MAX_QUESTION_WORDS:
        return f"the question must be at most {MAX_QUESTION_WORDS} words"
    if _HOW_WHY.match(question):
        return "how/why questions are not allowed"
    if len(answer.split()) > MAX_ANSWER_WORDS:
        return "the answer must be short (an entity, date or number)"
    if contains_answer(question, answer):
        return "the question contains its answer"
    if why := copied_from_prompt(answer):
        return why
    words = normalize(answer).split()
    half = len(words) // 2
    if half and len(words) % 2 == 0 and words[:half] == words[half:]:
        return "the answer repeats itself; give the entity once"
    if _STANDALONE.search(question):
        return "the question must stand alone (no 'the document/passage')"
    if answer_type and (why := type_violation(answer, answer_type)):
        return why
    return None
