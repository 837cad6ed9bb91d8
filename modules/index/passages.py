"""The passage record and the retriever interface the DSPy programs search through."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable


@dataclass(frozen=True)
class Passage:
    """One retrievable passage of a corpus document."""

    id: str  # stable content-hash id of the passage
    doc_id: str  # id of the source document
    title: str
    text: str
    score: float = 0.0


@runtime_checkable
class Retriever(Protocol):
    """Anything that returns the top-k passages for a query (Qdrant in production)."""

    def search(self, query: str, k: int | None = None) -> list[Passage]: ...
