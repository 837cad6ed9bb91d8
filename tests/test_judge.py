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
    res = judge_saying(True, min_gold_recall=0.0)("Q?", "Ilvaro", "It is Tarvassa Island")
    assert (res.correct, res.method) == (True, "llm")


def test_llm_yes_with_too_little_of_the_gold_is_overruled():
    """Real false accepts of the 0.5B judge on MuSiQue/HotpotQA (docs/BENCHMARKS.md)."""
    tom = "Tom T. Hall is the first president of the association which published the journal"
    res = judge_saying(True)("Who was the first president?", "G. Stanley Hall", tom)
    assert (res.correct, res.method) == (False, "overlap_guard")  # 1 of 3 gold words
    res = judge_saying(True)("Q?", "Barton Lee Hazlewood", "Lee Hazlewood produced Boots")
    assert (res.correct, res.method) == (True, "llm")  # 2 of 3
    res = judge_saying(True)("Q?", "the Bank of Nerris Isle", "the bank founded in 1801")
    assert res.method == "overlap_guard"  # "of" and "the" do not count: 1 of 3
    res = judge_saying(True, min_gold_recall=0.3)("Q?", "G. Stanley Hall", tom)
    assert res.correct
    res = judge_saying(True, min_gold_recall=0.0)("Q?", "Ilvaro", "It is Tarvassa Island")
    assert (res.correct, res.method) == (True, "llm")  # 0: the guard is off (strong judge)


def test_llm_decides_partial_matches():
    assert judge_saying(True)("Q?", "Ferrin Vashti", "explorer Vashti led it").correct
    assert not judge_saying(False)("Q?", "Ferrin Vashti", "explorer Vashti led it").correct
