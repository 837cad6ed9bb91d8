"""Test helpers: the repository's paths, a tiny in-memory retriever, scripted LMs and the one
way to plug them into the flows.

`OverlapRetriever` is a test fixture (BM25 over an in-memory list of passages), not a mock
of Qdrant: it lets the module tests run without an index. `ScriptedLM` is DSPy's DummyLM
with the JSON adapter, answering a fixed script of outputs in order.
"""

from __future__ import annotations

import json
import math
import os
import re
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import dspy
from dspy.utils.dummies import DummyLM

from modules.index.passages import Passage

REPO = Path(__file__).resolve().parents[1]
DEMO_CORPUS = REPO / "flows" / "data" / "demo" / "corpus.jsonl"
DEMO_QUESTIONS = REPO / "flows" / "data" / "demo" / "questions.jsonl"
DRIVER = REPO / "tests" / "drivers" / "scripted_generate.py"
SAGE = str(Path(sys.executable).parent / "sage")


# The local LLM runs one thread in tests: two pytest workers share 2 cores, and llama.cpp's
# threads spin-wait on each other, so a 2-thread model beside another busy process ran
# slower than a 1-thread one (HotpotQA test: 399 s alone, 727 s beside the other worker).
LOCAL_THREADS = 1

_API: dict[str, Any] = {}


def session_api() -> str:
    """The URL of this test session's one Prefect API for `sage` children (each would
    otherwise start a temporary API of its own, ~5 s of CPU), started on first use and
    stopped when the session ends (conftest.py); the kernel kills it with this process."""
    if "url" not in _API:
        from flows.engine.api_server import start_server

        _API["proc"], _API["url"] = start_server(None)
    return _API["url"]


def stop_session_api() -> None:
    if proc := _API.pop("proc", None):
        from flows.engine.api_server import stop_server

        stop_server(proc)
        _API.clear()


