"""A flow command starts its Prefect API only once its options are valid: a bad option is
reported without an API started (and stopped) for nothing, which took ~12 s per command."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

import flows.engine.api_server as api_server
from flows.cli.main import app


class Started(Exception):
    """Raised in place of starting a Prefect API."""


@pytest.fixture
def no_api(monkeypatch, tmp_path):
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    monkeypatch.chdir(tmp_path)

    def refuse(log_file):
        raise Started

    monkeypatch.setattr(api_server, "start_server", refuse)


@pytest.mark.parametrize(
    "args, message",
    [
        (["generate", "--seeds", "1", "--steps", "9-3"], "the range is empty"),
        (["generate", "--steps", "2"], "exactly one of --n"),
        (["index", "corpus.jsonl", "--chunk-words", "0"], "--chunk-words: Input should be greater"),
    ],
)
def test_a_bad_option_fails_before_any_api_starts(no_api, args, message):
    res = CliRunner().invoke(app, args)
    assert not isinstance(res.exception, Started), "the API was started before validation"
    assert message in str(res.exception) + res.output


def test_valid_options_do_start_the_api(no_api, tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"id": "a", "text": "Brennick."}\n')
    res = CliRunner().invoke(app, ["index", "corpus.jsonl", "--collection", "c"])
    assert isinstance(res.exception, Started)
