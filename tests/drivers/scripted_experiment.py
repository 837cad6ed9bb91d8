"""Run the real experiment flow with scripted LMs (tests only): argv = run_id delay seeds
[arms]. Real Prefect, real embedded Qdrant, real checkpointing; only the LMs are scripted
(tests/helpers.py RuleLM): the generator writes a pair one search solves (too easy for S=2),
the reviser rewrites it to need two searches (feedback always fixes it), resampling writes the
easy pair again (it never does). Prints ``CALLS {role: prompts}`` at the end."""

import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import flows.engine.runtime as runtime  # noqa: E402
from flows.engine.api_server import temporary_api  # noqa: E402
from flows.experiment import ExperimentParams, run_experiment  # noqa: E402
from tests.helpers import RuleLM  # noqa: E402

HIDDEN = "hidden hop"
PLAN = [{"sub_question": "Who led the first ascent?", "sub_answer": "Ferrin Vashti",
         "passage": "P1"}]  # fmt: skip
EASY = "Who led the first ascent of Mount Oskarrow?"
HARD = f"Who led the first ascent of the peak the guide would not name ({HIDDEN})?"
QUERIES = ("Oskarrow Expedition of 1868 climbers", "Southern Shoals Expedition reef charts")


def generator_rule(prompt: str) -> dict:
    """Scripted generator and reviser: the easy pair; revised, the pair that needs 2 searches."""
    pair = {"answer": "Ferrin Vashti", "answer_type": "entity", "plan": PLAN}
    if "generator_trace" in prompt:
        return {"analysis": "scripted", "question": HARD, **pair}
    if "searches_left" in prompt:
        return {"reasoning": "scripted", "action": "write", "query": ""}
    return {"reasoning": "scripted", "question": EASY, **pair}


def agent_rule(prompt: str) -> dict:
    """Scripted agent and judge: one search for the easy question, two for the revised one;
    every answer is the gold (the judge agrees). The two queries find different passages, so
    both count as searches."""
    if "gold_answers" in prompt:
        return {"extracted_answer": "Ferrin Vashti", "reasoning": "scripted", "correct": True}
    if "searches_left" in prompt:
        done = len(re.findall(r"^Search \d+:", prompt, re.M))
        if done < (2 if HIDDEN in prompt else 1):
            return {"reasoning": "scripted", "action": "search", "text": QUERIES[done]}
        return {"reasoning": "scripted", "action": "answer", "text": "Ferrin Vashti"}
    return {"reasoning": "scripted", "answer": "Ferrin Vashti"}


def scripted_lms(delay: float = 0.0) -> dict[str, RuleLM]:
    return {"generator": RuleLM(generator_rule, delay), "agent": RuleLM(agent_rule, delay),
            "judge": RuleLM(agent_rule, delay)}  # fmt: skip


def params(run_id: str, seeds: int, arms: str = "no-target,feedback,resample", **kw):
    return ExperimentParams(
        collection="demo", seeds=seeds, steps="2", rounds=2, attempts=2, arms=arms,
        run_id=run_id, max_searches=3, generator_searches=1, answer_types="entity",
        bootstrap=500, **kw,
    )  # fmt: skip


def main() -> None:
    run_id, delay, seeds = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    arms = sys.argv[4] if len(sys.argv) > 4 else "no-target,feedback,resample"
    lms = scripted_lms(delay)
    runtime.role_lm = lambda _settings, role, _in_flight=1: lms[role]
    with temporary_api():  # as the sage CLI does: the API dies with this process
        out = run_experiment(params(run_id, seeds, arms))
    print("CALLS", json.dumps({role: len(lm.prompts) for role, lm in lms.items()}))
    print("SUMMARY", json.dumps(out, default=str))


if __name__ == "__main__":
    main()
