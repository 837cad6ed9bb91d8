"""The regular expression a constrained retry's question must match: it names the seed's
subject and no other name. llama.cpp turns the pattern into a grammar (its converter has
no look-ahead and no ``(?:``), so words to avoid are left out by a trie of the words a
lower-case word may not be."""

from __future__ import annotations

import re
import string
from collections.abc import Iterable

# escapes only the regex metacharacters (re.escape also escapes spaces and quotes, which
# the llama.cpp pattern converter does not need; that variant was not tried against it)
_SPECIAL = re.compile(r"([\\.^$|?*+()\[\]{}-])")
# a question's first word: question words and the prepositions that open one
OPENERS = (
    "In",
    "On",
    "At",
    "By",
    "For",
    "From",
    "To",
    "What",
    "Which",
    "When",
    "Who",
    "Whom",
    "Whose",
    "Where",
    "How",
)
MAX_BEFORE, MAX_AFTER = 5, 6  # lower-case words before and after the name


def _trie(words: Iterable[str]) -> dict:
    root: dict = {}
    for w in words:
        node = root
        for ch in w:
            node = node.setdefault(ch, {})
        node[""] = {}  # the end of a word to avoid
    return root


def _other_than(node: dict, depth: int) -> str:
    """Lower-case words that go through ``node`` and are none of the trie's words."""
    letters = [ch for ch in node if ch]
    rest = "".join(c for c in string.ascii_lowercase if c not in letters)
    alts = [f"[{rest}][a-z]*"] if rest else []
    alts += [ch + _other_than(node[ch], depth + 1) for ch in sorted(letters)]
    group = "(" + "|".join(alts) + ")"
    return group + "?" if depth and "" not in node else group


def word(avoid: Iterable[str] = ()) -> str:
    """A lower-case word, none of ``avoid`` (words of other letters cannot be written)."""
    banned = {w for w in avoid if w and set(w) <= set(string.ascii_lowercase)}
    return _other_than(_trie(sorted(banned)), 0) if banned else "[a-z]+"


def question_pattern(name: str, avoid: Iterable[str] = ()) -> str:
    """A question that names ``name``: none, or an opener and up to five lower-case words
    before it ("In what year was the", "What is the population of"), so no other name
    ("the Treaty of Vaunt, ", "Treatyof ") and no other subject ("the first professional
    football club based") comes first; up to six after it (", opened in the year"); no
    lower-case word of ``avoid`` on either side ("the treaty of vaunt", written in lower
    case)."""
    w = word(avoid)
    before = f"(({'|'.join(OPENERS)})( {w}){{0,{MAX_BEFORE}}} )?"
    after = f"('s)?(,? {w}){{0,{MAX_AFTER}}}"
    return "^" + before + _SPECIAL.sub(r"\\\1", name) + after + r"\?$"
