"""Every branch of the SAGE loop, driven by scripted LMs (DSPy DummyLM; no real model).

The generator, the search agent and the judge each get their own ScriptedLM, so each
test states exactly what every role answers, in order.
"""

from __future__ import annotations

import pytest

from modules.config import profile_config
from modules.index.passages import Passage
from modules.programs.sage import RoundResult, Sage, SageLMs
from tests.helpers import TOY_PASSAGES, OverlapRetriever, ScriptedLM


def lm(outputs):
    scripted = ScriptedLM(outputs)
    scripted.cache = False
    return scripted


def write(question="Who composed the symphony named after the shoals?", answer="Ada Venn"):
    plan = [{"sub_question": "Who composed it?", "sub_answer": answer, "passage": "P2"}]
    return [
        {"reasoning": "enough", "action": "write", "query": ""},
        {
            "reasoning": "chain",
            "question": question,
            "answer": answer,
            "answer_type": "entity",
            "plan": plan,
        },
    ]


def revise(question="Which composer born in the capital wrote the shoals symphony?"):
    plan = [{"sub_question": "Who?", "sub_answer": "Ada Venn", "passage": "P2"}]
    return [
        {
            "analysis": "hide the name",
            "question": question,
            "answer": "Ada Venn",
            "answer_type": "entity",
            "plan": plan,
        }
    ]


# one passage per marker: an attempt's i-th search ("Marker i") always finds a new one, so
# every scripted search counts toward difficulty (a repeated search would not)
MARKERS = [Passage(f"m{i}", f"dm{i}", f"Marker{i}", f"Marker{i} is fact {i}.") for i in range(12)]


def attempt(searches: int, answer: str):
    steps = [
        {"reasoning": "look", "action": "search", "text": f"Marker{i}"} for i in range(searches)
    ]
    return steps + [{"reasoning": "done", "action": "answer", "text": answer}]


WRONG_JUDGE = {"extracted_answer": "Bo Lund", "reasoning": "scripted", "correct": False}


def sage_of(gen_lm, agent_lm, judge_lm, profile="small", **cfg) -> Sage:
    """A Sage on the toy passages with these LMs, under ``profile`` with ``cfg`` knobs. The
    scripts write without research (the required first search under ``small`` has its own
    tests in test_generator_min_searches.py), so ``generator_min_searches`` is 0 here; their
    toy questions are not bridges, so ``bridge_rule`` (test_bridge_rule.py) is off."""
    config = profile_config(profile, **{"generator_min_searches": 0, "bridge_rule": False, **cfg})
    retriever = OverlapRetriever(TOY_PASSAGES + MARKERS)
    return Sage(retriever, SageLMs(gen_lm, agent_lm, judge_lm), config)


def make(gen, agent, judge=(), **kw) -> Sage:
    return sage_of(lm(gen), lm(agent), lm(list(judge)), **kw)


def test_accept_at_round_zero():
    seen: list[RoundResult] = []
    sage = make(write(), attempt(2, "Ada Venn") + attempt(3, "ada venn"), attempts=2, rounds=2)
    res = sage(document="Symphony doc", target_steps=2, on_round=seen.append)
    assert [r.status for r in res.rounds] == ["accepted"] and seen == res.rounds
    row = res.rounds[0].summary()
    assert row["min_searches"] == 2 and row["n_correct"] == 2 and row["avg_at_k"] == 1.0
    assert all(a.judgement["method"] == "exact" for a in res.rounds[0].attempts)


def test_too_easy_gets_difficulty_feedback_then_accepts():
    gen = lm(write() + revise())
    sage = sage_of(
        gen, lm(attempt(1, "Ada Venn") + attempt(3, "Ada Venn")), lm([]), attempts=1, rounds=2
    )
    res = sage(document="Symphony doc", target_steps=3)
    assert [r.status for r in res.rounds] == ["too_easy", "accepted"]
    assert res.rounds[1].mode == "revise:too_easy"
    assert "too_easy" in gen.prompts[-1]  # the reviser was told the failure kind
    assert "Final answer: Ada Venn (correct, 1 searches)" in gen.prompts[-1]  # best trace
    assert res.rounds[1].candidate["question"].startswith("Which composer born")


def test_incorrect_gets_correctness_feedback():
    gen = lm(write() + revise())
    agent = lm(attempt(1, "Bo Lund") + attempt(2, "Ada Venn"))
    sage = sage_of(gen, agent, lm([WRONG_JUDGE]), attempts=1, rounds=1)
    res = sage(document="Symphony doc", target_steps=2)
    assert [r.status for r in res.rounds] == ["incorrect", "accepted"]
    assert res.rounds[0].attempts[0].judgement["method"] == "llm"
    assert res.rounds[1].mode == "revise:incorrect" and "incorrect" in gen.prompts[-1]


