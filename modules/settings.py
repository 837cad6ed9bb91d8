"""The one settings object: env vars ``SAGE_*`` over an optional ``sage.toml`` over defaults."""

from __future__ import annotations

import os
import re
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from modules.config import Profile

LOCAL_LM = "local"
SECRETS = frozenset(
    {"api_key", "generator_api_key", "agent_api_key", "judge_api_key", "qdrant_api_key"}
)
# LiteLLM providers that speak the OpenAI API from any server: the shared api_base applies to
# them; every other provider (gemini, anthropic, ...) is hosted at its own address.
OPENAI_COMPATIBLE = frozenset(
    {
        "openai",
        "hosted_vllm",
        "openai_like",
        "custom_openai",
        "text-completion-openai",
        "litellm_proxy",
        "lm_studio",
        "llamafile",
        "ollama",
        "ollama_chat",
        "xinference",
    }
)


def served_provider(model: str) -> bool:
    """Whether a LiteLLM model string names an OpenAI-compatible (self-hostable) provider."""
    return model.split("/", 1)[0] in OPENAI_COMPATIBLE


def _config_file() -> Path:
    return Path(os.environ.get("SAGE_CONFIG", "sage.toml"))


class Settings(BaseSettings):
    """Everything sage can be configured with. CLI options override these."""

    model_config = SettingsConfigDict(env_prefix="SAGE_", extra="forbid", validate_default=True)

    data_dir: Path = Field(Path(".sage"), description="Embedded Qdrant, LM cache, Prefect home.")
    runs_dir: Path = Field(Path("runs"), description="Versioned run artifacts runs/<run_id>/.")
    models_dir: Path = Field(
        Path.home() / ".cache" / "sage" / "models",
        description="Verified local model files (shared between projects).",
    )

    lm: str = Field(LOCAL_LM, description="Generator LM: 'local' or a LiteLLM model string.")
    agent_lm: str | None = Field(None, description="Search-agent LM (default: lm).")
    judge_lm: str | None = Field(None, description="Judge LM (default: lm).")
    api_base: str | None = Field(
        None,
        description="OpenAI-compatible server for every role without an endpoint of its own "
        "whose model is not a hosted provider's (openai/, hosted_vllm/, ... models).",
    )
    api_key: SecretStr | None = Field(None, description="API key (never written to artifacts).")
    generator_api_base: str | None = Field(None, description="The generator's server.")
    agent_api_base: str | None = Field(None, description="The search agent's server.")
    judge_api_base: str | None = Field(None, description="The judge's server.")
    generator_api_key: SecretStr | None = Field(None, description="Key for generator_api_base.")
    agent_api_key: SecretStr | None = Field(None, description="Key for agent_api_base.")
    judge_api_key: SecretStr | None = Field(None, description="Key for judge_api_base.")
    response_schema: bool | None = Field(
        None,
        description="true: send each signature's JSON schema as response_format (constrained "
        "decoding). Unset: true when the role has an endpoint (vLLM, llama.cpp, SGLang "
        "servers), else LiteLLM's model map decides. false: leave it to LiteLLM's model map.",
    )
    served_engine: str = Field(
        "native",
        pattern="^(native|litellm)$",
        description="How models behind an endpoint are called: native (DSPy's own pooled "
        "HTTP client, lm15) or litellm.",
    )
    request_timeout: float = Field(
        600.0,
        gt=0,
        description="Seconds one LM or retriever request may take before it is "
        "retried (a timeout is transient).",
    )
    retries: int = Field(
        6,
        ge=0,
        description="Retries of a transient HTTP failure (429, 5xx, 408, timeout, "
        "reset), Retry-After honoured, else jittered backoff capped at 60 s; in one layer.",
    )
    max_concurrency: int = Field(
        64,
        ge=1,
        description="Most seeds in flight under `--concurrency auto` (the default "
        "against a served model).",
    )

    profile: Profile | None = Field(
        None,
        description="paper (the official code's settings: served/API models) or small (the "
        "bundled 8k-context model). Unset: small when a role runs the local model, else paper.",
    )
    temperature: float | None = Field(
        None, ge=0.0, le=2.0, description="Temperature of generator, reviser and agent."
    )
    generator_temperature: float | None = Field(None, ge=0.0, le=2.0)
    reviser_temperature: float | None = Field(None, ge=0.0, le=2.0)
    agent_temperature: float | None = Field(None, ge=0.0, le=2.0)
    judge_temperature: float | None = Field(None, ge=0.0, le=2.0)
    max_tokens: int | None = Field(
        None, gt=0, description="Max output tokens per LM call of every role (always sent)."
    )
    generator_max_tokens: int | None = Field(None, gt=0)
    reviser_max_tokens: int | None = Field(None, gt=0)
    agent_max_tokens: int | None = Field(None, gt=0)
    judge_max_tokens: int | None = Field(None, gt=0)
    context_window: int | None = Field(
        None,
        ge=1024,
        description="Context window (tokens) of every role: default 32768 for served and API "
        "models, n_ctx for the local model.",
    )
    generator_context_window: int | None = Field(None, ge=1024)
    agent_context_window: int | None = Field(None, ge=1024)
    judge_context_window: int | None = Field(None, ge=1024)
    passage_chars: int | None = Field(None, ge=0, description="Each passage the agent reads.")
    trajectory_chars: int | None = Field(None, ge=0, description="The agent's trajectory.")
    generator_passage_chars: int | None = Field(None, ge=0, description="Each generator note.")
    notes_chars: int | None = Field(None, ge=0, description="The generator's notes in all.")
    doc_chars: int | None = Field(None, ge=0, description="The seed document shown.")
    attempt_chars: int | None = Field(None, ge=0, description="The reviser's search trace.")
    research_chars: int | None = Field(None, ge=0, description="The reviser's research list.")
    history_chars: int | None = Field(None, ge=0, description="The reviser's earlier rounds.")
    reviser_note_chars: int | None = Field(None, ge=0, description="Each note the reviser sees.")
    reviser_notes_chars: int | None = Field(None, ge=0, description="The reviser's notes.")
    judge_min_gold_recall: float | None = Field(
        None,
        ge=0.0,
        le=1.0,
        description="An LLM judge's 'correct' needs this share of a gold answer's content words "
        "in the response (guards a weak judge; 0 = off).",
    )
    judge_number_guard: bool | None = Field(
        None, description="A response lacking the gold's numbers is wrong without asking the LM."
    )
    reask_repeats: bool | None = Field(
        None, description="A repeated agent query is sent back to the model, not searched."
    )
    generator_min_searches: int | None = Field(
        None,
        ge=0,
        description="The generator searches at least this often before it writes "
        "(a name the seed mentions beyond its title, else the title, when it would write "
        "sooner).",
    )
    bridge_rule: bool | None = Field(
        None,
        description="A question whose answer only a searched passage holds must ask about "
        "the seed's subject and not name that passage's subject (a model-free rule).",
    )
    regenerate_failed: bool | None = Field(
        None, description="A seed whose generation failed is regenerated next round (else dropped)."
    )
    local_models: dict[str, str] | None = Field(
        None,
        description='Pinned local model per role, e.g. {"generator": "llm15"}: llm '
        "(Qwen2.5-Coder 0.5B) or llm15 (1.5B); unnamed roles take the profile's.",
    )
    n_ctx: int = Field(8192, ge=512, description="Context window per slot of the local model.")
    n_threads: int | None = Field(None, ge=1, description="CPU threads for the local model.")
    n_parallel: int | None = Field(
        None,
        ge=1,
        le=64,
        description="Parallel slots of the local model (each with its own KV cache). Unset: "
        "seeds at once × attempts at once, up to 16.",
    )

    qdrant: str | None = Field(
        None, description="Embedded Qdrant path (default <data_dir>/qdrant) or http(s) URL."
    )
    qdrant_api_key: SecretStr | None = None
    retriever: str = Field(
        "qdrant",
        description="Where every search goes: 'qdrant' (the index built by `sage index`) or "
        "the URL of a Search-R1 retrieval server (POST /retrieve), e.g. http://127.0.0.1:8000.",
    )
    collection: str = Field("corpus", min_length=1)
    max_doc_chars: int = Field(
        100_000_000,
        ge=1,
        description="Longest document `sage index` accepts (characters); longer documents are "
        "rejected, shorter ones are split into passages whatever their length.",
    )

    task_runner: str = Field(
        "thread",
        description="Seed fan-out of `sage generate`: thread | dask (local processes) | "
        "dask://HOST:PORT (a running Dask scheduler).",
    )

    @field_validator("task_runner")
    @classmethod
    def _task_runner(cls, v: str) -> str:
        if v in ("thread", "dask") or re.fullmatch(r"dask://[\w.\-\[\]:]+:\d+", v):
            return v
        raise ValueError(f"{v!r}: use thread, dask or dask://HOST:PORT")

    @field_validator("api_base", "generator_api_base", "agent_api_base", "judge_api_base")
    @classmethod
    def _endpoint(cls, v: str | None) -> str | None:
        if v is None or re.fullmatch(r"https?://[^\s/]+(/\S*)?", v):
            return v
        raise ValueError(f"{v!r} is not an http(s) URL")

    @field_validator("retriever")
    @classmethod
    def _retriever(cls, v: str) -> str:
        if v == "qdrant" or v.startswith(("http://", "https://")):
            return v
        raise ValueError(f"{v!r}: use qdrant or the http(s) URL of a Search-R1 retriever")

    @property
    def searchr1_url(self) -> str | None:
        """The Search-R1 retrieval server when one is the retriever."""
        return None if self.retriever == "qdrant" else self.retriever

    @field_validator("collection")
    @classmethod
    def _collection_name(cls, v: str) -> str:
        if "@" in v or "/" in v:
            raise ValueError("collection names may not contain '@' or '/'")
        return v

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=_config_file())
        return (init_settings, env_settings, toml)

    @property
    def qdrant_location(self) -> str:
        """A URL (server) or a filesystem path (embedded)."""
        return self.qdrant or str(self.data_dir / "qdrant")

    @property
    def qdrant_is_server(self) -> bool:
        return self.qdrant_location.startswith(("http://", "https://"))

    @cached_property
    def agent_lm_name(self) -> str:
        return self.agent_lm or self.lm

    @cached_property
    def judge_lm_name(self) -> str:
        return self.judge_lm or self.lm

    def model_of(self, role: str) -> str:
        """The model a role ('generator', 'agent', 'judge') runs."""
        names = {"generator": self.lm, "agent": self.agent_lm_name, "judge": self.judge_lm_name}
        if role not in names:
            raise ValueError(f"unknown LM role {role!r}")
        return names[role]

    def endpoint(self, role: str) -> tuple[str | None, str | None]:
        """(api_base, api_key) of a role: its own endpoint, else the shared ``api_base`` when
        its model is served behind an OpenAI-compatible API (never a hosted provider's model:
        a ``gemini/...`` judge goes to Gemini, not to the generator's vLLM server)."""
        own = getattr(self, f"{role}_api_base")
        own_key = getattr(self, f"{role}_api_key")
        model = self.model_of(role)
        if own:
            base, key = own, own_key or self.api_key
        elif model != LOCAL_LM and served_provider(model):
            base, key = self.api_base, own_key or self.api_key
        else:
            base, key = None, own_key
        return base, key.get_secret_value() if key else None

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the non-None overrides applied (and validated)."""
        values = self.model_dump()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return Settings(**values)

    def public_dict(self) -> dict[str, Any]:
        """Settings fit for a manifest: secrets dropped."""
        data = self.model_dump(mode="json", exclude=SECRETS)
        return data


def load_settings(**overrides: Any) -> Settings:
    """Load settings; a malformed sage.toml or env var raises a ValueError naming it."""
    path = _config_file()
    try:
        base = Settings()
    except Exception as exc:  # pydantic ValidationError or TOML decode error
        raise ValueError(f"invalid configuration (env SAGE_* or {path}): {_short(exc)}") from exc
    try:
        return base.with_overrides(**overrides)
    except Exception as exc:
        raise ValueError(f"invalid option: {_short(exc)}") from exc


def _short(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = []
        for err in errors():
            loc = ".".join(str(x) for x in err.get("loc", ()))
            parts.append(f"{loc}: {err.get('msg')}")
        return "; ".join(parts)
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
