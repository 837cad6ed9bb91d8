"""Judge decision paths (scripted LLM judge where one is needed)."""

from modules.programs.judge import Judge
from modules.programs.signatures import JudgeAnswer
from tests.helpers import ScriptedLM


def judge_saying(correct: bool, **kw) -> Judge:
    lm = ScriptedLM([{"extracted_answer": "x", "reasoning": "scripted", "correct": correct}])
    lm.cache = False
    return Judge(lm, **kw)


def test_string_paths_never_call_the_model():
    j = Judge(ScriptedLM([]))
    assert j("Q?", "Ilvaro", "ilvaro.").method == "exact"
    assert j("Q?", "Ilvaro", "the Ilvaro", aliases=["Ilvaro Isle"]).method == "exact"
    assert j("Q?", "Ilvaro Isle", "ilvaro", aliases=["Ilvaro"]).method == "exact"  # an alias
    assert j("Q?", "1,850", "about 1850 people").method == "llm_failed"  # numbers agree: asked
    assert j("Q?", "820 metres", "640 metres").method == "number_guard"
    assert j("Q?", "Ilvaro", "").method == "empty"


def test_near_misses_are_not_accepted_without_a_model():
    """Token F1 >= 0.8 used to accept these model-free; they are different people."""
    j = Judge(use_llm=False)
    for gold, response in [
        ("Jessie Woodrow Wilson", "Woodrow Wilson"),  # F1 0.8
        ("George W. Bush", "George H. W. Bush"),  # F1 0.857
        ("Port Caskel harbour", "Port Caskel harbour area"),
    ]:
        res = j("Who?", gold, response)
        assert (res.correct, res.method) == (False, "undecided"), (gold, response)


def test_number_guard_compares_values_not_digits():
    """'The answer is 7,531.' for gold '7,531' was rejected: the comma split the number."""
    j = Judge(use_llm=False)
    for gold, response in [
        ("7,531", "The answer is 7,531."),
        ("7,531", "7531"),
        ("3,000,000", "about 3 million"),
        ("3 million", "3,000,000 people"),
        ("3", "3.0"),
        ("3", "three"),
    ]:
        assert j("How many?", gold, response).method != "number_guard", (gold, response)
    assert j("How many?", "7,531", "7,351").method == "number_guard"
    assert j("How many?", "3 million", "3 thousand").method == "number_guard"


def test_llm_judge_runs_at_temperature_0_and_reasons_before_its_verdict():
    lm = ScriptedLM([{"extracted_answer": "7531", "reasoning": "same number", "correct": True}])
    lm.cache = False
    seen = []
    inner = lm.forward

    def spy(*args, **kwargs):
        seen.append(kwargs.get("temperature"))
        return inner(*args, **kwargs)

    lm.forward = spy
    res = Judge(lm)("How many?", "7,531", "The answer is 7,531.", aliases=["7531 people"])
    assert (res.correct, res.method, res.reasoning) == (True, "llm", "same number")
    assert seen == [0.0]
    assert "7,531 | 7531 people" in lm.prompts[-1]  # the aliases reach the judge
    fields = list(JudgeAnswer.output_fields)
    assert fields.index("extracted_answer") < fields.index("reasoning") < fields.index("correct")


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
