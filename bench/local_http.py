"""A JSON-over-HTTP server on 127.0.0.1 for benchmarks and tests (a real socket, no mock):
the stub model server, the tests' recording OpenAI server and Search-R1 server."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any


class LocalJSONServer:
    """Answers each POST with ``respond(body) -> (status, reply)``; a subclass that speaks a
    REST API overrides ``handle(method, path, body)`` instead (GET, PUT, PATCH, DELETE too;
    ``body`` is None when a request has none). A reply is JSON-able, raw ``bytes`` (sent as
    text/plain, e.g. to answer something that is not JSON) or None (an empty body), or a
    (reply, headers) pair to send extra headers; a negative status drops the connection
    without an answer (a reset)."""

    keep_alive = False  # HTTP/1.1 keep-alive connections (the served engine reuses them)

    def __init__(self) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if outer.keep_alive else "HTTP/1.0"

            def _serve(self, method: str) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, reply = outer.handle(method, self.path, json.loads(raw) if raw else None)
                if status < 0:  # drop the connection without an answer (a reset)
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                headers: dict[str, str] = {}
                if isinstance(reply, tuple):  # (reply, extra headers), e.g. Retry-After
                    reply, headers = reply
                if isinstance(reply, bytes):
                    data, kind = reply, "text/plain"
                else:
                    data = b"" if reply is None else json.dumps(reply).encode()
                    kind = "application/json"
                self.send_response(status)
                if reply is not None:
                    self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                for name, value in headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_POST(self):  # noqa: N802 - http.server API
                self._serve("POST")

            def do_GET(self):  # noqa: N802
                self._serve("GET")

            def do_PUT(self):  # noqa: N802
                self._serve("PUT")

            def do_PATCH(self):  # noqa: N802
                self._serve("PATCH")

            def do_DELETE(self):  # noqa: N802
                self._serve("DELETE")

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 256
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def handle(self, method: str, path: str, body: Any) -> tuple[int, Any]:
        if method != "POST":
            return 405, {"error": f"{method} not supported"}
        return self.respond(body)

    def respond(self, body: dict[str, Any]) -> tuple[int, Any]:
        raise NotImplementedError

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def chat_completion(content: str, model: str, prompt_tokens: int, completion_tokens: int) -> dict:
    """An OpenAI chat-completion reply carrying ``content``."""
    return {
        "id": "stub", "object": "chat.completion", "created": 0, "model": model,
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": content}}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                  "total_tokens": prompt_tokens + completion_tokens},
    }  # fmt: skip
