"""The one Qdrant access point: cached clients, versioned collections, aliases, points.

Embedded mode (a path) and server mode (an http(s) URL) share every code path. Embedded
Qdrant locks its directory, so one client per location is cached for the whole process.
A build writes ``NAME@<corpus-hash>`` and then points the alias ``NAME`` at it atomically.
"""

from __future__ import annotations

import atexit
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from qdrant_client import QdrantClient, models

from modules.embeddings import DENSE_DIM, SparseVec
from modules.errors import SageError

DENSE = "dense"
SPARSE = "bm25"
_COSINE = models.Distance.COSINE
MEMORY = ":memory:"

_CLIENTS: dict[str, QdrantClient] = {}
_LOCK = threading.Lock()


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _key(location: str) -> str:
    return location if is_url(location) or location == MEMORY else str(Path(location).resolve())


def get_client(location: str, api_key: str | None = None) -> QdrantClient:
    """The process-wide client for ``location``: URL, ``:memory:`` or an embedded path."""
    key = _key(location)
    with _LOCK:
        if key not in _CLIENTS:
            if is_url(location):
                _CLIENTS[key] = QdrantClient(url=location, api_key=api_key, timeout=60)
            elif location == MEMORY:
                _CLIENTS[key] = QdrantClient(location=MEMORY)
            else:
                Path(key).mkdir(parents=True, exist_ok=True)
                try:
                    _CLIENTS[key] = QdrantClient(path=key)
                except RuntimeError as exc:  # another process holds the directory lock
                    raise SageError(f"embedded Qdrant at {key} is in use: {exc}") from exc
        return _CLIENTS[key]


def close_client(location: str) -> None:
    """Close and forget the cached client (releases the embedded directory lock)."""
    with _LOCK:
        client = _CLIENTS.pop(_key(location), None)
    if client is not None:
        client.close()


@atexit.register
def close_all() -> None:
    """Close every cached client (embedded mode flushes and unlocks its directory)."""
    with _LOCK:
        clients = list(_CLIENTS.values())
        _CLIENTS.clear()
    for client in clients:
        client.close()


def version_name(name: str, corpus_hash: str) -> str:
    return f"{name}@{corpus_hash}"


def alias_target(client: QdrantClient, name: str) -> str | None:
    """The collection the alias ``name`` points at, or None."""
    for a in client.get_aliases().aliases:
        if a.alias_name == name:
            return a.collection_name
    return None


def resolve(client: QdrantClient, name: str) -> str:
    """Alias or collection name -> a concrete collection name (SageError if neither)."""
    target = alias_target(client, name)
    if target:
        return target
    if client.collection_exists(name):
        return name
    raise SageError(f"collection {name!r} not found; run `sage index PATH --collection {name}`")


def versions(client: QdrantClient, name: str) -> list[tuple[str, float]]:
    """All ``name@*`` collections with the time they were last activated, oldest first."""
    out = []
    for c in client.get_collections().collections:
        if c.name.startswith(f"{name}@"):
            meta = client.get_collection(c.name).config.metadata or {}
            out.append((c.name, float(meta.get("activated_at", meta.get("created_at", 0.0)))))
    return sorted(out, key=lambda x: x[1])


def create_version(client: QdrantClient, collection: str, meta: dict[str, Any]) -> None:
    """(Re)create an empty versioned collection with named dense + BM25 (IDF) vectors."""
    if client.collection_exists(collection):
        client.delete_collection(collection)
    client.create_collection(
        collection,
        vectors_config={
            DENSE: models.VectorParams(size=DENSE_DIM, distance=models.Distance.COSINE)
        },
        sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
        metadata={**meta, "created_at": time.time(), "complete": False},
    )


def mark_complete(client: QdrantClient, collection: str) -> None:
    client.update_collection(collection, metadata={"complete": True})


def is_complete(client: QdrantClient, collection: str) -> bool:
    if not client.collection_exists(collection):
        return False
    return bool((client.get_collection(collection).config.metadata or {}).get("complete"))


def swap_alias(client: QdrantClient, name: str, collection: str) -> None:
    """Point alias ``name`` at ``collection`` in one atomic alias operation."""
    ops: list[Any] = []
    if alias_target(client, name) is not None:
        ops.append(models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=name)))
    create = models.CreateAlias(collection_name=collection, alias_name=name)
    ops.append(models.CreateAliasOperation(create_alias=create))
    client.update_collection_aliases(change_aliases_operations=ops)
    client.update_collection(collection, metadata={"activated_at": time.time()})


def prune_versions(client: QdrantClient, name: str, keep: int) -> list[str]:
    """Delete the oldest ``name@*`` versions beyond ``keep``; never the alias target."""
    current = alias_target(client, name)
    old = [c for c, _ in versions(client, name) if c != current]
    doomed = old[: max(0, len(old) - max(keep - 1, 0))]
    for c in doomed:
        client.delete_collection(c)
    return doomed


def make_point(point_id: str, dense: Sequence[float], sparse: SparseVec, payload: dict) -> Any:
    vector = {
        DENSE: list(dense),
        SPARSE: models.SparseVector(indices=sparse.indices, values=sparse.values),
    }
    return models.PointStruct(id=point_id, vector=vector, payload=payload)


def upsert(client: QdrantClient, collection: str, points: Sequence[Any]) -> None:
    if points:
        client.upsert(collection, points=list(points), wait=True)


def delete_points(client: QdrantClient, collection: str, point_ids: Sequence[str]) -> None:
    if point_ids:
        selector = models.PointIdsList(points=list(point_ids))
        client.delete(collection, points_selector=selector, wait=True)


def scroll(
    client: QdrantClient,
    collection: str,
    with_vectors: bool = False,
    payload: bool | list[str] = True,
    batch: int = 1024,
) -> Iterator[list[Any]]:
    """Every point of a collection, ``batch`` at a time (payload and optionally vectors)."""
    offset = None
    while True:
        points, offset = client.scroll(
            collection, limit=batch, offset=offset, with_payload=payload, with_vectors=with_vectors
        )
        if points:
            yield points
        if offset is None:
            return


def retrieve(client: QdrantClient, collection: str, point_ids: Sequence[str]) -> list[Any]:
    """Points with payload and vectors (for copying unchanged passages between versions)."""
    return client.retrieve(collection, ids=list(point_ids), with_payload=True, with_vectors=True)


def count(client: QdrantClient, collection: str) -> int:
    return client.count(collection, exact=True).count


def query(
    client: QdrantClient,
    collection: str,
    dense: Sequence[float] | None,
    sparse: SparseVec | None,
    limit: int,
    candidates: int = 50,
) -> list[Any]:
    """Dense, sparse or hybrid (both given: RRF fusion of the two prefetches) search."""
    sparse_q = models.SparseVector(indices=sparse.indices, values=sparse.values) if sparse else None
    if dense is not None and sparse_q is not None:
        prefetch = [
            models.Prefetch(query=list(dense), using=DENSE, limit=max(candidates, limit)),
            models.Prefetch(query=sparse_q, using=SPARSE, limit=max(candidates, limit)),
        ]
        res = client.query_points(
            collection,
            prefetch=prefetch,
            query=models.FusionQuery(fusion=models.Fusion.RRF),
            limit=limit,
            with_payload=True,
        )
    elif dense is not None:
        res = client.query_points(
            collection, query=list(dense), using=DENSE, limit=limit, with_payload=True
        )
    elif sparse_q is not None:
        res = client.query_points(
            collection, query=sparse_q, using=SPARSE, limit=limit, with_payload=True
        )
    else:
        raise ValueError("query needs a dense or a sparse vector")
    return list(res.points)
