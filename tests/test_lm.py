"""LM factory: the local model gives valid structured output; LiteLLM strings build offline."""

from typing import Literal

import dspy
import pytest

from modules.lm import LlamaCppEngine, LMConfig, build_lm, lm_config
from modules.settings import load_settings


class CityFact(dspy.Signature):
    """Extract the facts asked for from the passage."""

    passage: str = dspy.InputField()
    city: str = dspy.OutputField(desc="the city named in the passage")
    founded: int = dspy.OutputField(desc="the year the city was founded")
    kind: Literal["port", "inland"] = dspy.OutputField()


@pytest.mark.llm
def test_local_model_returns_typed_structured_output(local_lm):
    passage = "Brennock is a port city on the Veloran coast. It was founded in 1642 by fishermen."
    with dspy.context(lm=local_lm, adapter=dspy.JSONAdapter()), dspy.track_usage() as usage:
        pred = dspy.Predict(CityFact)(passage=passage)
    assert isinstance(pred.founded, int)
    assert pred.kind in ("port", "inland")
    assert isinstance(pred.city, str) and pred.city
    assert pred.founded == 1642 and "Brennock" in pred.city  # an easy extraction
    tokens = usage.get_total_tokens()
    assert tokens and next(iter(tokens.values()))["completion_tokens"] > 0


@pytest.mark.llm
def test_local_engine_enforces_json_schema(local_lm):
    schema = {
        "type": "object",
        "properties": {"n": {"type": "integer"}, "word": {"type": "string"}},
        "required": ["n", "word"],
        "additionalProperties": False,
    }
    out = local_lm(
        messages=[{"role": "user", "content": "Give any number and any word as JSON."}],
        response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": schema}},
    )
    import json

    data = json.loads(out[0] if isinstance(out[0], str) else out[0]["text"])
    assert set(data) == {"n", "word"} and isinstance(data["n"], int)


def test_litellm_string_builds_without_network():
    lm = build_lm(
        LMConfig(model="openai/gpt-4o-mini", api_base="http://127.0.0.1:9/v1", max_tokens=77)
    )
    assert lm.model == "openai/gpt-4o-mini"
    assert lm.kwargs["max_tokens"] == 77  # always sent, so a looping model cannot fill the context


def test_unknown_model_string_is_rejected():
    with pytest.raises(ValueError, match="unknown LM 'gpt4'"):
        build_lm(LMConfig(model="gpt4"))


def test_roles_pick_their_own_models(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    s = load_settings(lm="openai/a", judge_lm="openai/j")
    assert lm_config(s, "generator").model == "openai/a"
    assert lm_config(s, "agent").model == "openai/a"
    assert lm_config(s, "judge").model == "openai/j"
    with pytest.raises(ValueError, match="unknown LM role"):
        lm_config(s, "critic")


def test_engine_declares_structured_output():
    assert LlamaCppEngine.supports_response_schema
    assert "response_format" in LlamaCppEngine.supported_params


class _RecordingOpenAIServer:
    """A tiny OpenAI-compatible HTTP server on 127.0.0.1 that records request bodies and
    answers every chat completion with the same JSON content (a real socket, no mock)."""

    def __init__(self, content: str):
        import http.server
        import json
        import threading

        self.bodies: list[dict] = []
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - http.server API
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                outer.bodies.append(body)
                reply = json.dumps({
                    "id": "c1", "object": "chat.completion", "created": 0, "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": content}}],
                    "usage": {"prompt_tokens": 5, "completion_tokens": 7, "total_tokens": 12},
                }).encode()  # fmt: skip
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.parametrize(
    ("model", "api_base", "forced", "expected"),
    [
        ("openai/served-small-a", True, None, "json_schema"),  # self-hosted: schema by default
        ("openai/served-small-b", True, False, "json_object"),  # opted out: LiteLLM's map
        ("hosted_vllm/org/served-small-c", True, True, "json_schema"),
    ],
)
def test_served_model_gets_the_signature_schema(model, api_base, forced, expected):
    """Through LiteLLM and a real HTTP socket: a self-hosted model is asked for the
    signature's JSON schema (constrained decoding) unless the user opts out, and the
    answer parses into typed fields."""
    server = _RecordingOpenAIServer('{"city": "Brennock", "founded": 1642, "kind": "port"}')
    try:
        cfg = LMConfig(model=model, api_base=server.url if api_base else None, api_key="k",
                       cache=False, response_schema=forced)  # fmt: skip
        lm = build_lm(cfg)
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            pred = dspy.Predict(CityFact)(passage="Brennock, a port, was founded in 1642.")
    finally:
        server.close()
    assert (pred.city, pred.founded, pred.kind) == ("Brennock", 1642, "port")
    fmt = server.bodies[-1]["response_format"]
    assert fmt["type"] == expected
    if expected == "json_schema":
        props = fmt["json_schema"]["schema"]["properties"]
        assert set(props) == {"city", "founded", "kind"}
        assert props["kind"]["enum"] == ["port", "inland"]
