"""A JSON-over-HTTP server on 127.0.0.1 for benchmarks and tests (a real socket, no mock):
the stub model server, the tests' recording OpenAI server and Search-R1 server."""

from __future__ import annotations

import http.server
import json
import threading
from typing import Any


class LocalJSONServer:
    """Answers each POST with ``respond(body) -> (status, JSON reply or None)``."""

    keep_alive = False  # HTTP/1.1 keep-alive connections (the served engine reuses them)

    def __init__(self) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1" if outer.keep_alive else "HTTP/1.0"

            def do_POST(self):  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                status, reply = outer.respond(body)
                data = b"" if reply is None else json.dumps(reply).encode()
                self.send_response(status)
                if reply is not None:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.request_queue_size = 256
        self.root = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

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
