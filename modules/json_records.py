"""One reader for files of JSON records: JSON lines, or (``json_records``) a JSON list or
JSON lines. Each record comes with where it is (``file:line``, or ``file[index]`` in a
list), and invalid JSON is one ``SageError`` naming the file and line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from modules.errors import SageError


def json_lines(path: Path) -> Iterator[tuple[str, Any, int]]:
    """(``file:line``, record, line number) of every non-blank line, streamed."""
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as exc:
                raise SageError(f"{path}:{lineno}: invalid JSON ({exc.msg})") from None
            yield f"{path}:{lineno}", rec, lineno


def _starts_a_list(path: Path) -> bool:
    with Path(path).open(encoding="utf-8") as fh:
        for line in fh:
            if line.strip():
                return line.lstrip().startswith("[")
    return False


def json_records(path: Path) -> Iterator[tuple[str, Any, int]]:
    """(where, record, position) of every record of a JSON list (``file[i]``, its index) or
    of JSON lines (``file:line``, its line number)."""
    if not _starts_a_list(path):
        yield from json_lines(path)
        return
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise SageError(f"{path}:{exc.lineno}: invalid JSON ({exc.msg})") from None
    for i, rec in enumerate(data):
        yield f"{path}[{i}]", rec, i
