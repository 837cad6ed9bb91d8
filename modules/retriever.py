"""QdrantRetriever: hybrid (dense + BM25, RRF-fused), dense-only or sparse-only search."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from modules import embeddings, qdrant_store
from modules.errors import SageError
from modules.passages import Passage

Mode = Literal["hybrid", "dense", "sparse"]
MODES: tuple[str, ...] = ("hybrid", "dense", "sparse")


class QdrantRetriever:
    """A ``modules.passages.Retriever`` over one Qdrant collection or alias."""

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
        self.client = qdrant_store.get_client(location, api_key)
        self.collection = collection
        self.models_dir = Path(models_dir)
        self.mode: Mode = mode
        self.k = k
        self.candidates = candidates
        qdrant_store.resolve(self.client, collection)  # fail early with a clear message

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
        points = qdrant_store.query(
            self.client, self.collection, dense, sparse, limit, self.candidates
        )
        return [_passage(p) for p in points]


def _passage(point: Any) -> Passage:
    p = point.payload or {}
    return Passage(
        id=str(p.get("pid", point.id)),
        doc_id=str(p.get("doc_id", "")),
        title=str(p.get("title", "")),
        text=str(p.get("text", "")),
        score=float(point.score or 0.0),
    )


def open_retriever(
    settings: Any, collection: str | None = None, mode: Mode = "hybrid", k: int = 3
) -> QdrantRetriever:
    """A retriever from Settings (qdrant location, models dir, default collection)."""
    key = settings.qdrant_api_key.get_secret_value() if settings.qdrant_api_key else None
    return QdrantRetriever(
        settings.qdrant_location,
        collection or settings.collection,
        settings.models_dir,
        mode=mode,
        k=k,
        api_key=key,
    )
