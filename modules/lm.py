"""The one LM factory: 'local' = in-process llama.cpp; anything else = a LiteLLM model string."""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy
from dspy.lm15 import Message, Response, TextPart, Usage

from modules.settings import LOCAL_LM

# Offline-safe defaults: never fetch LiteLLM's remote cost map or a hub model.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

_LLAMA_CACHE: dict[tuple[str, int, int | None], Any] = {}
_LLAMA_LOCK = threading.Lock()


@dataclass(frozen=True)
class LMConfig:
    """What the factory needs to build one LM (a slice of Settings)."""

    model: str = LOCAL_LM
    models_dir: Path | None = None
    api_base: str | None = None
    api_key: str | None = None
    max_tokens: int = 768
    temperature: float = 0.7
    n_ctx: int = 8192
    n_threads: int | None = None
    cache: bool = True
    response_schema: bool | None = None


def _load_llama(path: Path, n_ctx: int, n_threads: int | None) -> Any:
    key = (str(path), n_ctx, n_threads)
    with _LLAMA_LOCK:
        if key not in _LLAMA_CACHE:
            from llama_cpp import Llama

            _LLAMA_CACHE[key] = Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads or max(1, os.cpu_count() or 1),
                verbose=False,
            )
        return _LLAMA_CACHE[key]


def _schema_of(response_format: Any) -> dict[str, Any] | None:
    """The JSON schema inside an OpenAI-style response_format, if any."""
    if not isinstance(response_format, dict):
        return None
    if "json_schema" in response_format:
        inner = response_format["json_schema"]
        return inner.get("schema", inner) if isinstance(inner, dict) else None
    return response_format.get("schema")


def cap_strings(schema: Any, max_chars: int) -> Any:
    """Give every string property without a maxLength one, so a small model cannot ramble."""
    if isinstance(schema, dict):
        out = {k: cap_strings(v, max_chars) for k, v in schema.items()}
        if out.get("type") == "string" and "enum" not in out and "maxLength" not in out:
            out["maxLength"] = max_chars
        return out
    if isinstance(schema, list):
        return [cap_strings(v, max_chars) for v in schema]
    return schema


class LlamaCppEngine:
    """A DSPy engine running a GGUF model in this process with llama-cpp-python.

    Structured output is enforced with llama.cpp's JSON-schema grammar, so a small
    model still returns parseable JSON for DSPy's JSONAdapter. Calls are serialised
    with a lock: one llama context is not thread-safe.
    """

    supports_response_schema = True
    supported_params = ("response_format", "temperature", "max_tokens", "stop", "seed")

    def __init__(
        self,
        model_path: Path,
        n_ctx: int = 8192,
        n_threads: int | None = None,
        max_string_chars: int = 400,
    ):
        self.model_path = Path(model_path)
        self.max_string_chars = max_string_chars
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._lock = threading.Lock()

    @property
    def llama(self) -> Any:
        return _load_llama(self.model_path, self.n_ctx, self.n_threads)

    def _messages(self, request: Any) -> list[dict[str, str]]:
        out: list[dict[str, str]] = []
        if request.system is not None:
            system = request.system
            text = system if isinstance(system, str) else "".join(p.text for p in system)
            out.append({"role": "system", "content": text})
        out.extend({"role": m.role, "content": m.text or ""} for m in request.messages)
        return out

    def complete(self, request: Any) -> Response:
        cfg = request.config
        kwargs: dict[str, Any] = {
            "messages": self._messages(request),
            "max_tokens": cfg.max_tokens or 512,
            "temperature": 0.0 if cfg.temperature is None else cfg.temperature,
        }
        if cfg.stop:
            kwargs["stop"] = list(cfg.stop)
        if cfg.seed is not None:
            kwargs["seed"] = cfg.seed
        rf = cfg.response_format
        if rf:
            schema = _schema_of(rf)
            schema = cap_strings(schema, self.max_string_chars) if schema else None
            kwargs["response_format"] = (
                {"type": "json_object", "schema": schema} if schema else {"type": "json_object"}
            )
        with self._lock:
            result = self.llama.create_chat_completion(**kwargs)
        choice = result["choices"][0]
        usage = result.get("usage") or {}
        finish = choice.get("finish_reason") or "stop"
        return Response(
            id=result.get("id"),
            model=f"local/{self.model_path.name}",
            message=Message.assistant([TextPart(choice["message"].get("content") or "")]),
            finish_reason="length" if finish == "length" else "stop",
            usage=Usage(
                input_tokens=usage.get("prompt_tokens"),
                output_tokens=usage.get("completion_tokens"),
            ),
        )

    def stream(self, request: Any):  # pragma: no cover - DSPy streaming is not used by sage
        from dspy.lm15 import response_to_events

        return response_to_events(self.complete(request))

    def close(self) -> None:
        return None


