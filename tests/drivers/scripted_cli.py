"""Run the `sage` command line with scripted LMs (tests only): argv = sage's arguments.

Everything else is real (Prefect, embedded Qdrant, fastembed, the CLI's temporary API and
log routing); the LMs are tests/helpers.py RuleLMs, plugged where the flows get theirs.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import flows.engine.runtime as runtime  # noqa: E402
from flows.cli.main import main  # noqa: E402
from tests.helpers import RuleLM, demo_agent_rule, demo_generator_rule  # noqa: E402

LMS = {
    "generator": RuleLM(demo_generator_rule),
    "agent": RuleLM(demo_agent_rule),
    "judge": RuleLM(demo_agent_rule),
}

if __name__ == "__main__":
    runtime.role_lm = lambda _settings, role, _in_flight=1: LMS[role]
    sys.argv = ["sage", *sys.argv[1:]]
    main()
