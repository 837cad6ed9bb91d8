"""The served path against real HTTP servers on 127.0.0.1 (scripted answers, no model):
one retry layer honouring Retry-After, a 400 failing a seed at once with one line, a reset
connection retried, acall of every sage signature, the LM saved with a program, adaptive
concurrency under a server's limit, and memory that stays flat over many calls."""

from __future__ import annotations

import asyncio
import gc
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import dspy
import psutil
import pytest

from bench.limited_server import LimitedStubServer, ScriptedStatusServer
from bench.local_http import LocalJSONServer, chat_completion
from bench.stub_server import StubServer
from modules.llm.lm import LMConfig, build_lm
from modules.programs import signatures
from modules.programs.adapter import json_adapter
from tests.helpers import SAGE, clean_env

CITY = '{"city": "Brennock"}'


class City(dspy.Signature):
    """Name the city in the passage."""

    passage: str = dspy.InputField()
    city: str = dspy.OutputField()


def _lm(url: str, **kw: Any) -> dspy.LM:
    return build_lm(LMConfig(**{"model": "hosted_vllm/org/m", "api_base": url, "api_key": "k",
                                "cache": False, **kw}))  # fmt: skip


def _city(lm: dspy.LM) -> str:
    with dspy.context(lm=lm, adapter=json_adapter()):
        return dspy.Predict(City)(passage="Brennock is a port.").city


def test_429_with_retry_after_waits_then_succeeds_with_one_retry():
    server = ScriptedStatusServer(CITY, [(429, {"Retry-After": "2"})])
    try:
        t0 = time.monotonic()
        assert _city(_lm(server.url)) == "Brennock"
        assert time.monotonic() - t0 >= 2.0  # the server's wait, not the 0.5-1 s backoff
        assert len(server.bodies) == 2  # one retry, by one layer
    finally:
        server.close()


def test_dspys_retry_loop_waits_through_sages_delay_sync_and_async():
    """sage's policy rides on a private DSPy hook (dspy.clients.execution._delay): a 429
    through the real client path, sync and acall, must reach sage's delay (its listeners
    hear the 429; DSPy's own delay tells no one), so a DSPy release that stops calling the
    hook fails here instead of silently dropping jitter, the cap and the concurrency signal."""
    from modules import retries

    heard: list[int | None] = []
    retries.listeners.append(heard.append)
    server = ScriptedStatusServer(CITY, [(429, {"Retry-After": "0"}), (429, {"Retry-After": "0"})])
    try:
        lm = _lm(server.url)
        assert _city(lm) == "Brennock"

        async def city() -> str:
            with dspy.context(lm=lm, adapter=json_adapter()):
                return (await dspy.Predict(City).acall(passage="Brennock is a port.")).city

        assert asyncio.run(city()) == "Brennock"
        assert heard == [429, 429] and len(server.bodies) == 4
    finally:
        retries.listeners.remove(heard.append)
        server.close()


def test_installing_the_policy_without_dspys_hook_is_a_clear_error(monkeypatch):
    from dspy.clients import execution

    from modules import retries

    monkeypatch.delattr(execution, "_delay")
    with pytest.raises(RuntimeError, match=r"_delay is gone: update modules/retries\.py"):
        retries.install(retries.RetryPolicy())


def test_retry_after_as_an_http_date_is_honoured():
    from email.utils import formatdate

    from modules.retries import retry_after_seconds

    assert 2.0 <= retry_after_seconds(formatdate(time.time() + 4, usegmt=True)) <= 4.0
    assert retry_after_seconds("3") == 3.0 and retry_after_seconds("soon") is None


def test_a_reset_connection_and_a_503_are_retried():
    server = ScriptedStatusServer(CITY, ["reset", (503, {})])
    try:
        assert _city(_lm(server.url)) == "Brennock"
        assert len(server.bodies) == 3
    finally:
        server.close()


def test_retries_stop_at_the_setting_and_a_400_is_not_retried():
    from dspy.utils.exceptions import LMError

    server = ScriptedStatusServer(CITY, [(503, {})] * 5)
    try:
        with pytest.raises(LMError):
            _city(_lm(server.url, retries=1))
        assert len(server.bodies) == 2
        server.script, server.bodies = [(400, {})], []
        with pytest.raises(LMError, match="scripted 400"):
            _city(_lm(server.url))
        assert len(server.bodies) == 1
    finally:
        server.close()


@pytest.fixture(scope="module")
def workdir(indexed_workdir) -> Path:
    return indexed_workdir("served-http")


