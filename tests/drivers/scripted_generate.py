"""Run the real generate flow with scripted LMs (tests only): argv = run_id delay fail_first.

Real Prefect, real embedded Qdrant, real checkpointing; only the LMs are scripted
(tests/helpers.py RuleLM). `fail_first` > 0 makes the first N agent calls raise a
transient transport error, to exercise the one retry layer (DSPy's, as for served LMs).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from dspy import lm15  # noqa: E402

import flows.engine.runtime as runtime  # noqa: E402
from flows.engine.api_server import temporary_api  # noqa: E402
from flows.generate import GenerateParams, generate_dataset  # noqa: E402
from tests.helpers import RuleLM, demo_agent_rule, demo_generator_rule  # noqa: E402


def main() -> None:
    run_id, delay, fail_first = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    seeds = int(sys.argv[4]) if len(sys.argv) > 4 else 3
    failures = {"left": fail_first}

    def agent_rule(prompt: str):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise lm15.TransportError("scripted transient failure")
        return demo_agent_rule(prompt)

    lms = {
        "generator": RuleLM(demo_generator_rule, delay),
        "agent": RuleLM(agent_rule, delay),
        "judge": RuleLM(demo_agent_rule, delay),
    }
    lms["agent"].num_retries = 3  # as a served LM: DSPy's loop retries, the task does not
    runtime.role_lm = lambda _settings, role, _in_flight=1: lms[role]
    with temporary_api():  # as the sage CLI does: the API dies with this process
        params = GenerateParams(
            collection="demo", seeds=seeds, steps="1-2", rounds=1, attempts=2, run_id=run_id,
            max_searches=3, generator_searches=2,
        )  # fmt: skip
        out = generate_dataset(params)
    print("ACCEPTED", out["accepted"], "FAILURES_LEFT", failures["left"])


if __name__ == "__main__":
    main()