@pytest.mark.parametrize("keep, final", [(False, "discarded"), (True, "unverified")])
def test_never_correct_is_discarded_or_kept_unverified(keep, final):
    sage = make(
        write() + revise(),
        attempt(1, "Bo Lund") * 2,
        [WRONG_JUDGE] * 2,
        keep_unverified=keep,
        attempts=1,
        rounds=1,
    )
    res = sage(document="Symphony doc", target_steps=2)
    assert [r.status for r in res.rounds] == ["incorrect", final]


def test_resample_regenerates_instead_of_revising():
    gen = lm(write() + write(question="Which city was Ada Venn born in?", answer="Brennick"))
    agent = lm(attempt(1, "Ada Venn") + attempt(2, "Brennick"))
    sage = sage_of(gen, agent, lm([]), attempts=1, rounds=1, strategy="resample")
    res = sage(document="d", target_steps=2)
    assert [r.mode for r in res.rounds] == ["generate", "resample"]
    assert [r.status for r in res.rounds] == ["too_easy", "accepted"]
    assert res.rounds[1].candidate["answer"] == "Brennick"


def test_a_spent_search_budget_ends_the_attempt_without_an_answer():
    """As the SAGE code's agent: a search after the last one allowed gives no answer."""
    sage = make(write(), attempt(3, "never"), max_searches=2, attempts=1, rounds=0)
    res = sage(document="d", target_steps=2)
    a = res.rounds[0].attempts[0]
    assert (a.n_searches, a.answer, a.forced, a.correct) == (2, None, False, False)
    assert [t["type"] for t in a.trace] == ["search", "search", "budget_spent"]
    assert res.rounds[0].status == "discarded"


def test_a_forced_answer_is_judged_but_never_solves_the_pair():
    """A best guess after the budget (evaluation reports ask for one) used to make the pair
    'correct at 2 >= S searches' and accepted it."""
    guess = [{"reasoning": "guess", "answer": "Ada Venn"}]
    sage = make(write(), attempt(3, "never") + guess, max_searches=2, attempts=1, rounds=0)
    sage.agent.force_answer = True
    res = sage(document="d", target_steps=2)
    a = res.rounds[0].attempts[0]
    assert (a.n_searches, a.answer, a.forced) == (2, "Ada Venn", True)
    assert a.judgement["correct"] and not a.correct  # shown as right, counted as wrong
    assert res.rounds[0].summary()["min_searches"] is None
    assert res.rounds[0].status == "discarded"


def test_generator_search_budget_forces_writing():
    research = [{"reasoning": "more", "action": "search", "query": f"q{i}"} for i in range(3)]
    final = write()[1]
    sage = make(
        research + [final], attempt(2, "Ada Venn"), generator_searches=3, attempts=1, rounds=0
    )
    res = sage(document="d", target_steps=2)
    kinds = [t["type"] for t in res.rounds[0].generator_trace]
    assert kinds == ["search", "search", "search", "forced_write", "written"]


def test_malformed_output_is_generation_failed_not_a_crash():
    garbage = [{"__raw__": "not json at all"}]
    sage = make(
        [{"reasoning": "x", "action": "write", "query": ""}] + garbage * 2 + write(),
        attempt(2, "Ada Venn"),
        attempts=1,
        rounds=1,
    )
    res = sage(document="d", target_steps=2)
    assert [r.status for r in res.rounds] == ["generation_failed", "accepted"]
    assert res.rounds[0].candidate is None and res.rounds[1].mode == "resample"


def test_malformed_agent_steps_count_as_parse_failures():
    agent = lm([{"__raw__": "{broken"}, {"__raw__": "{broken"}])
    sage = make(write(), [], [WRONG_JUDGE], attempts=1, rounds=0)
    sage.agent.lm = agent
    res = sage(document="d", target_steps=1)
    a = res.rounds[0].attempts[0]
    assert a.parse_failures == 2 and a.answer is None and not a.correct
    assert res.rounds[0].status == "discarded"


def test_resume_continues_after_the_saved_round():
    first = make(write(), attempt(1, "Ada Venn"), attempts=1, rounds=0)
    r0 = first(document="d", target_steps=3).rounds
    assert [r.status for r in r0] == ["too_easy"]
    saved = [RoundResult.from_dict(r0[0].to_dict())]  # as read back from a checkpoint
    gen = lm(revise())
    seen: list[RoundResult] = []
    second = sage_of(gen, lm(attempt(3, "Ada Venn")), lm([]), attempts=1, rounds=1)
    res = second(document="d", target_steps=3, resume_from=saved, on_round=seen.append)
    assert [r.round for r in seen] == [1] and gen.calls == 1  # round 0 was not redone
    assert [r.status for r in res.rounds] == ["too_easy", "accepted"]


