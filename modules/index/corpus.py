"""Corpus files -> validated documents -> passages with stable content-hash ids.

Reads JSONL, Parquet, CSV (polars) and directories of .txt/.md files. Every problem is a
``Reject`` naming file, line (or row) and field; ``on_error="fail"`` raises it as a SageError,
``"skip"`` returns it so the caller writes a rejects file. Nothing is dropped silently:
exact duplicate documents are counted in ``CorpusRead.duplicates``.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import re
import uuid
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import polars as pl

from modules.errors import SageError

OnError = Literal["skip", "fail"]
ID_FIELDS = ("id", "_id", "doc_id", "docid")
TITLE_FIELDS = ("title",)
TEXT_FIELDS = ("text", "contents", "content", "paragraph_text", "body")
TEXT_SUFFIXES = (".txt", ".md")
DEFAULT_MAX_DOC_CHARS = 100_000_000  # setting max_doc_chars: only a pathological input hits it
_WORD = re.compile(r"\S+")  # what str.split() splits on


@dataclass(frozen=True)
class Document:
    doc_id: str
    title: str
    text: str
    where: str  # "file:line" of the record, for messages


@dataclass(frozen=True)
class Reject:
    """One rejected record: where it is, which field, why, and an excerpt of the raw record."""

    file: str
    line: int
    field: str
    reason: str
    raw: str = ""

    def message(self) -> str:
        return f"{self.file}:{self.line}: field '{self.field}': {self.reason}"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class PassageRecord:
    """A passage to index: ``pid`` is readable, ``point_id`` the Qdrant UUID of its hash."""

    pid: str
    doc_id: str
    title: str
    text: str
    hash: str

    @property
    def point_id(self) -> str:
        return str(uuid.UUID(self.hash[:32]))

    def embed_text(self) -> str:
        return f"{self.title}\n{self.text}" if self.title else self.text

    def payload(self) -> dict[str, str]:
        return {
            "pid": self.pid,
            "doc_id": self.doc_id,
            "title": self.title,
            "text": self.text,
            "hash": self.hash,
        }


@dataclass
class FieldMap:
    id: str | None = None
    title: str | None = None
    text: str | None = None


@dataclass
class CorpusRead:
    documents: list[Document] = field(default_factory=list)
    rejects: list[Reject] = field(default_factory=list)
    duplicates: int = 0
    files: int = 0
    skipped_files: list[str] = field(default_factory=list)  # in a folder: not .txt or .md


class _Sink:
    """Collects documents and rejects; raises on the first reject in fail mode."""

    def __init__(self, on_error: OnError, max_chars: int) -> None:
        self.on_error, self.max_chars = on_error, max_chars
        self.out = CorpusRead()
        self._seen: dict[str, tuple[str, str]] = {}  # doc_id -> (text hash, where)

    def reject(self, r: Reject) -> None:
        if self.on_error == "fail":
            raise SageError(r.message())
        self.out.rejects.append(r)

    def add(self, file: str, line: int, rec: dict[str, Any], fmap: FieldMap, raw: str) -> None:
        where = f"{file}:{line}"
        text_f = fmap.text or "text"
        text = rec.get(text_f)
        if text is None or (isinstance(text, str) and not text.strip()):
            state = "missing" if text is None else "empty"
            return self.reject(Reject(file, line, text_f, f"text is {state}", raw[:200]))
        if not isinstance(text, str):
            return self.reject(Reject(file, line, text_f, "text is not a string", raw[:200]))
        title = rec.get(fmap.title) if fmap.title else None
        if title is None and fmap.title is None and text_f == "contents":
            title, text = split_title_line(text)
        title = "" if title is None else str(title).strip()
        if len(text) > self.max_chars:
            reason = (
                f"document too large ({len(text)} chars > max_doc_chars {self.max_chars}; "
                "raise the setting to index it, split into passages)"
            )
            return self.reject(Reject(file, line, text_f, reason, raw[:200]))
        if fmap.id:
            raw_id = rec.get(fmap.id)
            if raw_id is None or not str(raw_id).strip():
                return self.reject(Reject(file, line, fmap.id, "id is missing or empty", raw[:200]))
            doc_id = str(raw_id).strip()
        else:
            doc_id = sha256_hex(f"{title}\x1f{text}")[:16]
        digest = sha256_hex(f"{title}\x1f{text}")
        if doc_id in self._seen:
            prev_digest, prev_where = self._seen[doc_id]
            if prev_digest == digest:
                self.out.duplicates += 1
                return None
            reason = f"duplicate id {doc_id!r} with different text (first at {prev_where})"
            return self.reject(Reject(file, line, fmap.id or "id", reason, raw[:200]))
        self._seen[doc_id] = (digest, where)
        self.out.documents.append(Document(doc_id, title, text, where))
        return None


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def split_title_line(contents: str) -> tuple[str, str]:
    """wiki-18 layout: contents = '"Title"\\ntext' -> (Title, text)."""
    head, sep, rest = contents.partition("\n")
    head = head.strip()
    if sep and len(head) >= 2 and head[0] == head[-1] == '"' and rest.strip():
        return head[1:-1].strip(), rest.strip()
    return "", contents


def _resolve(columns: list[str], explicit: str | None, candidates: tuple[str, ...]) -> str | None:
    if explicit:
        return explicit
    return next((c for c in candidates if c in columns), None)


def resolve_fields(columns: list[str], given: FieldMap, source: str) -> FieldMap:
    """Pick id/title/text columns: explicit options first, then common layouts."""
    fmap = FieldMap(
        id=_resolve(columns, given.id, ID_FIELDS),
        title=_resolve(columns, given.title, TITLE_FIELDS),
        text=_resolve(columns, given.text, TEXT_FIELDS),
    )
    if fmap.text is None:
        raise SageError(
            f"{source}: no text field among columns {columns}; pass --text-field "
            f"(tried {', '.join(TEXT_FIELDS)})"
        )
    for name, col in (("--text-field", given.text), ("--id-field", given.id)):
        if col and columns and col not in columns:
            raise SageError(f"{source}: {name} {col!r} is not a column (have {columns})")
    return fmap


def _read_jsonl(path: Path, given: FieldMap, sink: _Sink) -> None:
    rows: list[tuple[int, dict[str, Any], str]] = []
    with path.open("rb") as fh:
        for lineno, raw_bytes in enumerate(fh, start=1):
            if not raw_bytes.strip():
                continue
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                excerpt = raw_bytes[:200].decode("utf-8", "replace")
                sink.reject(Reject(str(path), lineno, "*", f"not UTF-8 ({exc.reason})", excerpt))
                continue
            try:
                rec = json.loads(raw.rstrip("\r\n"))  # a cut-off line: "Unterminated string"
            except json.JSONDecodeError as exc:
                reason = f"malformed JSON: {exc.msg} at column {exc.colno}"
                sink.reject(Reject(str(path), lineno, "*", reason, raw[:200]))
                continue
            if not isinstance(rec, dict):
                sink.reject(Reject(str(path), lineno, "*", "not a JSON object", raw[:200]))
                continue
            rows.append((lineno, rec, raw))
    columns = list(dict.fromkeys(k for _, rec, _ in rows for k in rec))
    fmap = resolve_fields(columns, given, str(path)) if rows else given
    for lineno, rec, raw in rows:
        sink.add(str(path), lineno, rec, fmap, raw)


def _read_frame(df: pl.DataFrame, path: Path, given: FieldMap, sink: _Sink, first: int) -> None:
    fmap = resolve_fields(df.columns, given, str(path))
    for i, rec in enumerate(df.iter_rows(named=True)):
        for key, value in rec.items():
            if isinstance(value, bytes):
                try:
                    rec[key] = value.decode("utf-8")
                except UnicodeDecodeError:
                    rec[key] = None
                    sink.reject(Reject(str(path), i + first, key, "not UTF-8"))
                    break
        else:
            sink.add(str(path), i + first, rec, fmap, json.dumps(rec, default=str)[:200])


def _read_csv(path: Path, given: FieldMap, sink: _Sink) -> None:
    data = path.read_bytes()
    bad = False
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        sink.reject(Reject(str(path), line, "*", f"not UTF-8 ({exc.reason}); row dropped"))
        bad = True
    df = pl.read_csv(data, infer_schema=False, encoding="utf8-lossy" if bad else "utf8")
    if bad:  # rows that carry a replacement character came from the undecodable bytes
        mask = pl.any_horizontal(pl.col(c).fill_null("").str.contains("\ufffd") for c in df.columns)
        df = df.filter(~mask)
    _read_frame(df, path, given, sink, first=2)  # line 1 is the header


def _read_text_dir(path: Path, given: FieldMap, sink: _Sink) -> int:
    every = sorted(p for p in path.rglob("*") if p.is_file())
    files = [p for p in every if p.suffix in TEXT_SUFFIXES]
    sink.out.skipped_files = [str(p) for p in every if p.suffix not in TEXT_SUFFIXES]
    for f in files:
        try:
            text = f.read_text("utf-8")
        except UnicodeDecodeError as exc:
            sink.reject(Reject(str(f), 1, "text", f"not UTF-8 ({exc.reason})"))
            continue
        title = f.stem
        first, _, rest = text.lstrip().partition("\n")
        if f.suffix == ".md" and first.startswith("# "):
            title, text = first[2:].strip(), rest
        rec = {"id": str(f.relative_to(path)), "title": title, "text": text}
        sink.add(str(f), 1, rec, FieldMap("id", "title", "text"), "")
    return len(files)


def read_corpus(
    path: Path | str,
    fields: FieldMap | None = None,
    on_error: OnError = "fail",
    max_doc_chars: int = DEFAULT_MAX_DOC_CHARS,
) -> CorpusRead:
    """Read and validate a corpus file or directory (see module docstring)."""
    path = Path(path)
    given = fields or FieldMap()
    sink = _Sink(on_error, max_doc_chars)
    if not path.exists():
        raise SageError(f"{path}: no such file or directory")
    if path.is_dir():
        sink.out.files = _read_text_dir(path, given, sink)
        if not sink.out.files:
            skipped = len(sink.out.skipped_files)
            raise SageError(f"{path}: no .txt or .md files ({skipped} other files skipped)")
        return sink.out
    suffix = "".join(path.suffixes[-1:]).lower()
    sink.out.files = 1
    try:
        if suffix in (".jsonl", ".ndjson", ".json"):
            _read_jsonl(path, given, sink)
        elif suffix == ".parquet":
            _read_frame(pl.read_parquet(path), path, given, sink, first=1)
        elif suffix in (".csv", ".tsv"):
            _read_csv(path, given, sink)
        else:
            raise SageError(f"{path}: unsupported format (use .jsonl, .parquet, .csv or a dir)")
    except (pl.exceptions.PolarsError, OSError) as exc:
        raise SageError(f"{path}: cannot read: {str(exc).splitlines()[0]}") from exc
    return sink.out


def iter_chunks(text: str, size: int, overlap: int) -> Iterator[str]:
    """Word windows of ``size`` words, consecutive windows sharing ``overlap`` words, made
    one at a time while the text's words are scanned (never all the words at once: memory
    is one window, however long the document)."""
    if size <= 0 or not 0 <= overlap < size:
        raise SageError(f"chunking: need 0 <= overlap ({overlap}) < chunk words ({size})")
    window: deque[str] = deque()
    fresh = 0  # words of the window not yet in a yielded passage
    for match in _WORD.finditer(text):
        window.append(match.group())
        fresh += 1
        if len(window) == size:
            yield " ".join(window)
            for _ in range(size - overlap):
                window.popleft()
            fresh = 0
    if fresh or not _WORD.search(text):  # the tail, or the one (empty) passage of no words
        yield " ".join(window)


def chunk_words(text: str, size: int, overlap: int) -> list[str]:
    """``iter_chunks`` as a list."""
    return list(iter_chunks(text, size, overlap))


def iter_passages_of(doc: Document, size: int = 200, overlap: int = 40) -> Iterator[PassageRecord]:
    """Split a document lazily; the id hashes doc id, position, title and text (stable,
    idempotent)."""
    for n, text in enumerate(iter_chunks(doc.text, size, overlap)):
        digest = sha256_hex(f"{doc.doc_id}\x1f{n}\x1f{doc.title}\x1f{text}")
        yield PassageRecord(f"{doc.doc_id}#{n}-{digest[:8]}", doc.doc_id, doc.title, text, digest)


def passages_of(doc: Document, size: int = 200, overlap: int = 40) -> list[PassageRecord]:
    """``iter_passages_of`` as a list."""
    return list(iter_passages_of(doc, size, overlap))


def iter_passages(docs: Iterable[Document], size: int, overlap: int) -> Iterator[PassageRecord]:
    """Every document's passages, one at a time."""
    for doc in docs:
        yield from iter_passages_of(doc, size, overlap)


