"""The server backend: a Qdrant server through qdrant-client, with native aliases.

Versions are collections ``NAME@hash`` whose metadata holds the build's facts and whether it
is complete; the name is a Qdrant alias switched in one atomic alias operation.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

from qdrant_client import QdrantClient, models

from modules.index.embeddings import DENSE_DIM, SparseVec
from modules.index.store_points import DENSE, RRF_K, SPARSE, StorePoint


class ServerStore:
    """A ``modules.index.store.VectorStore`` on a Qdrant server."""

    def __init__(self, url: str, api_key: str | None = None, client: QdrantClient | None = None):
        self.location = url
        self.client = client or QdrantClient(url=url, api_key=api_key, timeout=60)

    def alias_target(self, name: str) -> str | None:
        for a in self.client.get_aliases().aliases:
            if a.alias_name == name:
                return a.collection_name
        return None

    def has_plain(self, name: str) -> bool:
        return self.alias_target(name) is None and self.client.collection_exists(name)

    def _metadata(self, collection: str) -> dict[str, Any]:
        return self.client.get_collection(collection).config.metadata or {}

    def versions(self, name: str) -> list[tuple[str, float]]:
        out = []
        for c in self.client.get_collections().collections:
            if c.name.startswith(f"{name}@"):
                meta = self._metadata(c.name)
                out.append((c.name, float(meta.get("activated_at", meta.get("created_at", 0.0)))))
        return sorted(out, key=lambda x: x[1])

    def create_version(self, version: str, meta: dict[str, Any]) -> None:
        self.drop(version)
        self.client.create_collection(
            version,
            vectors_config={
                DENSE: models.VectorParams(size=DENSE_DIM, distance=models.Distance.COSINE)
            },
            sparse_vectors_config={SPARSE: models.SparseVectorParams(modifier=models.Modifier.IDF)},
            metadata={**meta, "created_at": time.time(), "complete": False},
        )

    def upsert(self, version: str, points: Sequence[StorePoint]) -> None:
        if not points:
            return
        structs = []
        for p in points:
            vector: dict[str, Any] = {}
            if p.dense is not None:
                vector[DENSE] = list(p.dense)
            if p.sparse is not None:
                vector[SPARSE] = models.SparseVector(
                    indices=p.sparse.indices, values=p.sparse.values
                )
            structs.append(models.PointStruct(id=p.id, vector=vector, payload=p.payload))
        self.client.upsert(version, points=structs, wait=True)

    def mark_complete(self, version: str) -> None:
        self.client.update_collection(version, metadata={"complete": True})

    def is_complete(self, version: str) -> bool:
        return self.client.collection_exists(version) and bool(
            self._metadata(version).get("complete")
        )

    def swap_alias(self, name: str, version: str) -> None:
        ops: list[Any] = []
        if self.alias_target(name) is not None:
            ops.append(
                models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=name))
            )
        create = models.CreateAlias(collection_name=version, alias_name=name)
        ops.append(models.CreateAliasOperation(create_alias=create))
        self.client.update_collection_aliases(change_aliases_operations=ops)
        self.client.update_collection(version, metadata={"activated_at": time.time()})

    def drop(self, version: str) -> None:
        if self.client.collection_exists(version):
            self.client.delete_collection(version)

    def count(self, version: str) -> int:
        return self.client.count(version, exact=True).count

    def scroll(
        self,
        version: str,
        with_vectors: bool = False,
        payload: bool | list[str] = True,
        batch: int = 1024,
    ) -> Iterator[list[StorePoint]]:
        offset = None
        while True:
            points, offset = self.client.scroll(
                version, limit=batch, offset=offset, with_payload=payload, with_vectors=with_vectors
            )
            if points:
                yield [_from_client(p) for p in points]
            if offset is None:
                return

    def retrieve(self, version: str, ids: Sequence[str]) -> list[StorePoint]:
        points = self.client.retrieve(version, ids=list(ids), with_payload=True, with_vectors=True)
        return [_from_client(p) for p in points]

    def query(
        self,
        version: str,
        dense: Sequence[float] | None,
        sparse: SparseVec | None,
        limit: int,
        candidates: int = 50,
    ) -> list[StorePoint]:
        sparse_q = (
            models.SparseVector(indices=sparse.indices, values=sparse.values) if sparse else None
        )
        if dense is not None and sparse_q is not None:
            n = max(candidates, limit)
            res = self.client.query_points(
                version,
                prefetch=[
                    models.Prefetch(query=list(dense), using=DENSE, limit=n),
                    models.Prefetch(query=sparse_q, using=SPARSE, limit=n),
                ],
                query=models.RrfQuery(rrf=models.Rrf(k=RRF_K)),
                limit=limit,
                with_payload=True,
            )
        elif dense is not None or sparse_q is not None:
            using = DENSE if dense is not None else SPARSE
            q = list(dense) if dense is not None else sparse_q
            res = self.client.query_points(
                version, query=q, using=using, limit=limit, with_payload=True
            )
        else:
            raise ValueError("query needs a dense or a sparse vector")
        points = [_from_client(p) for p in res.points]
        return sorted(points, key=lambda p: (-p.score, p.id))

    def close(self) -> None:
        self.client.close()


def _from_client(p: Any) -> StorePoint:
    vec = p.vector if isinstance(getattr(p, "vector", None), dict) else {}
    sparse = vec.get(SPARSE)
    return StorePoint(
        id=str(p.id),
        payload=dict(p.payload or {}),
        dense=list(vec[DENSE]) if vec.get(DENSE) is not None else None,
        sparse=SparseVec(list(sparse.indices), list(sparse.values)) if sparse is not None else None,
        score=float(getattr(p, "score", 0.0) or 0.0),
    )
