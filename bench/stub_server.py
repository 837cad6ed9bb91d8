"""A local OpenAI-compatible chat server that answers every sage signature with valid,
scripted JSON after a set latency (no model): for the served-throughput benchmark and the
Dask fan-out test. The generator researches once and writes a pair that one search solves
(too easy for S >= 2), the reviser rewrites it to need S searches, the agent searches as
often as the question needs and answers in a sentence, so the LLM judge decides.
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections import Counter

from bench.local_http import LocalJSONServer, chat_completion

CASE = re.compile(r"\(case ([0-9a-f]+-\d+)\)")


class StubServer(LocalJSONServer):
    """An OpenAI-compatible chat server answering sage's signatures (scripted, no model)."""

    keep_alive = True

    def __init__(self, latency: float = 0.0, record: bool = False):
        self.latency = latency
        self.record = record  # keep every request as (kind, body) in ``requests``
        self.requests: list[tuple[str, dict]] = []
        self.calls: Counter[str] = Counter()
        self.cases: dict[str, tuple[str, int]] = {}  # case id -> (answer, searches needed)
        self.queries = 0
        self.salt = os.urandom(4).hex()  # new questions per server: no LM-cache hits across runs
        self.lock = threading.Lock()
        super().__init__()
        self.url = f"{self.root}/v1"

    def respond(self, body: dict) -> tuple[int, dict]:
        time.sleep(self.latency)
        content = json.dumps(self.answer(body))
        return 200, chat_completion(content, body.get("model", "stub"), 400, 40)

    def _new_case(self, answer: str, hops: int) -> str:
        with self.lock:
            cid = f"{self.salt}-{len(self.cases) + 1}"
            self.cases[cid] = (answer, hops)
        return cid

    def answer(self, body: dict) -> dict:
        fields = set(
            ((body.get("response_format") or {}).get("json_schema") or {})
            .get("schema", {}).get("properties", {})
        )  # fmt: skip
        text = "\n".join(str(m.get("content")) for m in body.get("messages", []))
        kind = self.kind(fields, text)
        with self.lock:
            self.calls[kind] += 1
            if self.record:
                self.requests.append((kind, body))
        return getattr(self, f"_{kind}")(text)

    @staticmethod
    def kind(fields: set[str], text: str) -> str:
        if {"extracted_answer", "correct"} <= fields or "extracted_answer" in text:
            return "judge"
        if "analysis" in fields or "`analysis`" in text:
            return "revise"
        if "question" in fields or "`plan`" in text:
            return "write"
        if "query" in fields or "`query`" in text:
            return "research"
        if "action" in fields or "`action`" in text:
            return "step"
        return "final"

    def _unique(self) -> int:
        """A counter that makes every search query new text (no query-cache hits)."""
        with self.lock:
            self.queries += 1
            return self.queries

    def _research(self, text: str) -> dict:
        if "(none yet)" in text:
            q = f"Brennick harbour {self._unique()}"
            return {"reasoning": "stub", "action": "search", "query": q}
        return {"reasoning": "stub", "action": "write", "query": ""}

    def _pair(self, hops: int, extra: dict) -> dict:
        answer = "Ferrin Vashti"
        cid = self._new_case(answer, hops)
        plan = [{"sub_question": f"hop {i}", "sub_answer": answer, "passage": "P1"}
                for i in range(hops)]  # fmt: skip
        return {**extra, "question": f"Who led the first ascent of the peak (case {cid})?",
                "answer": answer, "plan": plan}  # fmt: skip

    def _write(self, text: str) -> dict:
        return self._pair(1, {"reasoning": "stub"})  # too easy for S >= 2

    def _revise(self, text: str) -> dict:
        m = re.search(r"\[\[ ## target_steps ## \]\]\s*(\d+)", text)
        return self._pair(int(m.group(1)) if m else 2, {"analysis": "hide a hop"})

    def _step(self, text: str) -> dict:
        m = CASE.search(text)
        answer, hops = self.cases.get(m.group(1), ("unknown", 1)) if m else ("unknown", 1)
        done = len(re.findall(r"^Search \d+:", text, re.M))
        if done < hops:
            q = f"ascent hop {done + 1} of {self._unique()}"
            return {"reasoning": "stub", "action": "search", "text": q}
        return {"reasoning": "stub", "action": "answer", "text": f"It was {answer}."}

    def _final(self, text: str) -> dict:
        return {"reasoning": "stub", "answer": "unknown"}

    def _judge(self, text: str) -> dict:
        return {"extracted_answer": "Ferrin Vashti", "reasoning": "stub", "correct": True}


class ProbeServer(LocalJSONServer):
    """A chat server that drives the agent and the generator along a script, to see their
    prompts: the agent searches ``agent_query(done)`` (``done``: its searches so far; None:
    it answers), the generator's research searches ``research_query(n)`` (None: it writes),
    and every pair is the same. Keeps each request's body by kind (step, research, write,
    other)."""

    def __init__(self, agent_query, research_query):
        self.agent_query, self.research_query = agent_query, research_query
        self.bodies: dict[str, list[dict]] = {"step": [], "research": [], "write": [], "other": []}
        super().__init__()
        self.url = f"{self.root}/v1"

    def respond(self, body: dict) -> tuple[int, dict]:
        props = set(body["response_format"]["json_schema"]["schema"]["properties"])
        prompt = body["messages"][-1]["content"]
        if "action" in props and "text" in props:
            kind, done = "step", len(re.findall(r"^Search \d+:", prompt, re.M))
            query = self.agent_query(done)
            out = ({"reasoning": "r", "action": "search", "text": query} if query else
                   {"reasoning": "r", "action": "answer", "text": "unknown"})  # fmt: skip
        elif "query" in props:
            kind = "research"
            query = self.research_query(len(self.bodies["research"]))
            out = {"reasoning": "r", "action": "search" if query else "write",
                   "query": query or ""}  # fmt: skip
        elif "plan" in props:
            kind = "write"
            plan = [{"sub_question": "q", "sub_answer": "day 3", "passage": "P2"}]
            out = {"reasoning": "r", "question": "On which day was the third topic founded?",
                   "answer": "day 3", "plan": plan, "analysis": "a"}  # fmt: skip
        else:
            kind = "other"
            out = {"extracted_answer": "x", "reasoning": "r", "correct": False}
        self.bodies[kind].append(body)
        return 200, chat_completion(json.dumps(out), "stub", 100, 10)
