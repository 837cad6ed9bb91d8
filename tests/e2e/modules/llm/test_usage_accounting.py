"""Token accounting is DSPy's own usage tracking (`dspy.track_usage` in
modules/programs/predict.py:safe_predict): against a real OpenAI-compatible server on 127.0.0.1
whose every reply reports 400 prompt and 40 completion tokens, the round meters add up to
exactly what the server reported, call for call. `Meter` only adds what DSPy does not
track: calls that failed to parse, seconds, and the retrieved characters shown and cut."""

from __future__ import annotations

import pytest

from bench.stub_server import StubServer
from modules.config import profile_config
from modules.llm.lm import LMConfig, build_lm
from modules.programs.predict import Meter
from modules.programs.sage import Sage, SageLMs
from tests.helpers import TOY_PASSAGES, OverlapRetriever

SEED = "Ada Venn\nAda Venn is a composer born in Brennick in 1950."


@pytest.fixture
def server():
    s = StubServer()
    yield s
    s.close()


@pytest.mark.parametrize("engine", ["native", "litellm"])
def test_round_meters_match_the_usage_the_server_reported(server, engine):
    lm = build_lm(LMConfig(model="openai/stub", api_base=server.url, api_key="x",
                           cache=False, served_engine=engine))  # fmt: skip
    config = profile_config("paper", attempts=2, rounds=1)
    sage = Sage(OverlapRetriever(TOY_PASSAGES), SageLMs(lm, lm, lm), config)
    res = sage(document=SEED, target_steps=2, doc_id="p3", answer_type="entity")
    meter = Meter.total([Meter.of(r.meter) for r in res.rounds])
    calls = sum(server.calls.values())
    assert calls > 5 and meter.lm_calls == calls
    assert (meter.prompt_tokens, meter.completion_tokens) == (400 * calls, 40 * calls)
    assert meter.seconds > 0
