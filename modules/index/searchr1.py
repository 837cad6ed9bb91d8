"""A retriever over a Search-R1 retrieval server (E5 + FAISS over wiki-18, as RL users run it).

Protocol: ``POST {url}/retrieve`` with ``{"queries": [q], "topk": k, "return_scores": true}``
answers ``{"result": [[{"document": {"id", "contents"}, "score"}, ...]]}``, one list per
query, ``contents`` being ``"Title"\\ntext``. The SAGE paper calibrates the difficulty S on
this retriever, so S transfers to training only when generation searches through the same
one. Requests go over keep-alive connections (one per calling thread, reopened when the
server closed it); timeouts, resets, 408, 429 and 5xx are retried with sage's one retry
policy (modules/retries.py: Retry-After honoured, else jittered capped backoff), then
raised as a ConnectionError naming the server; any other 4xx, or an answer that does not
follow the protocol, is a SageError naming the server at once.
"""

from __future__ import annotations

import http.client
import json
import threading
import urllib.parse
from typing import Any

from modules.errors import SageError
from modules.index.corpus import split_title_line
from modules.index.passages import Passage
from modules.retries import RetryPolicy, is_transient_status, retry_after_seconds


class _Transient(Exception):
    """A failure worth retrying: (status or None, Retry-After seconds or None)."""

    def __init__(self, message: str, status: int | None = None, retry_after: float | None = None):
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


class SearchR1Retriever:
    """A ``modules.index.passages.Retriever`` that asks a Search-R1 retrieval server."""

    def __init__(
        self, url: str, k: int = 3, timeout: float = 30.0, retries: int = 6, backoff: float = 0.5
    ):
        self.url = url.rstrip("/")
        self.endpoint = self.url if self.url.endswith("/retrieve") else f"{self.url}/retrieve"
        self.collection = f"searchr1:{self.url}"  # what manifests record as the index
        self.k = k
        self.timeout = timeout
        self.policy = RetryPolicy(retries=retries, base=backoff)
        parts = urllib.parse.urlsplit(self.endpoint)
        self._https = parts.scheme == "https"
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port
        self._path = parts.path or "/retrieve"
        self._local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
            conn = self._local.conn = cls(self._host, self._port, timeout=self.timeout)
        return conn

    def _once(self, data: bytes) -> Any:
        conn = self._conn()
        try:
            conn.request("POST", self._path, data, {"Content-Type": "application/json"})
            resp = conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException) as exc:  # reset, refused, timeout
            conn.close()
            self._local.conn = None
            raise _Transient(str(exc) or type(exc).__name__) from exc
        if resp.status >= 400:
            if is_transient_status(resp.status):
                wait = retry_after_seconds(resp.getheader("Retry-After"))
                raise _Transient(f"HTTP {resp.status}", resp.status, wait)
            raise SageError(f"Search-R1 retriever {self.endpoint}: HTTP {resp.status}")
        try:
            return json.loads(body)
        except json.JSONDecodeError as exc:
            raise SageError(
                f"Search-R1 retriever {self.endpoint}: answer is not JSON ({exc.msg})"
            ) from exc

    def _post(self, body: dict[str, Any]) -> Any:
        data = json.dumps(body).encode()

        def transient(exc: BaseException) -> tuple[int | None, float | None] | None:
            return (exc.status, exc.retry_after) if isinstance(exc, _Transient) else None

        try:
            return self.policy.run(lambda: self._once(data), transient)
        except _Transient as exc:
            raise ConnectionError(
                f"Search-R1 retriever {self.endpoint} unreachable after "
                f"{self.policy.retries + 1} tries: {exc}"
            ) from None

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
    return Passage(
        id=doc_id, doc_id=doc_id, title=title, text=text, score=float(hit.get("score") or 0.0)
    )
