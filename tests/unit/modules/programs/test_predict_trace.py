"""safe_predict keeps nothing of a call in DSPy's process-wide trace (the ~4 KB a call a
served run grew by, issue 21), but a trace a caller opened (an optimizer's) still records."""

from __future__ import annotations

import dspy

from modules.programs.adapter import json_adapter
from modules.programs.predict import Meter, safe_predict
from tests.helpers import ScriptedLM


class City(dspy.Signature):
    """Name the city in the passage."""

    passage: str = dspy.InputField()
    city: str = dspy.OutputField()


def _calls(lm: ScriptedLM, n: int) -> None:
    step, meter = dspy.Predict(City), Meter()
    for i in range(n):
        text = f"Brennock {i} is a port. " * 50
        pred, err = safe_predict(step, meter, lm=lm, adapter=json_adapter(), passage=text)
        assert err is None and pred.city == "Brennock"


def test_safe_predict_leaves_the_process_wide_trace_alone():
    lm = ScriptedLM([{"city": "Brennock"}] * 30)
    before = list(dspy.settings.trace)
    _calls(lm, 30)
    assert lm.calls == 30
    assert list(dspy.settings.trace) == before  # nothing kept: memory stays flat


def test_a_trace_the_caller_opened_still_records_every_call():
    lm = ScriptedLM([{"city": "Brennock"}] * 3)
    with dspy.context(trace=[]):
        _calls(lm, 3)
        trace = dspy.settings.trace
        assert len(trace) == 3  # what BootstrapFewShot reads its demos from
        assert trace[0][2].city == "Brennock"
