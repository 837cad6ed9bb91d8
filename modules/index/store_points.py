"""What a vector store holds, shared by the interface (``modules/index/store.py``) and its
backends: the named vectors, the fusion constant and the point record."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from modules.index.embeddings import SparseVec

DENSE = "dense"
SPARSE = "bm25"
RRF_K = 2  # Qdrant's default rank constant: the ranking sage has always had


@dataclass
class StorePoint:
    """A point as the store keeps it: id, payload, vectors, and a score from a query."""

    id: str
    payload: dict[str, Any] = field(default_factory=dict)
    dense: list[float] | None = None
    sparse: SparseVec | None = None
    score: float = 0.0
