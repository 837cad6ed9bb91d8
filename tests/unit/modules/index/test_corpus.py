"""Corpus readers, validation messages, chunking and content-hash ids (no models needed)."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from modules.errors import SageError
from modules.index.corpus import (
    FieldMap,
    chunk_words,
    corpus_hash,
    passages_of,
    read_corpus,
    split_title_line,
)


def _jsonl(path: Path, lines: list[str | bytes]) -> Path:
    with path.open("wb") as fh:
        for line in lines:
            fh.write((line if isinstance(line, bytes) else line.encode()) + b"\n")
    return path


def _rec(**kw: object) -> str:
    return json.dumps(kw)


def test_jsonl_bad_records_are_rejected_with_file_line_field(tmp_path: Path) -> None:
    path = _jsonl(
        tmp_path / "c.jsonl",
        [
            _rec(id="a", title="A", text="alpha text"),
            '{"id": "b", "text": ',  # malformed JSON
            _rec(id="c", title="C", text="   "),  # empty text
            b'{"id": "d", "text": "caf\xe9"}',  # latin-1 byte: not UTF-8
            _rec(id="a", title="A", text="different alpha"),  # duplicate id, other text
            _rec(id="a", title="A", text="alpha text"),  # exact duplicate: counted
            _rec(id="e", title="E"),  # missing text
            _rec(id="f", title="F", text="x" * 50),  # oversize
            "",
            _rec(id="g", title="G", text="gamma text"),
        ],
    )
    read = read_corpus(path, on_error="skip", max_doc_chars=40)
    assert [d.doc_id for d in read.documents] == ["a", "g"]
    assert read.duplicates == 1
    got = {(r.line, r.field) for r in read.rejects}
    assert got == {(2, "*"), (3, "text"), (4, "*"), (5, "id"), (7, "text"), (8, "text")}
    by_line = {r.line: r.message() for r in read.rejects}
    assert by_line[2].startswith(f"{path}:2: field '*': malformed JSON")
    assert "not UTF-8" in by_line[4]
    assert "duplicate id 'a'" in by_line[5] and f"{path}:1" in by_line[5]
    assert "too large" in by_line[8]

    with pytest.raises(SageError, match=rf"{path.name}:2: field '\*': malformed JSON"):
        read_corpus(path, on_error="fail")


def test_wiki18_contents_layout_and_field_mapping(tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "w.jsonl", [_rec(id="1", contents='"Aaron"\nAaron is a prophet.')])
    doc = read_corpus(path).documents[0]
    assert (doc.doc_id, doc.title, doc.text) == ("1", "Aaron", "Aaron is a prophet.")
    assert split_title_line("no title line") == ("", "no title line")

    other = _jsonl(tmp_path / "o.jsonl", [_rec(key="k1", name="N", body_text="hello")])
    with pytest.raises(SageError, match="no text field"):
        read_corpus(other)
    doc = read_corpus(other, FieldMap(id="key", title="name", text="body_text")).documents[0]
    assert (doc.doc_id, doc.title, doc.text) == ("k1", "N", "hello")


def test_parquet_csv_and_text_dir(tmp_path: Path) -> None:
    df = pl.DataFrame({"id": ["p1", "p2"], "title": ["T1", None], "text": ["one", None]})
    df.write_parquet(tmp_path / "c.parquet")
    read = read_corpus(tmp_path / "c.parquet", on_error="skip")
    assert [d.doc_id for d in read.documents] == ["p1"]
    assert read.rejects[0].line == 2 and read.rejects[0].field == "text"

    (tmp_path / "c.csv").write_bytes(b"id,title,text\n1,A,first\n2,B,bad \xff byte\n3,C,third\n")
    read = read_corpus(tmp_path / "c.csv", on_error="skip")
    assert [d.doc_id for d in read.documents] == ["1", "3"]
    assert read.rejects[0].line == 3 and "not UTF-8" in read.rejects[0].reason

    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text("# Alpha Title\nalpha body\n")
    (docs / "sub" / "b.txt").write_text("beta body")
    (docs / "skip.bin").write_bytes(b"\x00")
    read = read_corpus(docs)
    assert [(d.doc_id, d.title) for d in read.documents] == [
        ("a.md", "Alpha Title"),
        ("sub/b.txt", "b"),
    ]


def test_chunking_and_stable_ids() -> None:
    text = " ".join(f"w{i}" for i in range(25))
    chunks = chunk_words(text, size=10, overlap=3)
    assert chunks[0].split() == [f"w{i}" for i in range(10)]
    assert chunks[1].split()[:3] == ["w7", "w8", "w9"]  # overlap carried
    assert chunks[-1].split() == ["w21", "w22", "w23", "w24"] and len(chunks) == 4
    with pytest.raises(SageError):
        chunk_words(text, size=5, overlap=5)

    from modules.index.corpus import Document

    doc = Document("d1", "Title", text, "f:1")
    a, b = passages_of(doc, 10, 3), passages_of(doc, 10, 3)
    assert [p.pid for p in a] == [p.pid for p in b]
    assert all(p.title == "Title" and p.pid.startswith("d1#") for p in a)
    assert len({p.point_id for p in a}) == 4
    changed = passages_of(Document("d1", "Title", text + " extra", "f:1"), 10, 3)
    assert changed[0].hash == a[0].hash and changed[-1].hash != a[-1].hash
    assert corpus_hash([p.hash for p in a]) == corpus_hash([p.hash for p in reversed(a)])
    assert corpus_hash([p.hash for p in a]) != corpus_hash([p.hash for p in changed])


def test_lazy_chunking_gives_the_same_windows_as_splitting_the_whole_text() -> None:
    """iter_chunks scans words as it goes (one window in memory) and yields what splitting
    the whole text gave: every window, the tail, one passage for a text of a window or less,
    and the error before the first word when the overlap is too large."""
    from modules.index.corpus import iter_chunks

    def split_windows(text: str, size: int, overlap: int) -> list[str]:
        words = text.split()
        if len(words) <= size:
            return [" ".join(words)]
        starts = range(0, len(words) - overlap, size - overlap)
        return [" ".join(words[s : s + size]) for s in starts]

    for n in (0, 1, 9, 10, 11, 17, 24, 25, 26, 100):
        text = "\n ".join(f"w{i}" for i in range(n)) + "  \t"
        for size, overlap in ((10, 3), (10, 0), (5, 4), (1, 0)):
            assert list(iter_chunks(text, size, overlap)) == split_windows(text, size, overlap)
    huge = iter_chunks("word " * 2_000_000, 200, 40)
    assert next(huge).split() == ["word"] * 200  # the first passage before the rest is read
    with pytest.raises(SageError):
        next(iter_chunks("a b c", 5, 5))