def corpus_hash(passage_hashes: list[str], salt: str = "") -> str:
    """Hash of the passage set (order-free) plus a salt (e.g. embedding model names)."""
    h = hashlib.sha256(salt.encode())
    for digest in sorted(passage_hashes):
        h.update(bytes.fromhex(digest))
    return h.hexdigest()[:12]


def write_rejects(rejects: list[Reject], path: Path, skipped_files: list[str] = ()) -> Path:
    """One JSON line per rejected record, then one per skipped file of a folder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in rejects:
            fh.write(json.dumps({**r.to_dict(), "message": r.message()}, ensure_ascii=False) + "\n")
        for f in skipped_files:
            rec = {"file": f, "skipped": True, "reason": "not a .txt or .md file"}
            fh.write(json.dumps(rec, ensure_ascii=False) + "\n")
    return path


def sample_documents(path: Path | str, n: int, seed: int) -> dict[str, dict[str, str]]:
    """``n`` documents of a JSONL corpus (wiki-18 ``{id, contents}`` or ``{id, title, text}``),
    chosen by a seeded hash of their id in one streaming pass: the same file, n and seed
    always give the same documents, and a 21M-line corpus never sits in memory."""
    path = Path(path)
    if not path.is_file():
        raise SageError(f"{path}: no such corpus file")
    heap: list[tuple[int, str, str, str]] = []
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                rec = json.loads(raw)
                doc_id = str(rec.get("id", rec.get("_id", lineno)))
                if "contents" in rec:
                    title, text = split_title_line(str(rec["contents"]))
                else:
                    title, text = str(rec.get("title") or ""), str(rec["text"])
            except (json.JSONDecodeError, UnicodeDecodeError, KeyError, AttributeError) as exc:
                raise SageError(f"{path}:{lineno}: not a corpus record ({exc})") from exc
            key = -int(sha256_hex(f"{seed}:{doc_id}")[:15], 16)  # keep the n smallest hashes
            if len(heap) < n:
                heapq.heappush(heap, (key, doc_id, title, text))
            elif key > heap[0][0]:
                heapq.heapreplace(heap, (key, doc_id, title, text))
    if not heap:
        raise SageError(f"{path}: no documents")
    return {d: {"title": t, "text": x} for _, d, t, x in heap}
