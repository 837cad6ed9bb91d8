"""The Search-R1 retriever backend against a real HTTP server on 127.0.0.1 that speaks the
protocol (POST /retrieve), ranking the demo corpus with the BM25 test fixture."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.local_http import LocalJSONServer
from modules.errors import SageError
from modules.index.searchr1 import SearchR1Retriever
from tests.helpers import (
    DEMO_CORPUS,
    OverlapRetriever,
    RuleLM,
    demo_agent_rule,
    demo_generator_rule,
    load_corpus,
    plug_lms,
)

SAGE = str(Path(sys.executable).parent / "sage")


class SearchR1Server(LocalJSONServer):
    """A Search-R1 style retrieval server (its ``retrieval_server.py``): with
    ``return_scores`` each hit is ``{"document", "score"}``, without it the bare document.
    ``fail_first`` requests answer 503, ``delay`` seconds pass before each answer,
    ``malformed`` answers a body without ``result``, ``status`` answers every request with
    that HTTP status and ``not_json`` with an HTML page."""

    def __init__(self, fail_first: int = 0, delay: float = 0.0, malformed: bool = False,
                 status: int = 200, not_json: bool = False):  # fmt: skip
        self.queries: list[str] = []
        self.bodies: list[dict] = []
        self.fail_first, self.delay, self.malformed = fail_first, delay, malformed
        self.status, self.not_json = status, not_json
        self.index = OverlapRetriever(load_corpus(DEMO_CORPUS))
        super().__init__()
        self.url = self.root

    def respond(self, body: dict) -> tuple[int, dict | bytes | None]:
        time.sleep(self.delay)
        self.bodies.append(body)
        if self.fail_first > 0:
            self.fail_first -= 1
            return 503, None
        if self.status != 200:
            return self.status, {"detail": "scripted error"}
        if self.not_json:
            return 200, b"<html><body>502 Bad Gateway</body></html>"
        self.queries.extend(body["queries"])
        result = []
        for q in body["queries"]:
            hits = self.index.search(q, k=body["topk"])
            docs = [({"id": p.id, "contents": f'"{p.title}"\n{p.text}'}, p.score) for p in hits]
            if body.get("return_scores"):
                result.append([{"document": d, "score": score} for d, score in docs])
            else:
                result.append([d for d, _ in docs])
        return 200, ({"oops": []} if self.malformed else {"result": result})


@pytest.fixture
def server():
    s = SearchR1Server()
    yield s
    s.close()


def test_passages_come_back_with_titles_ids_and_scores(server):
    hits = SearchR1Retriever(server.url, k=3).search("Caddow Light lighthouse tower")
    assert len(hits) == 3 and server.queries == ["Caddow Light lighthouse tower"]
    # the request asks for scores (without them the server answers bare documents)
    assert server.bodies == [
        {"queries": ["Caddow Light lighthouse tower"], "topk": 3, "return_scores": True}
    ]
    assert hits[0].score > 0
    assert hits[0].title == "Caddow Light" and hits[0].id == hits[0].doc_id == "w070"
    assert hits[0].text.startswith("Caddow Light is a lighthouse")
    assert hits[0].score >= hits[1].score >= hits[2].score
    assert len(SearchR1Retriever(server.url).search("harbour", k=5)) == 5


def test_transient_failures_are_retried_then_raised_as_transient():
    flaky = SearchR1Server(fail_first=2)
    try:
        hits = SearchR1Retriever(flaky.url, retries=3, backoff=0.01).search("Caddow Light")
        assert hits and flaky.fail_first == 0
    finally:
        flaky.close()
    slow = SearchR1Server(delay=1.0)
    try:
        with pytest.raises(ConnectionError, match="unreachable after 2 tries"):
            SearchR1Retriever(slow.url, timeout=0.2, retries=1, backoff=0.01).search("Caddow")
    finally:
        slow.close()
    with pytest.raises(ConnectionError):  # nothing listens there
        SearchR1Retriever("http://127.0.0.1:9", retries=0).search("Caddow")


def test_a_client_error_is_a_clear_error_at_once_not_retried():
    for status in (400, 404, 422):
        bad = SearchR1Server(status=status)
        try:
            with pytest.raises(SageError, match=f"^Search-R1 retriever {bad.url}/retrieve: "
                                                f"HTTP {status}$"):  # fmt: skip
                SearchR1Retriever(bad.url, retries=3, backoff=0.01).search("Caddow")
            assert len(bad.bodies) == 1  # a 4xx is not transient: one request only
        finally:
            bad.close()


def test_an_answer_that_is_not_json_is_a_clear_error_at_once():
    bad = SearchR1Server(not_json=True)
    try:
        with pytest.raises(SageError, match=f"^Search-R1 retriever {bad.url}/retrieve: answer "
                                            r"is not JSON \(Expecting value\)$"):  # fmt: skip
            SearchR1Retriever(bad.url, retries=3, backoff=0.01).search("Caddow")
        assert len(bad.bodies) == 1
    finally:
        bad.close()


def test_a_malformed_answer_is_a_clear_error_naming_the_server():
    bad = SearchR1Server(malformed=True)
    try:
        with pytest.raises(SageError, match=f"Search-R1 retriever {bad.url}/retrieve: malformed"):
            SearchR1Retriever(bad.url).search("Caddow")
    finally:
        bad.close()


def test_generation_searches_through_the_server_and_seeds_from_the_corpus(
    server, tmp_path, monkeypatch
):
    """The real generate flow (scripted LMs): generator and agent search through the
    Search-R1 server; the seed documents come from --corpus; no Qdrant index exists."""
    from flows.generate import GenerateParams, generate_dataset

    monkeypatch.chdir(tmp_path)
    for k in [k for k in os.environ if k.startswith("SAGE_")]:
        monkeypatch.delenv(k)
    agent_lm = RuleLM(demo_agent_rule)
    plug_lms(monkeypatch, {"generator": RuleLM(demo_generator_rule), "agent": agent_lm,
                           "judge": agent_lm})  # fmt: skip
    params = GenerateParams(
        seeds=2, steps="1", rounds=0, attempts=1, run_id="sr1", max_searches=2,
        generator_searches=1, corpus=str(DEMO_CORPUS),
    )  # fmt: skip
    out = generate_dataset(params, {"retriever": server.url})
    manifest = json.loads((tmp_path / "runs" / "sr1" / "manifest.json").read_text())
    assert manifest["collection_version"] == f"searchr1:{server.url}"
    demo_ids = {json.loads(x)["id"] for x in DEMO_CORPUS.read_text().splitlines() if x.strip()}
    assert {s["doc_id"] for s in manifest["seeds"]} <= demo_ids
    assert "Mount Oskarrow first ascent" in server.queries  # the scripted agent's search
    assert out["metrics"]["funnel"]["seeds"] == 2
    assert not (tmp_path / ".sage" / "qdrant").exists()


def test_sage_search_asks_the_server(server, tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGE_")}
    env["SAGE_RETRIEVER"] = server.url
    cmd = [SAGE, "search", "Caddow Light lighthouse tower", "--json", "-k", "2"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert res.returncode == 0, res.stderr
    hits = json.loads(res.stdout)["hits"]
    assert len(hits) == 2 and hits[0]["title"] == "Caddow Light"
