"""Prefect flow ``index_corpus``: corpus -> passages -> embeddings -> versioned Qdrant collection.

A build writes ``NAME@<corpus-hash>``: passages whose content-hash id already exists in the
version ``NAME`` points at are copied with their vectors; only new or changed passages are
embedded; deleted ones are simply not carried over. Then ``NAME`` is switched atomically and
old versions beyond ``keep_versions`` are pruned. The store is embedded Qdrant Edge or a
Qdrant server (``modules/store.py``).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.cache_policies import NO_CACHE

from modules import corpus as corpus_mod
from modules import embeddings, store
from modules.errors import SageError
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


def _batches(items: list[Any], size: int) -> Iterator[list[Any]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


@task(name="read-corpus", cache_policy=NO_CACHE)
def read_task(
    path: str, fields: corpus_mod.FieldMap, on_error: str, max_doc_chars: int
) -> corpus_mod.CorpusRead:
    return corpus_mod.read_corpus(path, fields, on_error, max_doc_chars)  # type: ignore[arg-type]


@task(name="existing-ids", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def existing_ids_task(location: str, api_key: str | None, collection: str) -> set[str]:
    vs = store.open_store(location, api_key)
    return {p.id for batch in vs.scroll(collection, payload=False) for p in batch}


@task(name="copy-unchanged", retries=2, retry_delay_seconds=1, cache_policy=NO_CACHE)
def copy_task(location: str, api_key: str | None, src: str, dst: str, ids: list[str]) -> int:
    vs = store.open_store(location, api_key)
    points = vs.retrieve(src, ids)
    vs.upsert(dst, points)
    return len(points)


@task(name="embed-upsert", retries=2, retry_delay_seconds=2, cache_policy=NO_CACHE)
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
    return len(points)


def _artifact_key(collection: str) -> str:
    return "index-" + (re.sub(r"[^a-z0-9-]+", "-", collection.lower()).strip("-") or "corpus")


def _rejects_path(settings: Settings, collection: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S")
    return settings.data_dir.resolve() / "rejects" / f"{collection}-{stamp}.jsonl"


@flow(name="index_corpus", validate_parameters=False)
def index_corpus(
    path: str,
    collection: str | None = None,
    id_field: str | None = None,
    title_field: str | None = None,
    text_field: str | None = None,
    on_error: str = "fail",
    chunk_words: int = 200,
    overlap_words: int = 40,
    keep_versions: int = 2,
    batch_size: int = 256,
    max_doc_chars: int | None = None,
    settings: Settings | None = None,
) -> dict[str, Any]:
    """Index a corpus into ``collection`` (alias) and return a summary dict."""
    t0 = time.perf_counter()
    log = get_run_logger()
    settings = settings or load_settings()
    name = collection or settings.collection
    if "@" in name or "/" in name:
        raise SageError(f"collection name {name!r} may not contain '@' or '/'")
    if on_error not in ("skip", "fail"):
        raise SageError(f"--on-error must be skip or fail, not {on_error!r}")
    location, models_dir = settings.qdrant_location, str(settings.models_dir)
    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None

    fields = corpus_mod.FieldMap(id_field, title_field, text_field)
    read = read_task(path, fields, on_error, max_doc_chars or settings.max_doc_chars)
    rejects_file = None
    if read.rejects or read.skipped_files:
        rejects_file = str(
            corpus_mod.write_rejects(
                read.rejects, _rejects_path(settings, name), read.skipped_files
            )
        )
        log.warning(
            "%d rejected records and %d skipped files written to %s",
            len(read.rejects), len(read.skipped_files), rejects_file,
        )  # fmt: skip
    passages = list(corpus_mod.iter_passages(read.documents, chunk_words, overlap_words))
    if not passages:
        raise SageError(f"{path}: no valid documents to index ({len(read.rejects)} rejected)")
    unique = {p.point_id: p for p in passages}
    chash = corpus_mod.corpus_hash([p.hash for p in unique.values()], SCHEMA_SALT)
    version = store.version_name(name, chash)

    vs = store.open_store(location, key)
    if vs.has_plain(name):
        raise SageError(f"a plain collection named {name!r} exists; choose another --collection")
    current = vs.alias_target(name)
    embedded = copied = deleted = 0
    changed_docs: list[str] = []  # documents with a new or changed passage in this build
    artifact = create_progress_artifact(0.0, key=_artifact_key(name), description=version)
    if vs.is_complete(version):
        log.info("%s is already built; nothing to embed", version)
        copied = len(unique)
    else:
        old = existing_ids_task(location, key, current) if current else set()
        reuse = [pid for pid in unique if pid in old]
        todo = [p for pid, p in unique.items() if pid not in old]
        changed_docs = sorted({p.doc_id for p in todo}) if current else []
        deleted = len(old - unique.keys())
        meta = {"corpus_hash": chash, "passages": len(unique), "source": str(path),
                "chunk_words": chunk_words, "overlap_words": overlap_words}  # fmt: skip
        vs.create_version(version, meta)
        total = len(unique)
        for ids in _batches(reuse, 1024):
            copied += copy_task(location, key, current, version, ids)
            _notify("copy", copied + embedded, total)
            update_progress_artifact(artifact, 100.0 * (copied + embedded) / total)
        for batch in _batches(todo, batch_size):
            embedded += embed_task(location, key, models_dir, version, batch)
            _notify("embed", copied + embedded, total)
            update_progress_artifact(artifact, 100.0 * (copied + embedded) / total)
        stored = vs.count(version)
        if stored != total:
            raise SageError(f"{version}: {stored} points stored, expected {total}; re-run")
        _notify("index", total, total)
        vs.mark_complete(version)  # embedded: flush, HNSW index where large enough, read-only
    if current != version:
        vs.swap_alias(name, version)
    pruned = store.prune_versions(vs, name, keep_versions)
    update_progress_artifact(artifact, 100.0)
    seconds = time.perf_counter() - t0
    summary = {
        "collection": name,
        "version": version,
        "previous": current,
        "documents": len(read.documents),
        "passages": len(unique),
        "embedded": embedded,
        "reused": copied,
        "deleted": deleted,
        "changed_docs": changed_docs,
        "duplicates": read.duplicates + (len(passages) - len(unique)),
        "rejects": len(read.rejects),
        "skipped_files": len(read.skipped_files),
        "rejects_file": rejects_file,
        "pruned": pruned,
        "seconds": round(seconds, 2),
        "passages_per_s": round(len(unique) / seconds, 1) if seconds else None,
    }
    log.info("indexed %s", summary)
    return summary
