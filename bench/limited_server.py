"""Servers on 127.0.0.1 that behave like a rate-limited provider (for the retry and adaptive
concurrency tests and the served benchmark): the stub model that answers 429 above N
requests at once, and a chat server that answers a script of statuses first."""

from __future__ import annotations

import threading
from typing import Any

from bench.local_http import LocalJSONServer, chat_completion
from bench.stub_server import StubServer


class LimitedStubServer(StubServer):
    """``StubServer`` that allows at most ``limit`` requests at once: above it, 429 with
    ``Retry-After: retry_after`` (as a provider's rate limit does). Counts ``throttled``
    answers and the most requests ever served at once (``peak``)."""

    def __init__(self, latency: float, limit: int, retry_after: str = "1"):
        self.limit, self.retry_after = limit, retry_after
        self.active = self.peak = self.throttled = 0
        self.gate = threading.Lock()
        super().__init__(latency)

    def respond(self, body: dict) -> tuple[int, Any]:
        with self.gate:
            if self.active >= self.limit:
                self.throttled += 1
                return 429, ({"error": "rate limited"}, {"Retry-After": self.retry_after})
            self.active += 1
            self.peak = max(self.peak, self.active)
        try:
            return super().respond(body)
        finally:
            with self.gate:
                self.active -= 1


class ScriptedStatusServer(LocalJSONServer):
    """A chat server that answers each entry of ``script`` first, ``(status, headers)``, or
    ``"reset"`` to close the connection without an answer; then ``content`` with 200.
    Records every request body (``bodies``)."""

    keep_alive = True

    def __init__(self, content: str, script: list[Any] | None = None):
        self.content = content
        self.script = list(script or [])
        self.bodies: list[dict] = []
        super().__init__()
        self.url = f"{self.root}/v1"

    def respond(self, body: dict) -> tuple[int, Any]:
        self.bodies.append(body)
        if self.script:
            step = self.script.pop(0)
            if step == "reset":
                return -1, None
            status, headers = step
            return status, ({"error": {"message": f"scripted {status}"}}, headers)
        return 200, chat_completion(self.content, body.get("model", "m"), 5, 7)
