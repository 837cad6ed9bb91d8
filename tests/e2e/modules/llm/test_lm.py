"""LM factory: the local model gives valid structured output; LiteLLM strings build offline."""

from typing import Literal

import dspy
import pytest

from bench.local_http import LocalJSONServer, chat_completion
from modules.llm.lm import LMConfig, build_lm, lm_config
from modules.llm.local_engine import (
    EngineSpec,
    LocalEngine,
    ModelLoadError,
    check_model_file,
    open_server,
    system_info,
)
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
    assert lm.model == "sage-served/gpt-4o-mini"  # behind an api_base: DSPy's native client
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
    assert LocalEngine.supports_response_schema
    assert "response_format" in LocalEngine.supported_params


def test_build_has_no_cpu_specific_code_paths():
    """The prebuilt wheel must run on any x86-64 CPU the project lands on: AVX2 at most,
    no AVX-512 or AMX kernels (a -march=native build crashed on an AMX machine)."""
    info = system_info()
    assert info.startswith("CPU :")
    assert "AVX2 = 1" in info, info
    assert "AVX512" not in info and "AMX" not in info, info


def test_missing_model_file_is_one_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match=r"missing\.gguf: local model file is missing; run"):
        open_server(EngineSpec(tmp_path / "missing.gguf"))


def test_non_gguf_file_is_refused_before_llama_cpp(tmp_path):
    bad = tmp_path / "model.gguf"
    bad.write_bytes(b"<html>not a model</html>")
    with pytest.raises(ModelLoadError, match="not a GGUF model file"):
        check_model_file(bad)


@pytest.mark.llm  # reads the local model's GGUF and starts llama.cpp on its cut copy
def test_truncated_model_file_is_one_clear_error(tmp_path, llm_models_dir):
    """A GGUF header with the tensors cut off: llama.cpp's own failure becomes one line."""
    from modules.model_store import llm_path

    cut = tmp_path / "cut.gguf"
    with llm_path(llm_models_dir).open("rb") as src:
        cut.write_bytes(src.read(2_000_000))
    with pytest.raises(ModelLoadError, match="could not load the model .corrupt or truncated"):
        open_server(EngineSpec(cut, n_ctx=512))


@pytest.mark.llm
def test_parallel_slots_answer_concurrent_threads_separately(llm_models_dir):
    """Four threads at once against one copy of the model: each gets its own answer, and
    the server decodes them together in separate slots (the busy time it reports per
    request adds up to more than the wall time), instead of queueing them."""
    import threading
    import time

    from modules.model_store import llm_path

    lm = build_lm(LMConfig(model="local", models_dir=llm_models_dir, cache=False,
                           temperature=0.0, n_ctx=1024, n_parallel=4))  # fmt: skip
    facts = {"Brennock": "1642", "Quessel": "1718", "Madrova": "1809", "Tallis": "1577"}
    answers: dict[str, str] = {}

    def ask(city: str, year: str) -> None:
        prompt = f"{city} was founded in {year}. In which year was {city} founded? Year only."
        out = lm(messages=[{"role": "user", "content": prompt}], max_tokens=8)
        answers[city] = out[0] if isinstance(out[0], str) else out[0]["text"]

    lm(messages=[{"role": "user", "content": "Say OK."}], max_tokens=2)  # load the model
    lm.engine.timings.clear()
    threads = [threading.Thread(target=ask, args=kv) for kv in facts.items()]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall_ms = (time.perf_counter() - t0) * 1000
    for city, year in facts.items():
        assert year in answers[city], (city, answers)
    busy_ms = sum(t["prompt_ms"] + t["predicted_ms"] for t in lm.engine.timings)
    assert len(lm.engine.timings) == 4
    assert busy_ms > 1.5 * wall_ms, (busy_ms, wall_ms)
    assert lm.engine.server is open_server(EngineSpec(llm_path(llm_models_dir), n_ctx=1024))


class _RecordingOpenAIServer(LocalJSONServer):
    """A tiny OpenAI-compatible HTTP server on 127.0.0.1 that records request bodies and
    answers every chat completion with the same JSON content (a real socket, no mock)."""

    def __init__(self, content: str, statuses: list[int] | None = None):
        self.content = content
        self.bodies: list[dict] = []
        self.statuses = list(statuses or [])  # answer these HTTP errors first, in order
        super().__init__()
        self.url = f"{self.root}/v1"

    def respond(self, body: dict) -> tuple[int, dict | None]:
        self.bodies.append(body)
        if self.statuses:
            return self.statuses.pop(0), None
        return 200, chat_completion(self.content, body["model"], 5, 7)


@pytest.mark.parametrize("engine", ["native", "litellm"])
@pytest.mark.parametrize(
    ("model", "api_base", "forced", "expected"),
    [
        ("openai/served-small-a", True, None, "json_schema"),  # self-hosted: schema by default
        ("openai/served-small-b", True, False, "json_object"),  # opted out: plain JSON mode
        ("hosted_vllm/org/served-small-c", True, True, "json_schema"),
    ],
)
def test_served_model_gets_the_signature_schema(model, api_base, forced, expected, engine):
    """Through the served engine (or LiteLLM) and a real HTTP socket: a self-hosted model is
    asked for the signature's JSON schema (constrained decoding) unless the user opts out,
    and the answer parses into typed fields."""
    server = _RecordingOpenAIServer('{"city": "Brennock", "founded": 1642, "kind": "port"}')
    try:
        cfg = LMConfig(model=model, api_base=server.url if api_base else None, api_key="k",
                       cache=False, response_schema=forced, served_engine=engine)  # fmt: skip
        lm = build_lm(cfg)
        with dspy.context(lm=lm, adapter=dspy.JSONAdapter()):
            pred = dspy.Predict(CityFact)(passage="Brennock, a port, was founded in 1642.")
    finally:
        server.close()
    assert (pred.city, pred.founded, pred.kind) == ("Brennock", 1642, "port")
    if engine == "native" and expected == "json_object":  # lm15 declares no JSON mode
        assert "response_format" not in server.bodies[-1]  # the adapter's prompt asks for JSON
        return
    fmt = server.bodies[-1]["response_format"]
    assert fmt["type"] == expected
    if expected == "json_schema":
        props = fmt["json_schema"]["schema"]["properties"]
        assert set(props) == {"city", "founded", "kind"}
        assert props["kind"]["enum"] == ["port", "inland"]
