"""Prefect flow ``index_corpus``: corpus -> passages -> embeddings -> versioned Qdrant collection.

A build writes ``NAME@<corpus-hash>``: passages whose content-hash id already exists in the
version ``NAME`` points at are copied with their vectors; only new or changed passages are
embedded; deleted ones are simply not carried over. Then ``NAME`` is switched atomically and
old versions beyond ``keep_versions`` are pruned. The store is embedded Qdrant Edge or a
Qdrant server (``modules/index/store.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from itertools import chain, islice
from pathlib import Path
from typing import Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE
from pydantic import model_validator

from flows.engine.artifacts import artifact_key
from flows.engine.params import FlowParams, argument, hidden, option
from flows.engine.retrying import retried
from modules.errors import SageError
from modules.index import corpus as corpus_mod
from modules.index import embeddings, store
from modules.settings import Settings, load_settings

ProgressHook = Callable[[str, int, int], None]  # (phase, done, total)
_HOOKS: list[ProgressHook] = []
_HOOKS_LOCK = threading.Lock()
SCHEMA_SALT = f"{embeddings.DENSE_MODEL}|{embeddings.SPARSE_MODEL}|title+text|v1"


@contextmanager
def progress_hook(hook: ProgressHook) -> Iterator[None]:
    """Receive (phase, done, total) progress callbacks from index_corpus runs in this process."""
    with _HOOKS_LOCK:
        _HOOKS.append(hook)
    try:
        yield
    finally:
        with _HOOKS_LOCK:
            _HOOKS.remove(hook)


def _notify(phase: str, done: int, total: int) -> None:
    for hook in list(_HOOKS):
        hook(phase, done, total)


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Lists of ``size`` items taken from ``items`` as they come (an iterator stays lazy)."""
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


@task(name="read-corpus", cache_policy=NO_CACHE)
def read_task(
    path: str, fields: corpus_mod.FieldMap, on_error: str, max_doc_chars: int
) -> corpus_mod.CorpusRead:
    return corpus_mod.read_corpus(path, fields, on_error, max_doc_chars)  # type: ignore[arg-type]


@task(name="existing-ids", **retried())
def existing_ids_task(location: str, api_key: str | None, collection: str) -> set[str]:
    vs = store.open_store(location, api_key)
    return {p.id for batch in vs.scroll(collection, payload=False) for p in batch}


@task(name="copy-unchanged", **retried())
def copy_task(location: str, api_key: str | None, src: str, dst: str, ids: list[str]) -> int:
    vs = store.open_store(location, api_key)
    points = vs.retrieve(src, ids)
    vs.upsert(dst, points)
    return len(points)


@task(name="embed-upsert", **retried())
def embed_task(
    location: str,
    api_key: str | None,
    models_dir: str,
    dst: str,
    batch: list[corpus_mod.PassageRecord],
) -> int:
    texts = [p.embed_text() for p in batch]
    dense = embeddings.embed_dense(Path(models_dir), texts)
    sparse = embeddings.embed_sparse(Path(models_dir), texts)
    points = [
        store.StorePoint(p.point_id, p.payload(), d, s)
        for p, d, s in zip(batch, dense, sparse, strict=True)
    ]
    store.open_store(location, api_key).upsert(dst, points)
    del texts, dense, sparse, points
    embeddings.release_native_memory()  # memory bounded by the batch, not by batches done
    return len(batch)


