"""A command that runs no flow loads only its own part of the command line: no Prefect, no
flows (they took ~2 of its ~4 s to start)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from flows.cli.main import LIGHT, PARTS, make_app, subcommand
from tests.helpers import REPO


@pytest.mark.parametrize(
    "argv, sub",
    [
        (["search", "q"], "search"),
        (["--lm", "openai/x", "--verbose", "search", "q"], "search"),
        (["--profile=small", "-v", "config"], "config"),
        (["--data-dir", "d", "generate", "--n", "3"], "generate"),
        (["--help"], None),
        ([], None),
    ],
)
def test_the_subcommand_is_found_past_the_global_options(argv, sub):
    assert subcommand(argv) == sub


def test_a_light_command_imports_neither_prefect_nor_the_flows():
    code = (
        "import sys, flows.cli.main as m; app = m.make_app('search'); "
        "print(sorted(x for x in ('prefect', 'flows.generate', 'flows.evaluate') "
        "if x in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "[]"


def _names(app) -> set[str]:
    return {c.name or c.callback.__name__ for c in app.registered_commands} | {
        g.name for g in app.registered_groups
    }


def test_every_command_is_in_the_full_app_and_a_light_one_in_its_own():
    full = _names(make_app())
    assert {"generate", "index", "demo", "evaluate", "search", "judge", "config"} <= full
    assert len(PARTS) == 10
    for sub in LIGHT:
        assert sub in _names(make_app(sub)) < full