def clean_env(own_api: bool = False) -> dict[str, str]:
    """This process's environment without SAGE_* settings (but ``LOCAL_THREADS``), unbuffered
    (for `sage` children),
    naming the session's Prefect API (``session_api``), as a user's server would be;
    ``own_api``: none, so the child starts its own temporary API (the tests of that API)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGE_")}
    if own_api:
        env.pop("PREFECT_API_URL", None)
    else:
        env["PREFECT_API_URL"] = session_api()
    env["SAGE_N_THREADS"] = str(LOCAL_THREADS)
    env["PYTHONUNBUFFERED"] = "1"
    return env


_WORD = re.compile(r"\w+")
_STOP = set(
    "a an the of in on at to for by with and or is was were what which who whom when".split()
)


def _terms(text: str) -> list[str]:
    return [w for w in _WORD.findall(text.lower()) if w not in _STOP]


class OverlapRetriever:
    """BM25 ranking over an in-memory passage list (test fixture; satisfies `Retriever`)."""

    def __init__(self, passages: list[Passage], k: int = 3):
        self.passages = passages
        self.k = k
        self.queries: list[str] = []
        self._tf = [Counter(_terms(f"{p.title} {p.title} {p.text}")) for p in passages]
        self._len = [sum(tf.values()) for tf in self._tf]
        self._avg = sum(self._len) / max(1, len(self._len))
        df: Counter[str] = Counter()
        for tf in self._tf:
            df.update(tf.keys())
        n = len(passages)
        self._idf = {t: math.log(1 + (n - c + 0.5) / (c + 0.5)) for t, c in df.items()}

    def search(self, query: str, k: int | None = None) -> list[Passage]:
        self.queries.append(query)
        q = _terms(query)
        scores = []
        for i, tf in enumerate(self._tf):
            s = 0.0
            for t in q:
                f = tf.get(t, 0)
                if f:
                    norm = f + 1.2 * (0.25 + 0.75 * self._len[i] / self._avg)
                    s += self._idf[t] * f * 2.2 / norm
            scores.append(s)
        order = sorted(range(len(scores)), key=lambda i: -scores[i])[: k or self.k]
        p = self.passages
        return [Passage(p[i].id, p[i].doc_id, p[i].title, p[i].text, scores[i]) for i in order]


def load_corpus(path: Path) -> list[Passage]:
    """A {id, title, text} JSONL corpus as passages (one passage per document)."""
    out = []
    for line in Path(path).read_text().splitlines():
        if line.strip():
            d = json.loads(line)
            out.append(Passage(id=d["id"], doc_id=d["id"], title=d["title"], text=d["text"]))
    return out


TOY_PASSAGES = [
    Passage("p1", "d1", "Brennick", "Brennick is the capital of Tarvessa. It was founded in 1602."),
    Passage(
        "p2", "d2", "Symphony of the Shoals", "The Symphony of the Shoals was composed by Ada Venn."
    ),
    Passage("p3", "d3", "Ada Venn", "Ada Venn is a composer born in Brennick in 1950."),
    Passage("p4", "d4", "Skellis", "Skellis is an island of Tarvessa known for its lighthouses."),
]


class ScriptedLM(DummyLM):
    """DummyLM answering `outputs` in order, formatted as the JSON adapter expects.

    A dict {"__raw__": text} is returned verbatim (to script malformed output). `prompts`
    records the last user message of every call; `calls` counts them.
    """

    def __init__(self, outputs: list[dict[str, Any]]):
        super().__init__(list(outputs), adapter=dspy.JSONAdapter())
        self.n_scripted = len(outputs)
        self.prompts: list[str] = []
        engine = self._engine_spec
        inner = engine._complete_messages

        def record(messages):
            self.prompts.append(messages[-1]["content"])
            return inner(messages)

        engine._complete_messages = record

    @property
    def calls(self) -> int:
        return len(self.prompts)

    def _format_answer_fields(self, field_names_and_values: dict[str, Any]):
        if "__raw__" in field_names_and_values:
            return field_names_and_values["__raw__"]
        return super()._format_answer_fields(field_names_and_values)


class RuleLM(DummyLM):
    """A scripted LM whose output is a function of the prompt (for whole-flow tests).

    `rule(prompt) -> dict of output fields`; `delay` seconds are slept per call so a test
    can kill a run mid-way. Never a real model: name it as scripted wherever it is used.
    """

    def __init__(self, rule: Any, delay: float = 0.0):
        super().__init__([], adapter=dspy.JSONAdapter())
        self.cache = False
        self.num_retries = 0  # transient errors reach the caller (the flow retries them)
        self.prompts: list[str] = []
        engine = self._engine_spec

        def complete(messages):
            import time

            prompt = messages[-1]["content"]
            self.prompts.append(prompt)
            time.sleep(delay)
            out = rule(prompt)
            from dspy.lm15 import Message, Response, TextPart, Usage

            return Response(
                id=None,
                model="scripted",
                message=Message.assistant([TextPart(self._format_answer_fields(out))]),
                finish_reason="stop",
                usage=Usage(input_tokens=len(prompt) // 4, output_tokens=20),
            )

        engine._complete_messages = complete


def demo_generator_rule(prompt: str) -> dict[str, Any]:
    """Scripted generator: never researches; writes a fixed valid pair (or revision)."""
    plan = [
        {
            "sub_question": "Who led the first ascent?",
            "sub_answer": "Ferrin Vashti",
            "passage": "P1",
        }
    ]
    pair = {
        "question": "Who led the first ascent of the highest mountain of Tarvessa?",
        "answer": "Ferrin Vashti",
        "answer_type": "entity",
        "plan": plan,
    }
    if "generator_trace" in prompt:
        return {"analysis": "scripted", **pair}
    if "searches_left" in prompt:
        return {"reasoning": "scripted", "action": "write", "query": ""}
    return {"reasoning": "scripted", **pair}


def demo_agent_rule(prompt: str) -> dict[str, Any]:
    """Scripted agent: one search, then the answer; judge says correct."""
    if "gold_answers" in prompt:
        return {"extracted_answer": "Ferrin Vashti", "reasoning": "scripted", "correct": True}
    if "(no searches yet)" in prompt:
        return {"reasoning": "scripted", "action": "search", "text": "Mount Oskarrow first ascent"}
    if "searches_left" in prompt:
        return {"reasoning": "scripted", "action": "answer", "text": "Ferrin Vashti"}
    return {"reasoning": "scripted", "answer": "Ferrin Vashti"}


def tag_rule(prompt: str) -> dict[str, Any]:
    """Scripted LM for validation: fixed tags, else the scripted demo agent/judge."""
    if "reasoning_types" in prompt:
        return {"reasoning_types": ["bridging", "temporal"]}
    if "overly_specific_question" in prompt:
        return {"cause": "overly_specific_question", "explanation": "scripted"}
    if "retrieval_failure" in prompt:
        return {"cause": "retrieval_failure", "explanation": "scripted"}
    return demo_agent_rule(prompt)


def plug_lms(monkeypatch: Any, lms: Any) -> None:
    """Give the flows scripted LMs: one for every role, or a ``{role: LM}`` map (through
    ``flows.engine.runtime.role_lm``, the one place flows get their LMs)."""
    from flows.engine import runtime

    def role_lm(_settings: Any, role: str, _in_flight: int = 1) -> Any:
        return lms[role] if isinstance(lms, dict) else lms

    monkeypatch.setattr(runtime, "role_lm", role_lm)