def _rejects_path(settings: Settings, collection: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return settings.data_dir.resolve() / "rejects" / f"{collection}-{stamp}.jsonl"


class IndexParams(FlowParams):
    """What `sage index` takes."""

    path: str = argument("JSONL, Parquet or CSV file, or a directory of .txt/.md files.")
    collection: str | None = option(None, "Collection name [SAGE_COLLECTION].")
    id_field: str | None = option(None, "Column holding the document id.")
    title_field: str | None = option(None, "Column holding the title.")
    text_field: str | None = option(None, "Column holding the text.")
    on_error: Literal["fail", "skip"] = option(
        "fail", "Bad records: fail (stop at the first) or skip (index the rest, rejects file)."
    )
    chunk_words: int = option(200, "Words per passage.", ge=8)
    overlap_words: int = option(40, "Words shared by neighbouring passages.", ge=0)
    keep_versions: int = option(2, "Versions kept per collection.", ge=1)
    batch_size: int = hidden(256, ge=1)
    max_doc_chars: int | None = hidden(None, ge=1)  # default: the max_doc_chars setting

    @model_validator(mode="after")
    def _overlap(self) -> IndexParams:
        if self.overlap_words >= self.chunk_words:
            raise SageError("--overlap-words must be smaller than --chunk-words")
        return self


@flow(name="index_corpus")
def index_corpus(
    params: IndexParams, settings_overrides: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Index a corpus into ``collection`` and return a summary dict."""
    t0 = time.perf_counter()
    settings = load_settings(**(settings_overrides or {}))
    name = params.collection or settings.collection
    if "@" in name or "/" in name:
        raise SageError(f"collection name {name!r} may not contain '@' or '/'")
    read, rejects_file = _read(params, settings, name)
    scan = Scan(read.documents, params.chunk_words, params.overlap_words)
    if not scan.doc_of:
        raise SageError(
            f"{params.path}: no valid documents to index ({len(read.rejects)} rejected)"
        )
    result = Build(params, settings, name, scan).run()
    seconds = time.perf_counter() - t0
    unique = len(scan.doc_of)
    summary = {
        "collection": name,
        **result,
        "documents": len(read.documents),
        "passages": unique,
        "duplicates": read.duplicates + (scan.total - unique),
        "rejects": len(read.rejects),
        "skipped_files": len(read.skipped_files),
        "rejects_file": rejects_file,
        "seconds": round(seconds, 2),
        "passages_per_s": round(unique / seconds, 1) if seconds else None,
    }
    get_run_logger().info("indexed %s", summary)
    return summary


def _read(
    params: IndexParams, settings: Settings, name: str
) -> tuple[corpus_mod.CorpusRead, str | None]:
    """The corpus's valid documents, and the rejects file listing the rest (if any)."""
    fields = corpus_mod.FieldMap(params.id_field, params.title_field, params.text_field)
    max_chars = params.max_doc_chars or settings.max_doc_chars
    read = read_task(params.path, fields, params.on_error, max_chars)
    if not (read.rejects or read.skipped_files):
        return read, None
    path = corpus_mod.write_rejects(read.rejects, _rejects_path(settings, name), read.skipped_files)
    get_run_logger().warning(
        "%d rejected records and %d skipped files written to %s",
        len(read.rejects),
        len(read.skipped_files),
        path,
    )
    return read, str(path)


class Scan:
    """One lazy pass over the documents' passages, keeping only what names them: each
    distinct passage's point id -> its document id, and the corpus hash. The passages
    themselves are made again, batch by batch, when they are embedded (``passages``)."""

    def __init__(self, docs: list[corpus_mod.Document], size: int, overlap: int):
        self.docs, self.size, self.overlap = docs, size, overlap
        self.doc_of: dict[str, str] = {}
        hashes, self.total = [], 0
        for p in corpus_mod.iter_passages(docs, size, overlap):
            self.total += 1
            if p.point_id not in self.doc_of:
                self.doc_of[p.point_id] = p.doc_id
                hashes.append(p.hash)
        self.chash = corpus_mod.corpus_hash(hashes, SCHEMA_SALT)

    def passages(self, wanted: set[str]) -> Iterator[corpus_mod.PassageRecord]:
        """The passages whose point ids are in ``wanted`` (each once), made as they are
        consumed; ``wanted`` is emptied on the way."""
        for p in corpus_mod.iter_passages(self.docs, self.size, self.overlap):
            if p.point_id in wanted:
                wanted.discard(p.point_id)
                yield p


class Build:
    """One build of ``name``: the version for these passages, made (copying unchanged
    passages' vectors from the current version, embedding the rest a batch at a time:
    memory is bounded by the batch, not by the corpus) unless it exists, then made current,
    and old versions pruned."""

    def __init__(self, params: IndexParams, settings: Settings, name: str, scan: Scan):
        self.params, self.name, self.scan = params, name, scan
        self.location, self.models_dir = settings.qdrant_location, str(settings.models_dir)
        qkey = settings.qdrant_api_key
        self.key = qkey.get_secret_value() if qkey else None
        self.chash, self.version = scan.chash, store.version_name(name, scan.chash)
        self.vs = store.open_store(self.location, self.key)

    def run(self) -> dict[str, Any]:
        vs, name, version = self.vs, self.name, self.version
        if vs.has_plain(name):
            raise SageError(
                f"a plain collection named {name!r} exists; choose another --collection"
            )
        current = vs.alias_target(name)
        key = artifact_key("sage", "index", name)
        artifact = create_progress_artifact(0.0, key=key, description=version)
        if vs.is_complete(version):
            get_run_logger().info("%s is already built; nothing to embed", version)
            reused = len(self.scan.doc_of)
            counts = {"embedded": 0, "reused": reused, "deleted": 0, "changed_docs": []}
        else:
            counts = self.build(current, artifact)
        if current != version:
            vs.swap_alias(name, version)
        pruned = store.prune_versions(vs, name, self.params.keep_versions)
        update_progress_artifact(artifact, 100.0)
        return {"version": version, "previous": current, **counts, "pruned": pruned}

    def build(self, current: str | None, artifact: Any) -> dict[str, Any]:
        doc_of = self.scan.doc_of
        old = existing_ids_task(self.location, self.key, current) if current else set()
        reuse = [pid for pid in doc_of if pid in old]
        todo = {pid for pid in doc_of if pid not in old}
        changed = sorted({doc_of[pid] for pid in todo}) if current else []
        embedded = len(todo)
        p = self.params
        meta = {
            "corpus_hash": self.chash,
            "passages": len(doc_of),
            "source": str(p.path),
            "chunk_words": p.chunk_words,
            "overlap_words": p.overlap_words,
        }
        self.vs.create_version(self.version, meta)
        total, done = len(doc_of), 0
        steps: Iterator[tuple[str, list[Any]]] = chain(
            (("copy", ids) for ids in _batches(reuse, 1024)),
            (("embed", b) for b in _batches(self.scan.passages(todo), p.batch_size)),
        )
        for phase, chunk in steps:
            if phase == "copy":
                done += copy_task(self.location, self.key, current, self.version, chunk)
            else:
                done += embed_task(self.location, self.key, self.models_dir, self.version, chunk)
            _notify(phase, done, total)
            update_progress_artifact(artifact, 100.0 * done / total)
        stored = self.vs.count(self.version)
        if stored != total:
            raise SageError(f"{self.version}: {stored} points stored, expected {total}; re-run")
        _notify("index", total, total)
        self.vs.mark_complete(self.version)  # embedded: flush, HNSW where large, read-only
        deleted = len(old - doc_of.keys())
        return {
            "embedded": embedded,
            "reused": len(reuse),
            "deleted": deleted,
            "changed_docs": changed,
        }
