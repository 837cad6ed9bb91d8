"""Loaders for QA sets to evaluate on: a sage run's dataset, HotpotQA (IRCoT) and MuSiQue.

Every item becomes a ``QAItem`` with gold answers (first = canonical, rest aliases) and a
``group`` used for breakdowns: the hop count for MuSiQue (from the id prefix), "2hop" for
HotpotQA, ``S=<target>`` for a sage dataset, ``<hops>hop`` for generic ``qa`` JSON lines.
Bad records raise a ``SageError`` naming the file, line (or list index) and field.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from modules.errors import SageError
from modules.json_records import json_lines, json_records

FORMATS = ("sage", "hotpotqa", "musique", "qa")


@dataclass
class QAItem:
    id: str
    question: str
    answers: list[str]
    group: str
    meta: dict[str, Any] = field(default_factory=dict)


def _need(rec: dict[str, Any], key: str, where: str) -> Any:
    if not isinstance(rec, dict) or key not in rec or rec[key] in (None, ""):
        raise SageError(f"{where}: missing field {key!r}")
    return rec[key]


def _answers(values: list[Any], where: str, key: str) -> list[str]:
    out = [str(v).strip() for v in values if v is not None and str(v).strip()]
    if not out:
        raise SageError(f"{where}: field {key!r} holds no non-empty answer")
    return list(dict.fromkeys(out))


def _objects(records: Iterable[tuple[str, Any, int]]) -> list[tuple[str, dict[str, Any]]]:
    """(where, record) of JSON records, each of which must be an object."""
    out = []
    for where, rec, _ in records:
        if not isinstance(rec, dict):
            raise SageError(f"{where}: not a JSON object (a record per line, or a list of them)")
        out.append((where, rec))
    return out


def _jsonl(path: Path) -> list[tuple[str, dict[str, Any]]]:
    return _objects(json_lines(path))


def load_hotpotqa(path: Path) -> list[QAItem]:
    """HotpotQA in the IRCoT processed format (one JSON object per line)."""
    items = []
    for where, rec in _jsonl(path):
        objs = _need(rec, "answers_objects", where)
        if not isinstance(objs, list):
            raise SageError(f"{where}: field 'answers_objects' must be a list")
        spans = [s for o in objs if isinstance(o, dict) for s in (o.get("spans") or [])]
        supporting = [c.get("title") for c in rec.get("contexts") or [] if c.get("is_supporting")]
        items.append(
            QAItem(
                id=str(_need(rec, "question_id", where)),
                question=str(_need(rec, "question_text", where)),
                answers=_answers(spans, where, "answers_objects[].spans"),
                group="2hop",
                meta={"supporting_titles": supporting},
            )
        )
    return items


def load_musique(path: Path) -> list[QAItem]:
    """MuSiQue: a JSON list (or JSON lines) of {id, question, answer, answer_aliases, ...}."""
    items = []
    for where, rec in _objects(json_records(path)):
        qid = str(_need(rec, "id", where))
        hops = qid.split("__", 1)[0]
        group = hops[:4] if hops[:1].isdigit() else "unknown"
        question = str(_need(rec, "question", where))
        answers = [_need(rec, "answer", where), *(rec.get("answer_aliases") or [])]
        items.append(
            QAItem(
                id=qid,
                question=question,
                answers=_answers(answers, where, "answer"),
                group=group,
                meta={"hops": int(group[0]) if group[0].isdigit() else None},
            )
        )
    return items


def load_plain(path: Path) -> list[QAItem]:
    """Generic JSON lines: {id, question, answer, aliases?, hops?} (the demo questions' format)."""
    items = []
    for where, rec in _jsonl(path):
        hops = rec.get("hops")
        items.append(
            QAItem(
                id=str(_need(rec, "id", where)),
                question=str(_need(rec, "question", where)),
                answers=_answers(
                    [_need(rec, "answer", where), *(rec.get("aliases") or [])], where, "answer"
                ),
                group=f"{hops}hop" if hops else "all",
                meta={"hops": hops},
            )
        )
    return items


def load_sage(path: Path) -> list[QAItem]:
    """A sage run directory (or its dataset.parquet / dataset.jsonl)."""
    p = Path(path)
    if p.is_dir():
        p = p / "dataset.parquet" if (p / "dataset.parquet").exists() else p / "dataset.jsonl"
    if p.suffix == ".parquet":
        recs = [(f"{p}[row {i}]", r) for i, r in enumerate(pl.read_parquet(p).to_dicts())]
    else:
        recs = _jsonl(p)
    items = []
    for where, rec in recs:
        s = _need(rec, "target_steps", where)
        items.append(
            QAItem(
                id=str(_need(rec, "id", where)),
                question=str(_need(rec, "question", where)),
                answers=_answers([_need(rec, "answer", where)], where, "answer"),
                group=f"S={s}",
                meta={"target_steps": int(s), "min_searches": rec.get("min_searches")},
            )
        )
    return items


def load_qa(path: Path | str, fmt: str) -> list[QAItem]:
    """Load a QA set in one of FORMATS."""
    p = Path(path)
    if fmt not in FORMATS:
        raise SageError(f"--format {fmt!r}: use one of {', '.join(FORMATS)}")
    if not p.exists():
        raise SageError(f"{p}: no such file or directory")
    loader = {
        "sage": load_sage,
        "hotpotqa": load_hotpotqa,
        "musique": load_musique,
        "qa": load_plain,
    }[fmt]
    items = loader(p)
    if not items:
        raise SageError(f"{p}: no questions found")
    seen: set[str] = set()
    for it in items:
        if it.id in seen:
            raise SageError(f"{p}: duplicate question id {it.id!r}")
        seen.add(it.id)
    return items
