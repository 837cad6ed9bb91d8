"""Eval sets to decontaminate against: HotpotQA (IRCoT JSON lines), MuSiQue (a JSON list or
lines), or plain ``{question, answer}`` JSON lines / Parquet (``id`` and ``aliases``
optional), a file or a folder of them. The format is recognised per record from its fields;
a record of no known format is one ``SageError`` naming the file, line and field.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from modules.errors import SageError
from modules.json_records import json_records

SUFFIXES = (".jsonl", ".json", ".parquet")


@dataclass(frozen=True)
class EvalItem:
    """One eval question: where it is (file, id) and its gold answers."""

    file: str
    id: str
    question: str
    answers: tuple[str, ...] = field(default=())


def _answers(values: list[Any]) -> tuple[str, ...]:
    out = [str(v).strip() for v in values if v is not None and str(v).strip()]
    return tuple(dict.fromkeys(out))


def parse_record(rec: Any, where: str, fallback_id: str) -> tuple[str, str, tuple[str, ...]]:
    """(id, question, answers) of one record in any known format."""
    if not isinstance(rec, dict):
        raise SageError(f"{where}: field 'question': not a JSON object")
    if "question_text" in rec:  # HotpotQA, IRCoT processed
        objs = rec.get("answers_objects")
        if not isinstance(objs, list):
            raise SageError(f"{where}: field 'answers_objects': missing or not a list")
        spans = [s for o in objs if isinstance(o, dict) for s in (o.get("spans") or [])]
        qid, question, answers = rec.get("question_id"), rec["question_text"], _answers(spans)
        need = "answers_objects[].spans"
    elif "question" in rec:  # MuSiQue, HotpotQA original, plain
        gold = rec.get("answer", rec.get("answers"))
        gold = gold if isinstance(gold, list) else [gold]
        extra = rec.get("answer_aliases") or rec.get("aliases") or []
        qid = rec.get("id", rec.get("_id"))
        question, answers, need = rec["question"], _answers([*gold, *extra]), "answer"
    else:
        raise SageError(f"{where}: field 'question': missing (not HotpotQA, MuSiQue or QA)")
    if not str(question or "").strip():
        raise SageError(f"{where}: field 'question': empty")
    if not answers:
        raise SageError(f"{where}: field {need!r}: missing or empty")
    return str(qid if qid not in (None, "") else fallback_id), str(question), answers


def _records(path: Path) -> Iterator[tuple[str, Any, str]]:
    """(where, record, fallback id) of every record of one file."""
    if path.suffix == ".parquet":
        try:
            frame = pl.read_parquet(path)
        except Exception as exc:
            raise SageError(f"{path}: not a readable Parquet file ({exc})") from None
        for i, rec in enumerate(frame.iter_rows(named=True), start=1):
            yield f"{path}:{i}", rec, str(i)
        return
    for where, rec, position in json_records(path):
        yield where, rec, str(position)


def eval_files(path: Path) -> list[Path]:
    """The eval files of a path: itself, or a folder's .jsonl/.json/.parquet files."""
    path = Path(path)
    if not path.exists():
        raise SageError(f"{path}: no such eval file or folder")
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    if path.suffix not in SUFFIXES:
        raise SageError(f"{path}: unknown eval format (use .jsonl, .json or .parquet)")
    return [path]


def load_evals(paths: list[str | Path]) -> list[EvalItem]:
    """Every eval item of ``paths`` (files or folders), in file order."""
    items = []
    for path in paths:
        for f in eval_files(Path(path)):
            for where, rec, fallback in _records(f):
                qid, question, answers = parse_record(rec, where, fallback)
                items.append(EvalItem(str(f), qid, question, answers))
    return items
