"""A retriever over a Search-R1 retrieval server (E5 + FAISS over wiki-18, as RL users run it).

Protocol: ``POST {url}/retrieve`` with ``{"queries": [q], "topk": k, "return_scores": true}``
answers ``{"result": [[{"document": {"id", "contents"}, "score"}, ...]]}``, one list per
query, ``contents`` being ``"Title"\\ntext``. The SAGE paper calibrates the difficulty S on
this retriever, so S transfers to training only when generation searches through the same
one. Timeouts and connection errors are retried, then raised as transient errors (a flow
retries its task); an answer that does not follow the protocol is a SageError naming the
server.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from typing import Any

from modules.corpus import split_title_line
from modules.errors import SageError
from modules.passages import Passage


class SearchR1Retriever:
    """A ``modules.passages.Retriever`` that asks a Search-R1 retrieval server."""

    def __init__(
        self, url: str, k: int = 3, timeout: float = 30.0, retries: int = 3, backoff: float = 0.5
    ):
        self.url = url.rstrip("/")
        self.endpoint = self.url if self.url.endswith("/retrieve") else f"{self.url}/retrieve"
        self.collection = f"searchr1:{self.url}"  # what manifests record as the index
        self.k = k
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff

    def _post(self, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()
        req = urllib.request.Request(
            self.endpoint, data=data, headers={"Content-Type": "application/json"}
        )
        last: Exception | None = None
        for attempt in range(self.retries + 1):
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read())
            except urllib.error.HTTPError as exc:
                if exc.code < 500:
                    msg = f"Search-R1 retriever {self.endpoint}: HTTP {exc.code}"
                    raise SageError(msg) from exc
                last = exc
            except json.JSONDecodeError as exc:
                raise SageError(
                    f"Search-R1 retriever {self.endpoint}: answer is not JSON ({exc.msg})"
                ) from exc
            except (TimeoutError, OSError) as exc:  # URLError, refused, reset, timeout
                last = exc
            if attempt < self.retries:
                time.sleep(self.backoff * 2**attempt)
        raise ConnectionError(
            f"Search-R1 retriever {self.endpoint} unreachable after {self.retries + 1} tries: "
            f"{last}"
        )

    def search(self, query: str, k: int | None = None) -> list[Passage]:
        """Top-k passages for ``query`` from the server."""
        if not query.strip():
            return []
        answer = self._post({"queries": [query], "topk": k or self.k, "return_scores": True})
        try:
            hits = answer["result"][0]
            return [_passage(h) for h in hits]
        except (KeyError, IndexError, TypeError, AttributeError) as exc:
            raise SageError(
                f"Search-R1 retriever {self.endpoint}: malformed answer (expected "
                f'{{"result": [[{{"document": {{"id", "contents"}}, "score"}}]]}}): '
                f"{str(answer)[:120]}"
            ) from exc


def _passage(hit: dict[str, Any]) -> Passage:
    doc = hit["document"]
    title, text = split_title_line(str(doc["contents"]))
    doc_id = str(doc.get("id", ""))
    return Passage(id=doc_id, doc_id=doc_id, title=title, text=text,
                   score=float(hit.get("score") or 0.0))  # fmt: skip