def build_lm(config: LMConfig) -> dspy.LM:
    """Build a DSPy LM. 'local' provisions and verifies the local model if it is missing."""
    if config.model == LOCAL_LM:
        from modules import model_store

        if config.models_dir is None:
            raise ValueError("the local LM needs models_dir")
        model_store.ensure_model(config.models_dir, model_store.LLM)
        engine = LlamaCppEngine(
            model_store.llm_path(config.models_dir), n_ctx=config.n_ctx, n_threads=config.n_threads
        )
        return dspy.LM(
            f"local/{model_store.QWEN_GGUF}",
            engine=engine,
            max_tokens=config.max_tokens,
            temperature=config.temperature,
            cache=config.cache,
            num_retries=0,
        )
    if "/" not in config.model:
        raise ValueError(
            f"unknown LM {config.model!r}: use 'local' or a LiteLLM model string "
            "such as 'openai/gpt-4o-mini' or 'hosted_vllm/Qwen/Qwen2.5-7B-Instruct'"
        )
    if wants_response_schema(config):
        register_response_schema(config.model)
    extra: dict[str, Any] = {}
    if config.api_base:
        extra["api_base"] = config.api_base
    if config.api_key:
        extra["api_key"] = config.api_key
    return dspy.LM(
        config.model,
        engine="litellm",
        max_tokens=config.max_tokens,
        temperature=config.temperature,
        cache=config.cache,
        num_retries=3,
        **extra,
    )


def wants_response_schema(config: LMConfig) -> bool:
    """Whether to force schema-constrained output for a LiteLLM model.

    Self-hosted OpenAI-compatible servers (vLLM, llama.cpp, SGLang) accept a JSON schema in
    ``response_format``, but LiteLLM does not know an arbitrary served model and DSPy then
    falls back to plain JSON mode, where a small model invents field names.
    """
    if config.response_schema is not None:
        return config.response_schema
    return bool(config.api_base)


def register_response_schema(model: str) -> None:
    """Tell LiteLLM that ``model`` honours a JSON schema in ``response_format``."""
    import litellm

    provider = model.split("/", 1)[0]
    litellm.register_model(
        {model: {"supports_response_schema": True, "litellm_provider": provider, "mode": "chat"}}
    )


def lm_config(settings: Any, role: str = "generator") -> LMConfig:
    """LMConfig for a role ('generator', 'agent', 'judge') from Settings."""
    model = {
        "generator": settings.lm,
        "agent": settings.agent_lm_name,
        "judge": settings.judge_lm_name,
    }
    if role not in model:
        raise ValueError(f"unknown LM role {role!r}")
    key = settings.api_key.get_secret_value() if settings.api_key else None
    return LMConfig(
        model=model[role],
        models_dir=settings.models_dir,
        api_base=settings.api_base,
        api_key=key,
        max_tokens=settings.max_tokens,
        temperature=settings.temperature,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        response_schema=settings.response_schema,
    )
