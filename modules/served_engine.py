"""A DSPy engine for self-hosted OpenAI-compatible servers (vLLM, SGLang, llama.cpp server):
``POST {api_base}/chat/completions`` over keep-alive connections (one per calling thread,
so the pool is as large as the requests in flight and has no lock), with the signature's
JSON schema as ``response_format``.

It replaces LiteLLM on the ``api_base`` path, where LiteLLM's per-call work (model-map
lookups, logging objects, its own client pool behind a lock) cost more CPU than the rest
of sage per call; the standard library's HTTP client costs less than httpx here too
(docs/BENCHMARKS.md). Transient failures (connection errors, timeouts, 429 and 5xx
answers) are retried with backoff, then raised as DSPy's transient LM errors, which a
seed task retries.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
import urllib.parse
from typing import Any

from dspy.lm15 import Response
from dspy.utils.exceptions import (
    LMInvalidRequestError,
    LMRateLimitError,
    LMServerError,
    LMTimeoutError,
    LMTransportError,
)

from modules.chat_body import chat_body, chat_response


class _Connections:
    """Keep-alive HTTP connections to one server, one per calling thread."""

    def __init__(self, base: str, timeout: float):
        url = urllib.parse.urlsplit(base)
        self.https = url.scheme == "https"
        self.host = url.hostname or "127.0.0.1"
        self.port = url.port or (443 if self.https else 80)
        self.prefix = url.path.rstrip("/")
        self.timeout = timeout
        self.local = threading.local()

    def _conn(self) -> http.client.HTTPConnection:
        conn = getattr(self.local, "conn", None)
        if conn is None:
            cls = http.client.HTTPSConnection if self.https else http.client.HTTPConnection
            conn = self.local.conn = cls(self.host, self.port, timeout=self.timeout)
        return conn

    def post(self, path: str, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """(status, body); a connection the server closed is reopened once."""
        for retry in (0, 1):
            conn = self._conn()
            try:
                conn.request("POST", self.prefix + path, body, headers)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                conn.close()
                self.local.conn = None
                if retry:
                    raise
        raise AssertionError("unreachable")


_POOLS: dict[tuple[str, float], _Connections] = {}
_POOLS_LOCK = threading.Lock()


def _connections(base: str, timeout: float) -> _Connections:
    with _POOLS_LOCK:
        if (base, timeout) not in _POOLS:
            _POOLS[(base, timeout)] = _Connections(base, timeout)
        return _POOLS[(base, timeout)]


def served_name(model: str) -> str:
    """'hosted_vllm/Qwen/Qwen2.5-7B-Instruct' -> 'Qwen/Qwen2.5-7B-Instruct' (what the server
    knows the model as)."""
    return model.split("/", 1)[1] if "/" in model else model


class ServedEngine:
    """Chat completions against an OpenAI-compatible server (see the module docstring)."""

    supported_params = ("response_format", "temperature", "max_tokens", "stop", "seed")

    def __init__(
        self,
        model: str,
        api_base: str,
        api_key: str | None = None,
        response_schema: bool = True,
        timeout: float = 600.0,
        retries: int = 3,
        backoff: float = 1.0,
    ):
        self.model = model
        self.api_base = api_base.rstrip("/")
        self.supports_response_schema = response_schema
        self.headers = {"Content-Type": "application/json"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"
        self.timeout = timeout
        self.retries, self.backoff = retries, backoff

    def complete(self, request: Any) -> Response:
        body = json.dumps({"model": served_name(self.model), **chat_body(request)}).encode()
        conns = _connections(self.api_base, self.timeout)
        for attempt in range(self.retries + 1):
            try:
                status, data = conns.post("/chat/completions", body, self.headers)
                if status < 400:
                    return chat_response(json.loads(data), self.model)
                error = _status_error(status, data, self.model)
            except TimeoutError as exc:  # socket.timeout
                error = LMTimeoutError(str(exc) or "timed out", model=self.model)
            except (OSError, http.client.HTTPException) as exc:
                error = LMTransportError(str(exc) or type(exc).__name__, model=self.model)
            if isinstance(error, LMInvalidRequestError) or attempt == self.retries:
                raise error
            time.sleep(self.backoff * 2**attempt)
        raise AssertionError("unreachable")

    def stream(self, request: Any):  # pragma: no cover - DSPy streaming is not used by sage
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        return None


def _status_error(status: int, data: bytes, model: str) -> Exception:
    text = data[:300].decode("utf-8", "replace")
    if status == 429:
        return LMRateLimitError(text, model=model, status=429)
    if status >= 500:
        return LMServerError(text, model=model, status=status)
    return LMInvalidRequestError(text, model=model, status=status)
