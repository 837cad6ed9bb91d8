"""The one vector-store interface: versioned collections ``NAME@<hash>`` behind a name.

Two backends implement it: Qdrant Edge, Qdrant's own engine embedded in this process (a
path: ``modules/index/edge_store.py``), and a Qdrant server (an ``http(s)://`` URL:
``modules/index/server_store.py``). Both hold the same named vectors (``dense``: 384-d cosine;
``bm25``: sparse with the IDF modifier), the same payloads and the same RRF fusion, and
nothing above this module knows which one it talks to. A build writes a new version, then
switches the name to it atomically; old versions beyond ``keep`` are pruned.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from modules.errors import SageError
from modules.index.embeddings import SparseVec
from modules.index.store_points import DENSE, RRF_K, SPARSE, StorePoint  # noqa: F401 - the interface


class VectorStore(Protocol):
    """What every backend does (see the module docstring)."""

    location: str

    def alias_target(self, name: str) -> str | None: ...
    def has_plain(self, name: str) -> bool: ...
    def versions(self, name: str) -> list[tuple[str, float]]: ...
    def create_version(self, version: str, meta: dict[str, Any]) -> None: ...
    def upsert(self, version: str, points: Sequence[StorePoint]) -> None: ...
    def mark_complete(self, version: str) -> None: ...
    def is_complete(self, version: str) -> bool: ...
    def swap_alias(self, name: str, version: str) -> None: ...
    def drop(self, version: str) -> None: ...
    def count(self, version: str) -> int: ...
    def scroll(
        self,
        version: str,
        with_vectors: bool = False,
        payload: bool | list[str] = True,
        batch: int = 1024,
    ) -> Iterator[list[StorePoint]]: ...
    def retrieve(self, version: str, ids: Sequence[str]) -> list[StorePoint]: ...
    def query(
        self,
        version: str,
        dense: Sequence[float] | None,
        sparse: SparseVec | None,
        limit: int,
        candidates: int = 50,
    ) -> list[StorePoint]: ...
    def close(self) -> None: ...


def version_name(name: str, corpus_hash: str) -> str:
    return f"{name}@{corpus_hash}"


def resolve(store: VectorStore, name: str) -> str:
    """A name (or a version) -> the concrete version it stands for (SageError if none)."""
    target = store.alias_target(name)
    if target:
        return target
    if "@" in name and store.is_complete(name):
        return name
    if store.has_plain(name):
        return name
    raise SageError(f"collection {name!r} not found; run `sage index PATH --collection {name}`")


def prune_versions(store: VectorStore, name: str, keep: int) -> list[str]:
    """Drop the oldest ``name@*`` versions beyond ``keep``; never the current one."""
    current = store.alias_target(name)
    old = [v for v, _ in store.versions(name) if v != current]
    doomed = old[: max(0, len(old) - max(keep - 1, 0))]
    for v in doomed:
        store.drop(v)
    return doomed


def is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


_STORES: dict[str, VectorStore] = {}
_LOCK = threading.Lock()


def _key(location: str) -> str:
    return location if is_url(location) else str(Path(location).resolve())


def open_store(location: str, api_key: str | None = None) -> VectorStore:
    """The process-wide store for ``location``: a Qdrant server URL or an embedded path."""
    key = _key(location)
    with _LOCK:
        if key not in _STORES:
            if is_url(location):
                from modules.index.server_store import ServerStore

                _STORES[key] = ServerStore(location, api_key)
            else:
                from modules.index.edge_store import EdgeStore

                _STORES[key] = EdgeStore(Path(key))
        return _STORES[key]


def close_store(location: str) -> None:
    """Close and forget the store for ``location`` (its shards are flushed and closed)."""
    with _LOCK:
        store = _STORES.pop(_key(location), None)
    if store is not None:
        store.close()
