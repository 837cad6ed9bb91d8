"""The local LLM in process: llama.cpp's own server (xllamacpp), one copy per model.

xllamacpp ships a prebuilt CPU wheel (AVX2 baseline, no AVX-512/AMX code paths, no
compiler needed) that embeds llama-server: continuous batching over ``n_parallel`` slots,
a prompt (KV) cache per slot, thread safety and JSON-schema constrained decoding. Every
role (generator, agent, judge) and every thread share one server; concurrent requests
are decoded together, each in its own slot.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import threading
from pathlib import Path
from typing import Any

from dspy.lm15 import Response

from modules.errors import SageError
from modules.llm.chat_body import chat_body, chat_response

GGUF_MAGIC = b"GGUF"
PULL_HINT = "run `sage models pull` to (re)install it"


class ModelLoadError(SageError):
    """The local model file is missing, is not a GGUF file, or llama.cpp cannot load it."""


class LocalLMError(ValueError):
    """llama.cpp refused a request (e.g. the prompt does not fit the slot's context)."""


@dataclasses.dataclass(frozen=True)
class EngineSpec:
    """One loaded model: the same spec is the same server."""

    path: Path
    n_ctx: int = 8192  # per slot
    n_threads: int | None = None
    n_parallel: int = 1
    cache_ram_mib: int = 1024  # host-RAM prompt cache for idle slots


_SERVERS: dict[EngineSpec, Any] = {}
_SERVERS_LOCK = threading.Lock()


def check_model_file(path: Path) -> None:
    """Fail with one clear line before llama.cpp sees a missing or non-GGUF file."""
    if not path.is_file():
        raise ModelLoadError(f"{path}: local model file is missing; {PULL_HINT}")
    with path.open("rb") as fh:
        if fh.read(4) != GGUF_MAGIC:
            raise ModelLoadError(f"{path}: not a GGUF model file (corrupt?); {PULL_HINT}")


def open_server(spec: EngineSpec) -> Any:
    """The shared server for ``spec``'s model, loaded on first use.

    One copy of a model per process: the first caller's ``n_parallel`` sizes the slots and
    later callers share them (roles built for one run ask for the same number).
    """
    key = dataclasses.replace(spec, n_parallel=0)
    with _SERVERS_LOCK:
        server = _SERVERS.get(key)
        if server is None:
            server = _SERVERS[key] = _load(spec)
        return server


def _load(spec: EngineSpec) -> Any:
    import xllamacpp as xlc

    check_model_file(spec.path)
    threads = spec.n_threads or max(1, os.cpu_count() or 1)
    p = xlc.CommonParams()
    p.model.path = str(spec.path)
    p.n_parallel = spec.n_parallel
    p.n_ctx = spec.n_ctx * spec.n_parallel  # llama-server splits n_ctx between its slots
    p.cpuparams.n_threads = threads
    p.cpuparams_batch.n_threads = threads
    p.cache_ram_mib = spec.cache_ram_mib
    p.warmup = False
    p.verbosity = 0
    p.endpoint_metrics = True
    try:
        return xlc.Server(p)
    except RuntimeError as exc:
        raise ModelLoadError(
            f"{spec.path}: llama.cpp could not load the model (corrupt or truncated?); {PULL_HINT}"
        ) from exc


def system_info() -> str:
    """llama.cpp's CPU feature line of this build (which SIMD code paths it can run)."""
    import xllamacpp as xlc

    return str(xlc.get_system_info()).strip()


class LocalEngine:
    """A DSPy engine that sends chat requests to the in-process llama.cpp server.

    Structured output is enforced with the signature's JSON schema (the fields named in
    ``field_chars`` capped at their length, every other string at ``max_string_chars``), so
    a 0.5B model still returns JSON that DSPy parses. The
    server's per-request timings (``prompt_n``, ``cache_n``, ...) are kept in ``timings``
    (the newest 10,000) for benchmarks.
    """

    supports_response_schema = True
    supported_params = ("response_format", "temperature", "max_tokens", "stop", "seed")

    def __init__(
        self,
        spec: EngineSpec,
        max_string_chars: int = 400,
        field_chars: dict[str, int] | None = None,
    ):
        self.spec = spec
        self.max_string_chars = max_string_chars
        self.field_chars = dict(field_chars or {})
        self.timings: collections.deque[dict[str, Any]] = collections.deque(maxlen=10_000)

    @property
    def server(self) -> Any:
        return open_server(self.spec)

    def complete(self, request: Any) -> Response:
        body = chat_body(request, self.max_string_chars, self.field_chars)
        result = self.server.handle_chat_completions(body)
        if "error" in result:
            err = result["error"]
            raise LocalLMError(f"local LLM: {err.get('message', err)}")
        if timings := result.get("timings"):
            self.timings.append(timings)
        return chat_response(result, f"local/{self.spec.path.name}")

    def stream(self, request: Any):  # pragma: no cover - DSPy streaming is not used by sage
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        return None
