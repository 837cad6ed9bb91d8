"""Stable integers from strings: reproducible seeds and rollout ids across processes and runs
(Python's own hash() is salted per process)."""

from __future__ import annotations

import hashlib
from typing import Any


def stable_int(*parts: Any, digits: int = 8) -> int:
    """An integer from the parts' text: the same parts, the same number, everywhere."""
    text = ":".join(map(str, parts))
    return int(hashlib.sha256(text.encode()).hexdigest()[:digits], 16)
