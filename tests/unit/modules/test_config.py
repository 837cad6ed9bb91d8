"""The run configuration: profiles, per-role LM settings and endpoints, budgets from the
context window, and what a resumed run may not change."""

from __future__ import annotations

import pytest

from modules.config import SageConfig, build_config, profile_config
from modules.errors import SageError
from modules.llm.lm import lm_config
from modules.programs.sage import Sage, SageLMs
from modules.settings import load_settings
from tests.helpers import TOY_PASSAGES, OverlapRetriever, ScriptedLM

SERVED = {"lm": "openai/stub", "api_base": "http://127.0.0.1:9/v1"}


@pytest.fixture(autouse=True)
def _no_sage_env(monkeypatch, tmp_path):
    for key in [k for k in __import__("os").environ if k.startswith("SAGE_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("SAGE_CONFIG", str(tmp_path / "absent.toml"))


def test_the_local_model_gets_small_and_a_served_model_gets_paper():
    small = build_config(load_settings())
    assert small.profile == "small"
    assert (small.passage_chars, small.trajectory_chars, small.notes_chars) == (450, 9000, 5000)
    assert (small.judge_min_gold_recall, small.judge_number_guard) == (0.5, True)
    assert small.role("agent").temperature == 0.7 and small.role("judge").max_tokens == 768
    paper = build_config(load_settings(**SERVED))
    assert paper.profile == "paper"
    assert paper.passage_chars is None and paper.generator_passage_chars is None
    assert (paper.judge_min_gold_recall, paper.judge_number_guard) == (0.0, False)
    assert not paper.regenerate_failed and small.regenerate_failed
    roles = {r: (paper.role(r).temperature, paper.role(r).max_tokens) for r in paper.roles}
    assert roles == {
        "generator": (1.0, 4096), "reviser": (1.0, 4096), "agent": (1.0, 2048),
        "judge": (0.0, 512),
    }  # fmt: skip
    # a 32k window holds far more than 10 searches of 3 x 600-character passages
    assert paper.trajectory_chars > 10 * 3 * 650 and paper.notes_chars > 20 * 3 * 650


def test_every_knob_is_overridable_on_its_own():
    knobs = {"agent_temperature": 0.3, "judge_max_tokens": 64, "passage_chars": 500,
             "judge_min_gold_recall": 0.25, "regenerate_failed": True}  # fmt: skip
    s = load_settings(**SERVED, profile="paper", **knobs)
    c = build_config(s, attempts=3, rounds=1)
    assert c.role("agent").temperature == 0.3 and c.role("generator").temperature == 1.0
    assert c.role("judge").max_tokens == 64 and c.passage_chars == 500
    assert c.judge_min_gold_recall == 0.25 and c.regenerate_failed
    assert (c.attempts, c.rounds) == (3, 1)
    shared = build_config(load_settings(**SERVED, temperature=0.5, max_tokens=999))
    assert {shared.role(r).temperature for r in ("generator", "reviser", "agent")} == {0.5}
    assert shared.role("judge").temperature == 0.0  # `temperature` is for the sampling roles
    assert {shared.role(r).max_tokens for r in shared.roles} == {999}


def test_lm_config_carries_each_roles_temperature_and_output_tokens():
    s = load_settings(**SERVED)
    assert (lm_config(s, "agent").temperature, lm_config(s, "agent").max_tokens) == (1.0, 2048)
    assert (lm_config(s, "judge").temperature, lm_config(s, "judge").max_tokens) == (0.0, 512)
    small = load_settings(**SERVED, profile="small")
    assert (lm_config(small, "agent").temperature, lm_config(small, "agent").max_tokens) == (
        0.7,
        768,
    )


def test_a_hosted_judge_never_goes_to_the_generators_server():
    s = load_settings(**SERVED, judge_lm="gemini/gemini-2.0-flash", api_key="vllm-key")
    judge = lm_config(s, "judge")
    assert judge.api_base is None and judge.api_key is None  # Gemini, with Gemini's own key
    assert lm_config(s, "generator").api_base == "http://127.0.0.1:9/v1"
    assert lm_config(s, "agent").api_key == "vllm-key"
    own = load_settings(**SERVED, judge_lm="openai/j", judge_api_base="http://127.0.0.1:8/v1",
                        judge_api_key="judge-key")  # fmt: skip
    assert (lm_config(own, "judge").api_base, lm_config(own, "judge").api_key) == (
        "http://127.0.0.1:8/v1",
        "judge-key",
    )
    assert lm_config(own, "generator").api_base == "http://127.0.0.1:9/v1"
    from modules.llm.lm import build_lm

    lm = build_lm(judge)  # LiteLLM to Gemini: no api_base sent anywhere
    assert "api_base" not in lm.kwargs


@pytest.mark.parametrize(
    ("overrides", "named"),
    [
        ({"profile": "huge"}, "profile"),
        ({"agent_temperature": 5}, "agent_temperature"),
        ({"judge_api_base": "judge.example"}, "judge_api_base"),
        ({"passage_chars": -1}, "passage_chars"),
    ],
)
def test_bad_settings_name_the_setting(overrides, named):
    with pytest.raises(ValueError, match=named):
        load_settings(**SERVED, **overrides)


def test_a_context_window_smaller_than_the_fixed_prompt_is_refused():
    s = load_settings(**SERVED, agent_context_window=1500)
    with pytest.raises(SageError, match="agent_context_window"):
        build_config(s)


def test_a_resumed_run_may_change_execution_knobs_only():
    old = profile_config("paper", attempts=4).record()
    assert profile_config("paper", attempts=4, attempt_workers=8).resume_conflict(old) is None
    assert "profile" in (profile_config("small", attempts=4).resume_conflict(old) or "")
    assert "attempts" in (profile_config("paper", attempts=2).resume_conflict(old) or "")
    back = SageConfig.from_record(old)
    assert back == profile_config("paper", attempts=4)


def _writes(profile: str) -> list[dict]:
    """The research steps that choose to write: one more under a profile whose generator
    must search first (its required search of the seed's title comes between them)."""
    step = {"reasoning": "enough", "action": "write", "query": ""}
    return [step] * (1 + profile_config(profile).generator_min_searches)


def _pair(answer: str, profile: str = "paper") -> list[dict]:
    plan = [{"sub_question": "Which country?", "sub_answer": answer, "passage": "P1"}]
    return [
        *_writes(profile),
        {"reasoning": "chain", "question": "Which country hosts the shoals festival?",
         "answer": answer, "plan": plan},
    ]  # fmt: skip


@pytest.mark.parametrize(("profile", "status"), [("paper", "accepted"), ("small", "discarded")])
def test_a_capable_judges_yes_for_an_alias_stands_under_paper_only(profile, status):
    """'USA' for 'United States' shares no word with the gold: the small profile's overlap
    guard overrules the judge's 'correct' (a false reject with a capable judge)."""
    queries = ["Brennick capital", "Skellis lighthouses"]  # the second finds a new passage
    steps = [{"reasoning": "look", "action": "search", "text": q} for q in queries]
    agent = ScriptedLM([*steps, {"reasoning": "done", "action": "answer", "text": "USA"}])
    judge = ScriptedLM([{"extracted_answer": "USA", "reasoning": "same", "correct": True}])
    for lm in (agent, judge):
        lm.cache = False
    lms = SageLMs(ScriptedLM(_pair("United States", profile)), agent, judge)
    sage = Sage(OverlapRetriever(TOY_PASSAGES), lms, profile_config(profile, attempts=1, rounds=0))
    res = sage(document="d", target_steps=2)
    assert res.rounds[0].status == status
    method = res.rounds[0].attempts[0].judgement["method"]
    assert method == ("llm" if profile == "paper" else "overlap_guard")


def test_no_target_is_accepted_on_pass_at_k_alone_and_told_multiple():
    gen = ScriptedLM(_pair("United States"))
    agent = ScriptedLM([{"reasoning": "known", "action": "answer", "text": "United States"}])
    sage = Sage(OverlapRetriever(TOY_PASSAGES), SageLMs(gen, agent, ScriptedLM([])),
                profile_config("paper", attempts=1, rounds=1))  # fmt: skip
    res = sage(document="d", target_steps=None)
    assert [r.status for r in res.rounds] == ["accepted"]
    assert res.rounds[0].target_steps is None and res.rounds[0].summary()["min_searches"] == 0
    assert "[[ ## target_steps ## ]]\nmultiple" in gen.prompts[-1]


def test_a_failed_generation_is_dropped_under_paper_and_regenerated_under_small():
    garbage = [{"__raw__": "nope"}, {"__raw__": "nope"}]
    for profile, statuses in (("paper", ["discarded"]), ("small", ["generation_failed", "x"])):
        gen = ScriptedLM(_writes(profile) + garbage + _pair("United States", profile))
        gen.cache = False
        agent = ScriptedLM([{"reasoning": "k", "action": "answer", "text": "United States"}])
        cfg = profile_config(profile, attempts=1, rounds=1)
        res = Sage(OverlapRetriever(TOY_PASSAGES), SageLMs(gen, agent, ScriptedLM([])), cfg)(
            document="d", target_steps=None
        )
        got = [r.status for r in res.rounds]
        assert got[0] == statuses[0] and len(got) == len(statuses), (profile, got)
        assert res.rounds[0].candidate is None and res.rounds[0].error


def test_a_knob_added_since_the_run_started_resumes_at_its_old_behaviour():
    old = profile_config("paper", attempts=4).record()
    old.pop("generator_min_searches")  # a manifest written before the knob existed
    assert profile_config("paper", attempts=4).resume_conflict(old) is None
    old_small = profile_config("small", attempts=4).record()
    old_small.pop("generator_min_searches")
    conflict = profile_config("small", attempts=4).resume_conflict(old_small)
    assert conflict == "generator_min_searches: 0 -> 1"
