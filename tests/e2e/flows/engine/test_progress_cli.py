"""`sage generate` and `sage evaluate` show their progress: a rich bar in a pseudo-terminal,
plain lines in a pipe. Real CLI, Prefect, embedded Qdrant and fastembed; scripted LMs
(tests/drivers/scripted_cli.py, RuleLM)."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPO, clean_env

DRIVER = REPO / "tests" / "drivers" / "scripted_cli.py"
GENERATE = [
    "generate",
    "--collection",
    "demo",
    "--seeds",
    "2",
    "--steps",
    "1",
    "--rounds",
    "1",
    "--attempts",
    "2",
    "--max-searches",
    "3",
    "--generator-searches",
    "2",
]


@pytest.fixture(scope="module")
def workdir(indexed_workdir) -> Path:
    return indexed_workdir("progress")


def _env() -> dict[str, str]:
    env = {k: v for k, v in clean_env().items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    return env | {"TERM": "xterm-256color", "COLUMNS": "200"}


def _plain(stderr: str) -> list[str]:
    return [ln.split("] ", 1)[1] for ln in stderr.splitlines() if ln.startswith("[")]


def test_generate_in_a_pipe_prints_plain_progress_lines(workdir):
    res = subprocess.run(
        [sys.executable, str(DRIVER), *GENERATE, "--run-id", "pipe"],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    assert "\x1b[" not in res.stderr
    lines = _plain(res.stderr)
    progress = [ln for ln in lines if ln.startswith("run pipe: ") and "seeds," in ln]
    assert progress[0].startswith("run pipe: 0 accepted, 0/2 seeds, 0 LM calls, 0 tokens, ")
    # 7 LM calls a seed: the small profile's required search (generator_min_searches 1)
    # is followed by one more research step than the 6 of a generator that writes at once
    assert progress[-1].startswith("run pipe: done, 2 accepted, 2/2 seeds, 14 LM calls, ")
    assert [re.search(r"\d/2 seeds", p)[0] for p in progress] == [
        "0/2 seeds",
        "1/2 seeds",
        "2/2 seeds",
        "2/2 seeds",
    ]
    rounds = [ln for ln in lines if ln.startswith("seed ")]
    assert [r.split(" [")[0] for r in rounds] == [
        "seed s00000 (S=1) round 0",
        "seed s00001 (S=1) round 0",
    ]
    assert "run dir:" in res.stdout


def _in_pty(args: list[str], cwd: Path) -> str:
    pid, fd = pty.fork()
    if pid == 0:  # the child: the scripted CLI on the pseudo-terminal
        os.chdir(cwd)
        os.execve(sys.executable, [sys.executable, str(DRIVER), *args], _env())
    out = b""
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        out += chunk
    _, status = os.waitpid(pid, 0)
    text = out.decode(errors="replace")
    assert os.waitstatus_to_exitcode(status) == 0, text[-3000:]
    return text


def test_generate_in_a_terminal_draws_a_rich_bar_under_the_round_lines(workdir):
    out = _in_pty([*GENERATE, "--run-id", "tty"], workdir)
    assert "\x1b[2K" in out and "━" in out  # a bar, erased and redrawn in place
    bar = out.split("run dir:")[0].rsplit("\x1b[2K", 1)[1]
    assert "run tty" in bar and "100%" in bar
    assert "2 accepted, 2/2 seeds, 14 LM calls" in bar  # 7 a seed, as in the pipe test
    assert re.search(r"seed s00000 \(S=1\) round 0 \[generate\]: [^\r\n]+\r\n", out)
    assert "run tty: done" not in out  # the plain lines are for pipes only


def test_evaluate_in_a_pipe_prints_questions_solved(workdir):
    qa = workdir / "qa.jsonl"
    rows = [
        {
            "id": "a",
            "question": "Who led the first ascent of Mount Oskarrow?",
            "answer": "Ferrin Vashti",
        },
        {"id": "b", "question": "Who founded Brennick?", "answer": "Osric Tarn"},
    ]
    qa.write_text("".join(json.dumps(r) + "\n" for r in rows))
    res = subprocess.run(
        [
            sys.executable,
            str(DRIVER),
            "evaluate",
            str(qa),
            "--format",
            "qa",
            "--collection",
            "demo",
            "--attempts",
            "1",
            "--run-id",
            "ev",
        ],
        cwd=workdir,
        capture_output=True,
        text=True,
        env=_env(),
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    progress = [ln for ln in _plain(res.stderr) if ln.startswith("run ev: ")]
    # the scripted agent answers "Ferrin Vashti" to everything: a is solved, b is not
    assert [p.split(", ")[:2] for p in progress] == [
        ["run ev: 0 solved", "0/2 questions"],
        ["run ev: 1 solved", "1/2 questions"],
        ["run ev: 1 solved", "2/2 questions"],
        ["run ev: done", "1 solved"],
    ]