def _generate(wd: Path, url: str, run_id: str, *args: str, env: dict | None = None):
    cmd = [SAGE, "--lm", "openai/stub", "--api-base", url, "generate", "--collection", "demo",
           "--attempts", "2", "--rounds", "1", "--steps", "2", "--max-searches", "3",
           "--generator-searches", "2", "--run-id", run_id, "--json", *args]  # fmt: skip
    full_env = {**clean_env(), "SAGE_API_KEY": "k", **(env or {})}
    return subprocess.run(cmd, cwd=wd, capture_output=True, text=True, timeout=600,
                          env=full_env)  # fmt: skip


def test_a_400_fails_the_seed_at_once_with_one_line_and_no_task_retry(workdir):
    server = ScriptedStatusServer(CITY, [(400, {})] * 10)
    try:
        res = _generate(workdir, server.url, "bad-request", "--seeds", "1")
    finally:
        server.close()
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(server.bodies) == 1  # no retry in the client, in DSPy or in the Prefect task
    lines = [x for x in (res.stdout + res.stderr).splitlines() if "seed s00000 failed" in x]
    assert lines and f"POST {server.url}/chat/completions: HTTP 400" in lines[0], lines
    assert json.loads(res.stdout)["accepted"] == 0


def test_a_server_that_keeps_failing_is_retried_by_one_layer_only(workdir):
    server = ScriptedStatusServer(CITY, [(503, {})] * 10)
    try:
        res = _generate(workdir, server.url, "unavailable", "--seeds", "1",
                        env={"SAGE_RETRIES": "2"})  # fmt: skip
    finally:
        server.close()
    assert res.returncode == 0, res.stderr[-3000:]
    assert len(server.bodies) == 3  # the first try and 2 retries; the task adds none
    assert "HTTP 503" in res.stdout + res.stderr


def test_auto_concurrency_converges_near_the_server_limit(workdir):
    limit = 4
    server = LimitedStubServer(0.2, limit)
    try:
        res = _generate(workdir, server.url, "auto", "--seeds", "24", "--concurrency", "auto",
                        "--max-concurrency", "32")  # fmt: skip
    finally:
        server.close()
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    auto = out["concurrency"]
    calls = sum(server.calls.values())
    # it probed above the limit, halved, and settled near it: seeds in flight, of which
    # only a part is waiting on the server at any moment (the rest search or check), so
    # the level sits somewhat above N requests; far from 32 and from 1
    assert auto["mode"] == "auto" and auto["throttled"] >= 1 and server.throttled > 0, auto
    assert limit // 2 <= auto["final"] <= 3 * limit and auto["max"] <= 4 * limit, auto
    assert server.throttled < 0.1 * calls, (server.throttled, calls)
    assert out["metrics"]["funnel"]["seeds"] == 24
    assert " failed: " not in res.stderr  # no seed failed (sage says "seed ID failed: ...")
    assert "concurrency 4 -> 5 (latency holds)" in res.stdout + res.stderr


class SchemaServer(LocalJSONServer):
    """Answers any chat request with JSON that fills the request's schema (so every sage
    signature parses), counting requests."""

    keep_alive = True

    def __init__(self):
        self.bodies: list[dict] = []
        super().__init__()
        self.url = f"{self.root}/v1"

    def respond(self, body: dict) -> tuple[int, dict]:
        self.bodies.append(body)
        schema = body["response_format"]["json_schema"]["schema"]
        content = json.dumps(_fill(schema, schema.get("$defs", {})))
        return 200, chat_completion(content, body["model"], 5, 7)


def _fill(s: dict, defs: dict) -> Any:
    if "$ref" in s:
        return _fill(defs[s["$ref"].rsplit("/", 1)[1]], defs)
    if "enum" in s:
        return s["enum"][0]
    if "anyOf" in s:
        return _fill(s["anyOf"][0], defs)
    kind = s.get("type")
    if kind == "object":
        return {k: _fill(v, defs) for k, v in s.get("properties", {}).items()}
    if kind == "array":
        return [_fill(s["items"], defs)] if "items" in s else []
    return {"integer": 1, "number": 1.0, "boolean": True, "null": None}.get(kind, "x")


SIGNATURES = [v for v in vars(signatures).values()
              if isinstance(v, type) and issubclass(v, dspy.Signature) and v is not dspy.Signature
              and v.__module__ == signatures.__name__]  # fmt: skip


def test_acall_of_every_sage_signature_through_the_served_path():
    assert len(SIGNATURES) >= 10
    server = SchemaServer()
    lm = _lm(server.url)

    async def one(sig: type[dspy.Signature]) -> dspy.Prediction:
        inputs = {name: "x" for name in sig.input_fields}
        with dspy.context(lm=lm, adapter=json_adapter()):
            return await dspy.Predict(sig).acall(**inputs)

    async def every() -> list[dspy.Prediction]:
        return await asyncio.gather(*(one(sig) for sig in SIGNATURES))

    try:
        preds = asyncio.run(every())
    finally:
        server.close()
    assert len(server.bodies) == len(SIGNATURES)
    for sig, pred in zip(SIGNATURES, preds, strict=True):
        assert set(sig.output_fields) <= set(pred.keys()), sig.__name__


