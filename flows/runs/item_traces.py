"""What a run's ``traces.jsonl`` holds about its exported items: the round each item was
accepted in (its attempts and their traces) and the aliases of its gold answer."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import polars as pl

from modules.programs.screening import screen_answer
from modules.textnorm import normalize

TRACES = "traces.jsonl"
# finalise writes each line as {"seed_id": ..., "round": ..., ...}: read the key first
_KEY = re.compile(rb'^\{"seed_id": ("(?:[^"\\]|\\.)*"), "round": (\d+)')


def seed_of(item_id: str, run_id: str) -> str:
    """The seed id in an item id ``<run_id>:<seed_id>``."""
    prefix = f"{run_id}:"
    return item_id[len(prefix) :] if item_id.startswith(prefix) else item_id.rsplit(":", 1)[-1]


def _line_key(raw: bytes) -> tuple[str, int] | None:
    m = _KEY.match(raw)
    if m is None:
        rec = json.loads(raw)
        return str(rec.get("seed_id")), int(rec.get("round", -1))
    return json.loads(m.group(1)), int(m.group(2))


def accepted_rounds(run_dir: Path, run_id: str, items: pl.DataFrame) -> dict[str, dict]:
    """Item id -> the traces.jsonl record of the round it was accepted in (first line of a
    round wins, as everywhere). Streams the file, parsing only the lines it needs."""
    path = Path(run_dir) / TRACES
    if not path.exists() or items.is_empty():
        return {}
    wanted = {
        (seed_of(r["id"], run_id), int(r["round_accepted"])): r["id"]
        for r in items.select("id", "round_accepted").iter_rows(named=True)
        if r["round_accepted"] is not None
    }
    out: dict[str, dict] = {}
    with path.open("rb") as fh:
        for raw in fh:
            if not raw.strip():
                continue
            item_id = wanted.get(_line_key(raw))
            if item_id is not None and item_id not in out:
                out[item_id] = json.loads(raw)
    return out


def judge_accepted(record: dict[str, Any] | None) -> list[str]:
    """Answers the LLM judge accepted in the round (correct, unforced attempts; the judge's
    extracted answer, else the attempt's)."""
    out = []
    for a in (record or {}).get("attempts") or []:
        j = a.get("judgement") or {}
        if a.get("correct") and not a.get("forced") and j.get("method") == "llm":
            out.append(str(j.get("extracted") or a.get("answer") or ""))
    return out


def item_aliases(item: dict[str, Any], record: dict[str, Any] | None) -> list[str]:
    """The gold answer's aliases: the item's own, the generator's (``candidate.aliases``)
    and the answers the judge accepted that pass ``screen_answer`` against the gold; one
    per normalised form, never the gold itself."""
    gold = str(item["answer"])
    given = [
        *(item.get("aliases") or []),
        *(((record or {}).get("candidate") or {}).get("aliases") or []),
    ]
    accepted = [a for a in judge_accepted(record) if screen_answer(a, [gold]) is None]
    seen, out = {normalize(gold)}, []
    for alias in [*given, *accepted]:
        key = normalize(alias)
        if key and key not in seen:
            seen.add(key)
            out.append(str(alias).strip())
    return out


def with_aliases(df: pl.DataFrame, records: dict[str, dict]) -> pl.DataFrame:
    """The items with an ``aliases`` column (see ``item_aliases``)."""
    aliases = [item_aliases(r, records.get(r["id"])) for r in df.iter_rows(named=True)]
    return df.with_columns(pl.Series("aliases", aliases, dtype=pl.List(pl.String())))
