"""What of the retrieved text a prompt shows: passages whole or clipped, older ones shrunk
first when the whole would not fit, and a count of the characters shown and cut."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SHRINK_STEPS = (160, 60, 0)  # characters an older passage keeps, in turn, when text must fit


def flat(text: Any) -> str:
    """Text on one line with single spaces (how every passage is shown and counted)."""
    return " ".join(str(text).split())


def clip(text: Any, n: int | None) -> str:
    """``flat(text)``, cut to ``n`` characters with an ellipsis (``None``: whole)."""
    text = flat(text)
    if n is None or len(text) <= n:
        return text
    return text[: max(0, n - 1)].rstrip() + "…"


def full_length(p: dict[str, Any]) -> int:
    """A stored passage's full length (its ``chars``; older records: the stored text)."""
    return int(p.get("chars") or len(flat(p.get("text", ""))))


@dataclass
class Shown:
    """A rendered prompt part and how much retrieved text it showed and cut."""

    text: str
    shown: int = 0
    cut: int = 0


def fit_items(
    render: Callable[[list[int | None]], Shown],
    n: int,
    first: int | None,
    max_chars: int | None,
) -> Shown:
    """``render(limits)`` with each of ``n`` items at most ``first`` characters; when the
    text passes ``max_chars``, the oldest items shrink first (to each of ``SHRINK_STEPS`` in
    turn; the newest keeps its text), and a text still too long is clipped to the budget."""
    limits: list[int | None] = [first] * n
    out = render(limits)
    if max_chars is None or len(out.text) <= max_chars:
        return out
    for step in SHRINK_STEPS:
        for i in range(n - 1):
            if limits[i] is None or limits[i] > step:  # type: ignore[operator]
                limits[i] = step
                out = render(limits)
                if len(out.text) <= max_chars:
                    return out
    excess = min(out.shown, len(out.text) - max_chars)
    return Shown(clip(out.text, max_chars), out.shown - excess, out.cut + excess)
