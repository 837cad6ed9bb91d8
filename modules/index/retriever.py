"""QdrantRetriever: hybrid (dense + BM25, RRF-fused), dense-only or sparse-only search over
one version of a collection in the vector store (embedded Edge or a server)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from modules.errors import SageError
from modules.index import embeddings, store
from modules.index.passages import Passage
from modules.index.searchr1 import SearchR1Retriever

Mode = Literal["hybrid", "dense", "sparse"]
MODES: tuple[str, ...] = ("hybrid", "dense", "sparse")


class QdrantRetriever:
    """A ``modules.index.passages.Retriever`` over one collection version (a name resolves to the
    version it points at when the retriever opens, so a re-index mid-run changes nothing)."""

    def __init__(
        self,
        location: str,
        collection: str,
        models_dir: Path,
        mode: Mode = "hybrid",
        k: int = 3,
        api_key: str | None = None,
        candidates: int = 50,
    ) -> None:
        if mode not in MODES:
            raise SageError(f"retriever mode {mode!r} is not one of {', '.join(MODES)}")
        self.store = store.open_store(location, api_key)
        self.collection = store.resolve(self.store, collection)  # fails early, clearly
        self.models_dir = Path(models_dir)
        self.mode: Mode = mode
        self.k = k
        self.candidates = candidates

    def search(self, query: str, k: int | None = None) -> list[Passage]:
        """Top-k passages for ``query`` (k defaults to the retriever's k)."""
        limit = k or self.k
        if not query.strip():
            return []
        dense = embeddings.query_dense(self.models_dir, query) if self.mode != "sparse" else None
        sparse = embeddings.query_sparse(self.models_dir, query) if self.mode != "dense" else None
        if sparse is not None and not sparse.indices:  # only stop words: BM25 has nothing
            if self.mode == "sparse":
                return []
            sparse = None
        points = self.store.query(self.collection, dense, sparse, limit, self.candidates)
        return [_passage(p) for p in points]


def _passage(point: Any) -> Passage:
    p = point.payload
    return Passage(
        id=str(p.get("pid", point.id)),
        doc_id=str(p.get("doc_id", "")),
        title=str(p.get("title", "")),
        text=str(p.get("text", "")),
        score=float(point.score or 0.0),
    )


def open_retriever(
    settings: Any, collection: str | None = None, mode: Mode = "hybrid", k: int = 3
) -> QdrantRetriever | SearchR1Retriever:
    """The retriever the settings name: a Search-R1 server (setting ``retriever``), else the
    Qdrant index (location, models dir, default collection)."""
    if settings.searchr1_url:
        return SearchR1Retriever(settings.searchr1_url, k=k)
    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    return QdrantRetriever(
        settings.qdrant_location,
        collection or settings.collection,
        settings.models_dir,
        mode=mode,
        k=k,
        api_key=key,
    )
