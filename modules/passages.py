"""The passage record and the retriever interface the DSPy programs search through."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Passage:
    """One retrievable passage of a corpus document."""

    id: str  # stable content-hash id of the passage
    doc_id: str  # id of the source document
    title: str
    text: str
    score: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def render(self) -> str:
        """How a passage is shown to a model: '[id] Title: text'."""
        return f"[{self.id}] {self.title}: {self.text}"


@runtime_checkable
class Retriever(Protocol):
    """Anything that returns the top-k passages for a query (Qdrant in production)."""

    def search(self, query: str, k: int | None = None) -> list[Passage]: ...
