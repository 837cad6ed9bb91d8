"""Prefect artifact keys every flow uses: readable (``sage-<run-id>-rounds``) and within
Prefect's rule for keys (lowercase letters, numbers and dashes only)."""

from __future__ import annotations

import hashlib
import re

_NOT_KEY = re.compile(r"[^a-z0-9]+")


def key_part(text: str) -> str:
    """``text`` as a key part: lower case, other characters runs of one dash. A part that
    had to change gets 6 hex digits of its hash, so two names that sanitise alike ('Run_1',
    'run-1') keep apart."""
    part = _NOT_KEY.sub("-", text.lower()).strip("-")
    if part == text and part:
        return part
    return f"{part or 'x'}-{hashlib.sha1(text.encode()).hexdigest()[:6]}"


def artifact_key(*parts: str) -> str:
    """'sage', '20261202-013649', 'rounds' -> 'sage-20261202-013649-rounds'; 'Run_A' gets a
    short hash: 'sage-run-a-1b2c3d-rounds'."""
    return "-".join(key_part(str(p)) for p in parts)
