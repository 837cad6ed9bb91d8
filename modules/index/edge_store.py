"""The embedded backend: Qdrant Edge (Qdrant's Rust engine in this process), one shard per
collection version.

Layout under the store's directory::

    shards/<NAME@hash>/     an Edge shard (no write-ahead log), immutable once complete
    versions/<NAME@hash>.json   its metadata: source, counts, created/activated, complete
    aliases/<NAME>          the version NAME points at (a file replaced atomically)

A version is written by one process, then flushed, indexed (HNSW above Edge's size
threshold) and closed before it is marked complete; from then on it is only read. A shard
without a write-ahead log takes no lock, so any number of processes (Dask workers) can load
a complete version at once; Edge itself does not protect a shard that is still being
written, which is why sage never publishes one.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from modules.errors import SageError
from modules.index.embeddings import DENSE_DIM, SparseVec
from modules.index.store_points import DENSE, RRF_K, SPARSE, StorePoint

FORMAT = {"backend": "qdrant-edge", "format": 1}
SEARCH_THREADS = 1  # per query: Edge holds the GIL, and a 2nd thread cost 4x the CPU (bench)
HNSW_EF = 256  # dense HNSW search breadth: recall@3/@10 equal to exact search at 17.5k


def _edge() -> Any:
    import qdrant_edge

    return qdrant_edge


def _config(**options: Any) -> Any:
    e = _edge()
    return e.EdgeConfig(
        vectors={DENSE: e.EdgeVectorParams(size=DENSE_DIM, distance=e.Distance.Cosine)},
        sparse_vectors={SPARSE: e.EdgeSparseVectorParams(modifier=e.Modifier.Idf)},
        wal_enabled=False,
        **options,
    )


def _write_json(path: Path, data: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(data, indent=2))
    os.replace(tmp, path)


def _point_id(pid: Any) -> str:
    return str(pid)


class EdgeStore:
    """A ``modules.index.store.VectorStore`` on Qdrant Edge shards under one directory."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self.location = str(self.root)
        if (self.root / "meta.json").is_file() and (self.root / "collection").is_dir():
            raise SageError(
                f"{self.root} holds an index built by an older sage (qdrant-client local mode), "
                f"which this version cannot read: delete {self.root} (or point SAGE_DATA_DIR "
                "elsewhere) and run `sage index CORPUS --collection NAME` again"
            )
        for sub in ("shards", "versions", "aliases"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        marker = self.root / "store.json"
        if not marker.exists():
            _write_json(marker, FORMAT)
        self._lock = threading.RLock()
        self._readers: dict[str, Any] = {}
        self._writers: dict[str, Any] = {}

    # -- paths and metadata ---------------------------------------------------------------
    def _shard_dir(self, version: str) -> Path:
        return self.root / "shards" / version

    def _meta_path(self, version: str) -> Path:
        return self.root / "versions" / f"{version}.json"

    def _meta(self, version: str) -> dict[str, Any]:
        try:
            return json.loads(self._meta_path(version).read_text())
        except FileNotFoundError:
            return {}
        except json.JSONDecodeError as exc:
            raise SageError(f"{self._meta_path(version)}: corrupt ({exc.msg})") from exc

    def _set_meta(self, version: str, **changes: Any) -> None:
        _write_json(self._meta_path(version), {**self._meta(version), **changes})

    # -- shards ---------------------------------------------------------------------------
    def _shard(self, version: str) -> Any:
        """The writer of a version being built, else a (cached) read-only load."""
        with self._lock:
            if version in self._writers:
                return self._writers[version]
            if version not in self._readers:
                path = self._shard_dir(version)
                if not self.is_complete(version):
                    raise SageError(f"collection version {version!r} is missing or unfinished")
                try:
                    config = _config(max_search_threads=SEARCH_THREADS)
                    self._readers[version] = _edge().EdgeShard.load(str(path), config)
                except Exception as exc:  # the engine raises plain Exceptions
                    raise SageError(f"{path}: cannot open the shard: {exc}") from exc
            return self._readers[version]

    def _close(self, version: str) -> None:
        with self._lock:
            for cache in (self._readers, self._writers):
                shard = cache.pop(version, None)
                if shard is not None:
                    shard.close()

    # -- names and versions ---------------------------------------------------------------
    def alias_target(self, name: str) -> str | None:
        path = self.root / "aliases" / name
        return path.read_text().strip() if path.is_file() else None

    def has_plain(self, name: str) -> bool:
        return False  # every embedded collection is a version behind a name

    def versions(self, name: str) -> list[tuple[str, float]]:
        out = []
        for meta in (self.root / "versions").glob(f"{name}@*.json"):
            version = meta.name[: -len(".json")]
            m = self._meta(version)
            out.append((version, float(m.get("activated_at", m.get("created_at", 0.0)))))
        return sorted(out, key=lambda x: x[1])

    def create_version(self, version: str, meta: dict[str, Any]) -> None:
        self.drop(version)  # an unfinished earlier build of the same content
        try:
            shard = _edge().EdgeShard.create(str(self._shard_dir(version)), _config())
        except Exception as exc:
            raise SageError(f"{self._shard_dir(version)}: cannot create a shard: {exc}") from exc
        with self._lock:
            self._writers[version] = shard
        _write_json(
            self._meta_path(version), {**meta, "created_at": time.time(), "complete": False}
        )

    def upsert(self, version: str, points: Sequence[StorePoint]) -> None:
        if not points:
            return
        e = _edge()
        batch = []
        for p in points:
            vectors: dict[str, Any] = {}
            if p.dense is not None:
                vectors[DENSE] = list(p.dense)
            if p.sparse is not None:
                if len(p.sparse.indices) != len(p.sparse.values):  # Edge would panic
                    raise SageError(f"point {p.id}: sparse indices and values differ in length")
                vectors[SPARSE] = e.SparseVector(indices=p.sparse.indices, values=p.sparse.values)
            batch.append(e.Point(uuid.UUID(p.id), vectors, p.payload))
        with self._lock:
            shard = self._writers.get(version)
        if shard is None:
            raise SageError(f"collection version {version!r} is complete and read-only")
        shard.update(e.UpdateOperation.upsert_points(batch))

    def mark_complete(self, version: str) -> None:
        """Flush, build the HNSW index where Edge wants one, close: now read-only."""
        with self._lock:
            shard = self._writers.pop(version, None)
        if shard is not None:
            shard.flush()
            shard.optimize()
            shard.close()
        self._set_meta(version, complete=True)

    def is_complete(self, version: str) -> bool:
        return bool(self._meta(version).get("complete")) and self._shard_dir(version).is_dir()

    def swap_alias(self, name: str, version: str) -> None:
        tmp = self.root / "aliases" / f".{name}.tmp"
        tmp.write_text(version + "\n")
        os.replace(tmp, self.root / "aliases" / name)  # readers see the old or the new, never half
        self._set_meta(version, activated_at=time.time())

    def drop(self, version: str) -> None:
        self._close(version)
        shutil.rmtree(self._shard_dir(version), ignore_errors=True)
        self._meta_path(version).unlink(missing_ok=True)

    # -- points -----------------------------------------------------------------------------
    def count(self, version: str) -> int:
        return int(self._shard(version).count(_edge().CountRequest(exact=True)))

    def scroll(
        self,
        version: str,
        with_vectors: bool = False,
        payload: bool | list[str] = True,
        batch: int = 1024,
    ) -> Iterator[list[StorePoint]]:
        e, shard, offset = _edge(), self._shard(version), None
        while True:
            page, offset = shard.scroll(
                e.ScrollRequest(
                    limit=batch, offset=offset, with_payload=payload, with_vector=with_vectors
                )
            )
            if page:
                yield [_from_edge(p) for p in page]
            if offset is None:
                return

    def retrieve(self, version: str, ids: Sequence[str]) -> list[StorePoint]:
        if not ids:
            return []
        points = self._shard(version).retrieve([uuid.UUID(i) for i in ids], True, True)
        return [_from_edge(p) for p in points]

    def query(
        self,
        version: str,
        dense: Sequence[float] | None,
        sparse: SparseVec | None,
        limit: int,
        candidates: int = 50,
    ) -> list[StorePoint]:
        e = _edge()
        near_dense = e.Query.Nearest(list(dense), using=DENSE) if dense is not None else None
        ef = e.SearchParams(hnsw_ef=max(HNSW_EF, candidates))
        near_sparse = (
            e.Query.Nearest(
                e.SparseVector(indices=sparse.indices, values=sparse.values), using=SPARSE
            )
            if sparse is not None
            else None
        )
        if near_dense is not None and near_sparse is not None:
            n = max(candidates, limit)
            req = e.QueryRequest(
                limit=limit,
                prefetches=[
                    e.Prefetch(limit=n, query=near_dense),
                    e.Prefetch(limit=n, query=near_sparse),
                ],
                query=e.Fusion.Rrf(k=RRF_K),
                with_payload=True,
            )
        elif near_dense is not None:
            req = e.QueryRequest(limit=limit, query=near_dense, params=ef, with_payload=True)
        elif near_sparse is not None:
            req = e.QueryRequest(limit=limit, query=near_sparse, with_payload=True)
        else:
            raise ValueError("query needs a dense or a sparse vector")
        points = [_from_edge(p) for p in self._shard(version).query(req)]
        return sorted(points, key=lambda p: (-p.score, p.id))  # RRF ties: a stable order

    def close(self) -> None:
        with self._lock:
            versions = list({*self._readers, *self._writers})
        for version in versions:
            self._close(version)


def _from_edge(p: Any) -> StorePoint:
    vec = getattr(p, "vector", None) or {}
    sparse = vec.get(SPARSE)
    return StorePoint(
        id=_point_id(p.id),
        payload=dict(p.payload or {}),
        dense=list(vec[DENSE]) if vec.get(DENSE) is not None else None,
        sparse=SparseVec(list(sparse.indices), list(sparse.values)) if sparse is not None else None,
        score=float(getattr(p, "score", 0.0) or 0.0),
    )