def test_finished_seed_is_not_rerun():
    done = make(write(), attempt(2, "Ada Venn"), attempts=1, rounds=0)(
        document="d", target_steps=2
    ).rounds
    again = make([], [], attempts=1, rounds=2)
    res = again(document="d", target_steps=2, resume_from=done)
    assert res.rounds == done


def test_parallel_attempts_are_distinct_and_complete():
    from tests.helpers import RuleLM, demo_agent_rule, demo_generator_rule

    agent = RuleLM(demo_agent_rule)
    sage = sage_of(
        RuleLM(demo_generator_rule),
        agent,
        RuleLM(demo_agent_rule),
        attempt_workers=3,
        attempts=3,
        rounds=0,
    )
    res = sage(document="d", target_steps=1)
    atts = res.rounds[0].attempts
    assert [a.index for a in atts] == [0, 1, 2] and all(a.correct for a in atts)
    assert len(agent.prompts) == 6  # 3 attempts x (search step + answer step)


def test_the_reviser_sees_passage_texts_and_earlier_rounds():
    """Round 2's reviser used to get titles and queries only, and '(no searches)' for the
    research; it now sees the passages the attempt read, the research queries with their
    passage references, and round 1's analysis."""
    research = [{"reasoning": "follow", "action": "search", "query": "Ada Venn composer"}]
    gen = lm(research + write()[1:] + revise() + revise(question="Which composer?"))
    agent = lm(attempt(1, "Ada Venn") * 3)
    sage = sage_of(gen, agent, lm([]), generator_searches=1, attempts=1, rounds=2)
    res = sage(document="Symphony doc", target_steps=3)
    assert [r.status for r in res.rounds] == ["too_easy", "too_easy", "too_easy"]
    round2 = gen.prompts[-1]
    assert "searched 'Ada Venn composer' -> P" in round2  # the research, not "(no searches)"
    assert "Ada Venn is a composer born in Brennick in 1950" in round2  # a passage's text
    assert "Analysis: hide the name" in round2  # round 1's analysis
    assert "Round 0 (generate)" in round2 and "-> too_easy" in round2


def test_the_drawn_answer_type_is_given_to_the_generator():
    gen = lm(write(question="In which year was the composer of the symphony born?", answer="1950"))
    sage = sage_of(gen, lm(attempt(2, "1950")), lm([]), attempts=1, rounds=0)
    res = sage(document="d", target_steps=2, answer_type="date")
    assert "[[ ## answer_type ## ]]\ndate" in gen.prompts[-1]
    assert res.rounds[0].candidate["answer_type"] == "date"


def test_a_wrong_type_is_fed_back_as_the_rule_it_broke():
    """A date answer that is a name breaks the type rule; the rewrite is told why."""
    gen = lm(write() + write(question="In which year was Ada Venn born?", answer="1950")[1:])
    sage = sage_of(gen, lm(attempt(2, "1950")), lm([]), attempts=1, rounds=0)
    res = sage(document="d", target_steps=2, answer_type="date")
    assert res.rounds[0].candidate["answer"] == "1950"
    assert "a date answer must contain a day, month or year" in gen.prompts[-1]
    written = [t for t in res.rounds[0].generator_trace if t["type"] == "written"]
    assert [bool(t["rule_violation"]) for t in written] == [True, False]


def test_a_repeated_search_is_not_a_search():
    """Both attempts repeated one query (the 1.5B demo, issue #25): a one-hop question
    passed S=2. Repeats now spend budget (paper) but never count toward difficulty."""
    repeat = [{"reasoning": "look", "action": "search", "text": "Marker1"}] * 2
    agent = lm([*repeat, {"reasoning": "done", "action": "answer", "text": "Ada Venn"}])
    sage = sage_of(lm(write()), agent, lm([]), profile="paper", attempts=1, rounds=0)
    res = sage(document="d", target_steps=2)
    a = res.rounds[0].attempts[0]
    assert (a.searches_made, a.n_searches) == (2, 1)
    assert [t.get("new") for t in a.trace if t["type"] == "search"] == [True, False]
    assert res.rounds[0].status == "too_easy"  # one real search for S=2: not accepted


def test_small_asks_again_instead_of_searching_a_repeated_query():
    steps = [{"reasoning": "look", "action": "search", "text": q}
             for q in ("Marker1", "marker1 ", "Marker2")]  # fmt: skip
    agent = lm([*steps, {"reasoning": "done", "action": "answer", "text": "Ada Venn"}])
    sage = sage_of(lm(write()), agent, lm([]), attempts=1, rounds=0, max_searches=2)
    res = sage(document="d", target_steps=2)
    a = res.rounds[0].attempts[0]
    assert [t["type"] for t in a.trace] == ["search", "repeat_query", "search", "answer"]
    assert (a.searches_made, a.n_searches) == (2, 2) and res.rounds[0].status == "accepted"
    assert "You already searched 'marker1'" in agent.prompts[2]
