"""The regular expression a constrained retry's question must match: it names the seed's
subject, and its other words come from a closed vocabulary (question and function words,
and the words the seed document writes in lower case), so it can name nothing else: not
in capitals, not in lower case ("the treaty of vaunt"), not glued together ("treatyof",
"vauntsigned"). llama.cpp turns the pattern into a grammar."""

from __future__ import annotations

import re
from collections.abc import Iterable

# escapes only the regex metacharacters (re.escape also escapes spaces, quotes and "-",
# which the llama.cpp pattern converter does not need; older converters refused "\-")
_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}])")  # "-" is literal outside [...]
# a question's first word: question words and the prepositions that open one
OPENERS = "In On At By For From To What Which When Who Whom Whose Where How".split()
# the words any question may use besides the seed's own
FUNCTION_WORDS = frozenset(
    """what which when who whom whose where how many much long old the a an of in on at by
    for from to with as and or its it this that is was are were be been did does do has
    have had year years date day month number first last name named called city town
    country region people population capital opened founded built established completed
    began ended held born died located made written become became""".split()
)
MAX_BEFORE, MAX_AFTER = 5, 6  # words before and after the name
_LOWER_WORD = re.compile(r"(?<![\w'-])[a-z]+(?![\w'-])")  # not "s" of "1840s", "caf" of "café"
_WORD = re.compile(r"[a-z]+")


def question_words(seed_text: str, avoid: Iterable[str] = ()) -> tuple[str, ...]:
    """The vocabulary of a constrained retry's question: the function words and the words
    the seed document writes in lower case (not its names), none of ``avoid``."""
    own = set(_LOWER_WORD.findall(seed_text))
    return tuple(sorted((FUNCTION_WORDS | own) - set(avoid)))


def question_pattern(name: str, words: Iterable[str] = FUNCTION_WORDS) -> str:
    """A question that names ``name``: none, or an opener and up to five of ``words``
    before it ("In what year was the", "What is the population of"), so no other name
    ("the Treaty of Vaunt, ", "Treatyof ") and no other subject comes first; up to six after
    it (", opened in the year"), ending in "?". Words are lower-case letters only (no
    digits: a year in the question would come from the notes, not the seed's subject); an
    empty ``words`` means the function words."""
    vocabulary = set(words) or FUNCTION_WORDS
    if not all(_WORD.fullmatch(x) for x in vocabulary):
        raise ValueError(f"question words must be lower-case letters: {sorted(vocabulary)[:5]}")
    w = "(" + "|".join(sorted(vocabulary)) + ")"
    before = f"(({'|'.join(OPENERS)})( {w}){{0,{MAX_BEFORE}}} )?"
    after = f"('s)?(,? {w}){{0,{MAX_AFTER}}}"
    return "^" + before + _SPECIAL.sub(r"\\\1", name) + after + r"\?$"
