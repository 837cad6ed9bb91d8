"""Judge decision paths (scripted LLM judge where one is needed)."""

from modules.judge import Judge
from tests.helpers import ScriptedLM


def judge_saying(correct: bool, **kw) -> Judge:
    lm = ScriptedLM([{"extracted_answer": "x", "correct": correct}])
    lm.cache = False
    return Judge(lm, **kw)


def test_string_paths_never_call_the_model():
    j = Judge(ScriptedLM([]))
    assert j("Q?", "Ilvaro", "ilvaro.").method == "exact"
    assert j("Q?", "Port Caskel harbour", "Port Caskel harbour area").method == "f1"
    assert (
        j("Q?", "1,850", "about 1850 people").method == "llm_failed"
    )  # numbers agree: model asked
    assert j("Q?", "820 metres", "640 metres").method == "number_guard"
    assert j("Q?", "Ilvaro", "").method == "empty"


def test_llm_yes_without_any_shared_token_is_overruled():
    res = judge_saying(True)("Longest island?", "Ilvaro", "It is called Tarvassa Island")
    assert (res.correct, res.method) == (False, "overlap_guard")
    res = judge_saying(True, require_overlap=False)("Q?", "Ilvaro", "It is Tarvassa Island")
    assert (res.correct, res.method) == (True, "llm")


def test_llm_decides_partial_matches():
    assert judge_saying(True)("Q?", "Ferrin Vashti", "explorer Vashti led it").correct
    assert not judge_saying(False)("Q?", "Ferrin Vashti", "explorer Vashti led it").correct
