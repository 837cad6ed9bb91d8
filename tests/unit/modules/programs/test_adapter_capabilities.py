"""The adapter looks an LM's capabilities up once, not on every call, unless a call's
options could route it elsewhere or the LM changed."""

from __future__ import annotations

import dspy
import pydantic

from modules.llm.lm import LMConfig, build_lm
from modules.programs.adapter import SageJSONAdapter
from modules.programs.signatures import FinalAnswer, NextStep


class CountingLM(dspy.LM):
    """A real DSPy LM (DSPy's native client, sage's served provider) that counts how often
    its capabilities are asked for."""

    lookups = 0

    @property
    def supports_response_schema(self) -> bool:
        type(self).lookups += 1
        return super().supports_response_schema


def served(model: str = "sage-served/m") -> CountingLM:
    CountingLM.lookups = 0
    return CountingLM(model, api_base="http://127.0.0.1:9/v1", api_key="k", cache=False)


def fmt(adapter: SageJSONAdapter, lm: dspy.LM, signature, **options) -> dict:
    kwargs = dict(options)
    adapter._prepare_response_format(lm, kwargs, signature)
    return kwargs


def test_capabilities_are_looked_up_once_per_lm():
    lm, adapter = served(), SageJSONAdapter()
    first = fmt(adapter, lm, NextStep, temperature=0.7, rollout_id=3)
    final = fmt(adapter, lm, FinalAnswer)["response_format"]
    assert final is not first["response_format"]
    assert CountingLM.lookups >= 1
    CountingLM.lookups = 0  # warm: every later call of this LM reuses them
    for i in range(5):
        got = fmt(adapter, lm, NextStep, temperature=0.7, rollout_id=i)
        assert got["response_format"] is first["response_format"]
        assert fmt(adapter, lm, FinalAnswer, max_tokens=64)["response_format"] is final
    assert CountingLM.lookups == 0
    # the schema DSPy's own JSONAdapter chooses for this LM
    plain: dict = {}
    dspy.JSONAdapter()._prepare_response_format(lm, plain, NextStep)
    schema = plain["response_format"].model_json_schema()
    assert first["response_format"].model_json_schema() == schema


def test_routing_options_and_a_changed_lm_are_looked_up_again():
    lm, adapter = served(), SageJSONAdapter()
    schema = fmt(adapter, lm, NextStep, temperature=0.7)["response_format"]
    CountingLM.lookups = 0
    fmt(adapter, lm, NextStep, api_base="http://127.0.0.1:10/v1")
    fmt(adapter, lm, NextStep, api_base="http://127.0.0.1:10/v1")
    assert CountingLM.lookups == 2
    lm.model = "sage-served-json/m"  # the schemaless provider: plain JSON mode
    assert fmt(adapter, lm, NextStep).get("response_format") is not schema
    assert CountingLM.lookups >= 3


def test_the_factory_lm_gets_the_schema():
    lm = build_lm(LMConfig(model="hosted_vllm/m", api_base="http://127.0.0.1:9/v1"))
    chosen = fmt(SageJSONAdapter(), lm, NextStep, temperature=0.7)["response_format"]
    assert issubclass(chosen, pydantic.BaseModel)  # the signature's schema, not JSON mode
    assert set(chosen.model_json_schema()["properties"]) == {"reasoning", "action", "text"}
