"""A DSPy engine for self-hosted OpenAI-compatible servers (vLLM, SGLang, llama.cpp server):
``POST {api_base}/chat/completions`` through one pooled HTTP client, with the signature's
JSON schema as ``response_format``.

It replaces LiteLLM on the ``api_base`` path, where LiteLLM's per-call work (model-map
lookups, logging objects, its own client pool behind a lock) cost more CPU than the rest
of sage per call (docs/BENCHMARKS.md). Transient failures (connection errors, timeouts,
429 and 5xx answers) are retried with backoff, then raised as DSPy's transient LM errors,
which a seed task retries.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import httpx
from dspy.lm15 import Response
from dspy.utils.exceptions import (
    LMInvalidRequestError,
    LMRateLimitError,
    LMServerError,
    LMTimeoutError,
    LMTransportError,
)

from modules.chat_body import chat_body, chat_response

_CLIENTS: dict[tuple[str, int, float], httpx.Client] = {}
_CLIENTS_LOCK = threading.Lock()


def _client(base: str, pool: int, timeout: float) -> httpx.Client:
    """One HTTP client per server and pool size, shared by every role and thread."""
    key = (base, pool, timeout)
    with _CLIENTS_LOCK:
        if key not in _CLIENTS:
            limits = httpx.Limits(max_connections=pool, max_keepalive_connections=pool)
            _CLIENTS[key] = httpx.Client(base_url=base, limits=limits, timeout=timeout)
        return _CLIENTS[key]


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
        pool: int = 16,
        timeout: float = 600.0,
        retries: int = 3,
        backoff: float = 1.0,
    ):
        self.model = model
        self.api_base = api_base.rstrip("/")
        self.supports_response_schema = response_schema
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.pool, self.timeout = pool, timeout
        self.retries, self.backoff = retries, backoff

    def complete(self, request: Any) -> Response:
        body = {"model": served_name(self.model), **chat_body(request)}
        client = _client(self.api_base, self.pool, self.timeout)
        for attempt in range(self.retries + 1):
            try:
                resp = client.post("/chat/completions", json=body, headers=self.headers)
                if resp.status_code < 400:
                    return chat_response(resp.json(), self.model)
                error = _status_error(resp, self.model)
            except httpx.TimeoutException as exc:
                error = LMTimeoutError(str(exc) or "timed out", model=self.model)
            except httpx.TransportError as exc:
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


def _status_error(resp: httpx.Response, model: str) -> Exception:
    text = resp.text[:300]
    if resp.status_code == 429:
        return LMRateLimitError(text, model=model, status=429)
    if resp.status_code >= 500:
        return LMServerError(text, model=model, status=resp.status_code)
    return LMInvalidRequestError(text, model=model, status=resp.status_code)