def test_the_served_lm_is_saved_with_a_program_without_its_key(tmp_path):
    server = ScriptedStatusServer(CITY)
    try:
        program = dspy.Predict(City)
        program.lm = _lm(server.url, request_timeout=42.0, api_key="secret-key")
        program.save(tmp_path / "p.json")
        text = (tmp_path / "p.json").read_text()
        assert "secret-key" not in text
        loaded = dspy.Predict(City)
        loaded.load(tmp_path / "p.json", allow_unsafe_lm_state=True)  # keep api_base: trusted
        assert loaded.lm.model == "sage-served/org/m"
        assert loaded.lm.kwargs["api_base"] == server.url
        assert loaded.lm.kwargs["timeout"] == 42.0
        loaded.lm.kwargs["api_key"] = "k"  # a key is never saved: the loader gives its own
        with dspy.context(adapter=json_adapter()):
            assert loaded(passage="Brennock").city == "Brennock"  # it calls the server
        assert server.bodies[-1]["model"] == "org/m"
    finally:
        server.close()


def _rss_kb() -> float:
    gc.collect()
    return psutil.Process().memory_info().rss / 1024


def test_memory_stays_flat_over_many_served_calls():
    """RSS slope over 600 calls through sage's own call path (safe_predict: DSPy's client
    and sage's adapter) after a 200-call warm-up, each call with its own ~3 KB prompt: a
    call kept anywhere (DSPy's history or its process-wide trace, which grew a 500-seed run
    by ~4 KB a call) is 1.8 MB here, above the bound."""
    from modules.programs.predict import Meter, safe_predict

    server = StubServer(0.0)
    lm = _lm(server.url)
    step, meter = dspy.Predict(signatures.JudgeAnswer), Meter()
    fields = list(signatures.JudgeAnswer.input_fields)
    done = [0]

    def calls(n: int) -> None:
        for _ in range(n):
            done[0] += 1
            inputs = {name: f"Ferrin Vashti {done[0]} " * 150 for name in fields[:1]}
            inputs |= {name: "Ferrin Vashti" for name in fields[1:]}
            pred, err = safe_predict(step, meter, lm=lm, adapter=json_adapter(), **inputs)
            assert err is None, err

    try:
        calls(200)
        points = []
        for _ in range(6):
            points.append(_rss_kb())
            calls(100)
        points.append(_rss_kb())
    finally:
        server.close()
    n = len(points)
    xs = [100 * i for i in range(n)]
    mx, my = sum(xs) / n, sum(points) / n
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, points, strict=True)) / sum(
        (x - mx) ** 2 for x in xs
    )
    assert slope < 1.5, f"RSS grows {slope:.2f} KB per call: {points}"


class KeepAliveSearchR1(LocalJSONServer):
    """A Search-R1 retrieval server on keep-alive connections that counts the TCP
    connections it accepted and answers a script of statuses first."""

    keep_alive = True

    def __init__(self, script: list[Any] | None = None):
        self.script, self.requests, self.connections = list(script or []), 0, 0
        super().__init__()
        accept = self.httpd.process_request

        def counted(request: Any, address: Any) -> None:
            self.connections += 1
            accept(request, address)

        self.httpd.process_request = counted
        self.url = self.root

    def respond(self, body: dict) -> tuple[int, Any]:
        self.requests += 1
        if self.script:
            status, headers = self.script.pop(0)
            return status, ({"error": "scripted"}, headers)
        hit = {"document": {"id": "w1", "contents": '"Caddow Light"\nA lighthouse.'}, "score": 1}
        return 200, {"result": [[hit]]}


def test_the_searchr1_client_reuses_one_connection_and_honours_retry_after():
    from modules.index.searchr1 import SearchR1Retriever

    server = KeepAliveSearchR1([(429, {"Retry-After": "1"})])
    try:
        client = SearchR1Retriever(server.url, retries=2, backoff=0.01)
        t0 = time.monotonic()
        assert client.search("Caddow")[0].title == "Caddow Light"
        assert time.monotonic() - t0 >= 1.0  # the server's Retry-After, not the 10 ms backoff
        for _ in range(5):
            client.search("Caddow")
        assert server.requests == 7 and server.connections == 1  # pooled keep-alive
    finally:
        server.close()
