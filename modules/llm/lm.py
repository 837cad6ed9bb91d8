"""The one LM factory: 'local' = llama.cpp's server in process; a model behind an
``api_base`` = DSPy's native client (lm15); else a LiteLLM model string."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dspy

from modules import retries
from modules.config import local_setup, role_config
from modules.llm.local_engine import EngineSpec, LocalEngine
from modules.settings import LOCAL_LM

MAX_AUTO_SLOTS = 16  # each slot reserves n_ctx tokens of KV cache (~12 KB/token for 0.5B)


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
    n_parallel: int = 1
    cache: bool = True
    response_schema: bool | None = None
    served_engine: str = "native"  # api_base models: "native" (DSPy's lm15) or "litellm"
    request_timeout: float = 600.0  # seconds per HTTP request
    retries: int = 6  # transient HTTP failures retried (in DSPy's loop, modules/retries.py)
    local_model: str = "llm"  # the pinned local model (modules/model_store.py MODELS key)
    field_chars: dict[str, int] | None = None  # the local engine's JSON-schema field caps


def build_lm(config: LMConfig) -> dspy.LM:
    """Build a DSPy LM. 'local' provisions and verifies the local model if it is missing."""
    if config.model == LOCAL_LM:
        from modules import model_store

        if config.models_dir is None:
            raise ValueError("the local LM needs models_dir")
        local = model_store.MODELS[config.local_model]
        model_store.ensure_model(config.models_dir, local)
        spec = EngineSpec(
            model_store.model_dir(config.models_dir, local) / local.files[0].name,
            n_ctx=config.n_ctx,
            n_threads=config.n_threads,
            n_parallel=config.n_parallel,
        )
        engine = LocalEngine(spec, field_chars=config.field_chars)
        return dspy.LM(
            f"local/{local.files[0].name}",
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
    if config.api_base and config.served_engine == "native":
        return served_lm(config)
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
        num_retries=config.retries,
        timeout=config.request_timeout,
        **extra,
    )


SERVED_PROVIDER = "sage-served"
VLLM_BASE = "http://localhost:8000/v1"  # lm15's vLLM preset (each LM sets its own api_base)
SERVED_SCHEMALESS = "sage-served-json"  # the same, without the signature's JSON schema


def register_served_providers() -> None:
    """Declare the providers DSPy's native client (lm15) uses for every model behind an
    ``api_base``: an OpenAI-compatible chat server whose models honour a JSON schema in
    ``response_format`` (vLLM, SGLang, llama.cpp's server), and one whose models are asked
    for plain JSON (``response_schema = false``). Done on import, so a saved program's LM
    state loads in any sage process."""
    from dspy._vendor.lm15.features import AccessPolicy
    from dspy.lm15 import ModelSupport, ProviderDefinition, register_provider

    for name, schema in ((SERVED_PROVIDER, True), (SERVED_SCHEMALESS, False)):
        access = AccessPolicy(provider=name, env_keys=("SAGE_API_KEY",), base_url=VLLM_BASE)
        definition = ProviderDefinition.chat(access, compat="vllm")
        register_provider(definition, supports=ModelSupport(response_schema=schema))


register_served_providers()


def served_lm(config: LMConfig) -> dspy.LM:
    """DSPy's own client (lm15's pooled standard-library transport, sync and async; within
    2 % of sage's former engine per call, docs/BENCHMARKS.md) against an OpenAI-compatible
    server. The signature's JSON schema is sent (the provider declares it), DSPy retries
    transient failures with sage's policy (modules/retries.py), and ``dump_state`` saves it
    with a program (without the key)."""
    model = served_model(config.model, wants_response_schema(config))
    retries.install(retries.RetryPolicy(retries=config.retries))
    ENDPOINTS[model] = str(config.api_base)
    return dspy.LM(
        model,
        api_base=config.api_base,
        api_key=config.api_key or "none",  # a keyless local server
        timeout=config.request_timeout,
        max_tokens=config.max_tokens,
        temperature=config.temperature,
        cache=config.cache,
        num_retries=config.retries,
        callbacks=[retries.CALL_TIMER],
    )


def served_model(model: str, schema: bool = True) -> str:
    """'hosted_vllm/Qwen/Qwen2.5-7B-Instruct' -> 'sage-served/Qwen/Qwen2.5-7B-Instruct' (the
    server knows the model by the part after the provider)."""
    return f"{SERVED_PROVIDER if schema else SERVED_SCHEMALESS}/{served_name(model)}"


def served_name(model: str) -> str:
    """'hosted_vllm/Qwen/Qwen2.5-7B-Instruct' -> 'Qwen/Qwen2.5-7B-Instruct' (what the server
    knows the model as)."""
    return model.split("/", 1)[1] if "/" in model else model


ENDPOINTS: dict[str, str] = {}  # served model -> its api_base, for error lines


def lm_failure(exc: BaseException) -> str | None:
    """One line for a served LM's error that failed a seed: 'POST URL/chat/completions:
    HTTP 400 (model m): first line of the answer', or None for another error."""
    model = getattr(exc, "model", None)
    if model not in ENDPOINTS:
        return None
    status = getattr(exc, "status", None)
    what = f"HTTP {status}" if status else type(exc).__name__
    detail = " ".join(str(exc).removeprefix(f"[{model}]").split())[:200]
    return f"POST {ENDPOINTS[model]}/chat/completions: {what} (model {model}): {detail}"


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


def lm_config(settings: Any, role: str = "generator", requests_in_flight: int = 1) -> LMConfig:
    """LMConfig for a role ('generator', 'agent', 'judge') from Settings: its model, its
    endpoint (``Settings.endpoint``) and its temperature and output tokens under the run's
    profile (``modules.config.role_config``).

    ``requests_in_flight`` (seeds at once × attempts at once) sizes the local engine's
    parallel slots unless the ``n_parallel`` setting fixes them. Only the judge (temperature
    0) uses DSPy's LM cache: every generator and agent call is a sample with its own
    rollout id, so a cache lookup and write could never pay off.
    """
    model = settings.model_of(role)
    api_base, key = settings.endpoint(role)
    rc = role_config(settings, role, LOCAL_LM)
    local_model, field_chars = local_setup(settings, role)
    return LMConfig(
        model=model,
        models_dir=settings.models_dir,
        api_base=api_base,
        api_key=key,
        max_tokens=rc.max_tokens,
        temperature=rc.temperature,
        n_ctx=settings.n_ctx,
        n_threads=settings.n_threads,
        n_parallel=settings.n_parallel or max(1, min(requests_in_flight, MAX_AUTO_SLOTS)),
        cache=role == "judge",
        served_engine=settings.served_engine,
        response_schema=settings.response_schema,
        local_model=local_model,
        field_chars=field_chars,
        request_timeout=settings.request_timeout,
        retries=settings.retries,
    )
