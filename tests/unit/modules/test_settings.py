"""Settings: env vars over sage.toml over defaults; errors name the field."""

from pathlib import Path

import pytest

from modules.settings import load_settings


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch, tmp_path):
    for key in list(__import__("os").environ):
        if key.startswith("SAGE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)


def test_defaults_use_embedded_qdrant_under_data_dir():
    s = load_settings()
    assert s.lm == "local"
    assert s.agent_lm_name == "local" and s.judge_lm_name == "local"
    assert not s.qdrant_is_server
    assert Path(s.qdrant_location) == Path(".sage") / "qdrant"


def test_toml_then_env_precedence(monkeypatch, tmp_path):
    (tmp_path / "sage.toml").write_text(
        'lm = "openai/gpt-4o-mini"\njudge_lm = "gemini/gemini-2.5-flash"\nmax_tokens = 300\n'
    )
    s = load_settings()
    assert s.lm == "openai/gpt-4o-mini"
    assert s.agent_lm_name == "openai/gpt-4o-mini"  # falls back to lm
    assert s.judge_lm_name == "gemini/gemini-2.5-flash"
    assert s.max_tokens == 300
    monkeypatch.setenv("SAGE_MAX_TOKENS", "123")
    assert load_settings().max_tokens == 123  # env beats the file
    assert load_settings(max_tokens=7).max_tokens == 7  # CLI override beats env


def test_config_file_path_from_env(monkeypatch, tmp_path):
    cfg = tmp_path / "elsewhere.toml"
    cfg.write_text('qdrant = "http://qdrant.internal:6333"\n')
    monkeypatch.setenv("SAGE_CONFIG", str(cfg))
    s = load_settings()
    assert s.qdrant_is_server and s.qdrant_location == "http://qdrant.internal:6333"


def test_unknown_toml_key_is_named(tmp_path):
    (tmp_path / "sage.toml").write_text('lm = "local"\nmax_tokenz = 5\n')
    with pytest.raises(ValueError, match="max_tokenz"):
        load_settings()


def test_bad_env_value_is_named(monkeypatch):
    monkeypatch.setenv("SAGE_MAX_TOKENS", "lots")
    with pytest.raises(ValueError, match="max_tokens"):
        load_settings()


def test_bad_override_is_named():
    with pytest.raises(ValueError, match="collection"):
        load_settings(collection="a@b")


def test_api_key_never_in_public_dict(monkeypatch):
    monkeypatch.setenv("SAGE_API_KEY", "sk-secret-123")
    s = load_settings()
    assert s.api_key.get_secret_value() == "sk-secret-123"
    assert "sk-secret-123" not in str(s.public_dict())
    assert "api_key" not in s.public_dict()
