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

LOCAL_LM = "local"


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
    api_base: str | None = Field(None, description="OpenAI-compatible server for LiteLLM models.")
    api_key: SecretStr | None = Field(None, description="API key (never written to artifacts).")
    response_schema: bool | None = Field(
        None,
        description="true: send each signature's JSON schema as response_format (constrained "
        "decoding). Unset: true when api_base is set (vLLM, llama.cpp, SGLang servers), else "
        "LiteLLM's model map decides. false: leave it to LiteLLM's model map.",
    )
    served_engine: str = Field(
        "native",
        pattern="^(native|litellm)$",
        description="How models behind api_base are called: native (one pooled HTTP client, "
        "the lightest path) or litellm.",
    )
    judge_min_gold_recall: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="An LLM judge's 'correct' needs this share of a gold answer's content words "
        "in the response (guards a weak judge; 0 turns the guard off for a strong judge).",
    )
    max_tokens: int = Field(768, gt=0, description="Max output tokens per LM call (always sent).")
    temperature: float = Field(0.7, ge=0.0, le=2.0)
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

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with the non-None overrides applied (and validated)."""
        values = self.model_dump()
        values.update({k: v for k, v in overrides.items() if v is not None})
        return Settings(**values)

    def public_dict(self) -> dict[str, Any]:
        """Settings fit for a manifest: secrets dropped."""
        data = self.model_dump(mode="json", exclude={"api_key", "qdrant_api_key"})
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
