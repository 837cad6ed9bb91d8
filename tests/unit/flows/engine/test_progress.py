"""Progress of a run: the tracker's counts and ETA, and its display in a pseudo-terminal
(rich, redrawn in place) and in a pipe (plain lines), each in a fresh interpreter."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import textwrap

import pytest

from flows.engine.artifacts import artifact_key
from flows.engine.progress import RunTracker, Snapshot, generate_tracker, round_done, watch
from tests.helpers import REPO

# a run of 4 planned seeds wanting 2 accepted items: a round line per seed (printed as the
# seed task does), each seed's cost, then the seed finished
CHILD = textwrap.dedent(
    """
    from flows.engine.progress import RunTracker, Snapshot, say

    with RunTracker(Snapshot("r1", 0, 4, accepted=0, wanted=2)) as t:
        for i in range(4):
            say(f"seed s{i} round 0 [generate]: accepted")
            t.cost(("s%d" % i, 0), 10, 1500)
            t.finished(accepted=min(2, i + 1))
    """
)


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("TERM", "NO_COLOR", "FORCE_COLOR")}
    return env | {"TERM": "xterm-256color", "COLUMNS": "160", "PYTHONPATH": str(REPO)}


def test_a_pipe_gets_plain_lines_one_per_finished_seed_and_a_last_one():
    res = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, env=_env(), timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert "\x1b[" not in res.stderr  # no terminal control codes in a log
    lines = [ln.split("] ", 1)[1] for ln in res.stderr.splitlines()]
    assert lines[0] == "run r1: 0/2 accepted, 0/4 seeds, 0 LM calls, 0 tokens, 0s elapsed, ETA ?"
    progress = [ln for ln in lines if ln.startswith("run r1")]
    assert [p.split(", ")[:2] for p in progress[1:]] == [
        ["run r1: 1/2 accepted", "1/4 seeds"],
        ["run r1: 2/2 accepted", "2/4 seeds"],
        ["run r1: 2/2 accepted", "3/4 seeds"],
        ["run r1: 2/2 accepted", "4/4 seeds"],
        ["run r1: done", "2/2 accepted"],
    ]
    assert progress[-1].endswith("4/4 seeds, 40 LM calls, 6.0k tokens, 0s elapsed")
    assert "ETA" not in progress[-1]
    # the round lines are kept, in order, between the progress lines
    assert [ln for ln in lines if ln.startswith("seed")] == [
        f"seed s{i} round 0 [generate]: accepted" for i in range(4)
    ]


def _in_pty(code: str) -> str:
    pid, fd = pty.fork()
    if pid == 0:  # the child: a fresh interpreter on the pseudo-terminal
        os.execve(sys.executable, [sys.executable, "-c", code], _env())
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
    assert os.waitstatus_to_exitcode(status) == 0, out.decode(errors="replace")
    return out.decode()


def test_a_terminal_gets_a_rich_bar_redrawn_in_place_with_round_lines_above_it():
    out = _in_pty(CHILD)
    assert "\x1b[2K" in out  # the line is erased and redrawn, not appended
    assert out.rfind("\x1b[?25h") > out.rfind("\x1b[?25l")  # the cursor is shown at once
    assert out.find("\x1b[?25h") < out.find("seed s0 round 0")  # (an abort skips the end)
    assert "━" in out and "%" in out  # rich's bar and percentage
    last = out.rsplit("\x1b[2K", 1)[1]
    assert "100%" in last and "2/2 accepted, 4/4 seeds, 40 LM calls, 6.0k tokens" in last
    for i in range(4):  # every round line printed whole, above the bar
        assert f"seed s{i} round 0 [generate]: accepted\r\n" in out
    assert "ETA" in out


def test_costs_count_once_per_round_and_resumed_work_is_not_pace():
    done = {
        "s0": [{"seed_id": "s0", "round": 0, "status": "accepted", "lm_calls": 7, "tokens": 70}],
        "s1": [{"seed_id": "s1", "round": 0, "status": "too_easy", "lm_calls": 5, "tokens": 50}],
    }
    seen: list[Snapshot] = []
    with watch(seen.append), generate_tracker("gen", 4, 3, 1, done) as tracker:
        round_done({"seed_id": "s1", "run_id": "gen", "round": 1, "lm_calls": 4, "tokens": 9})
        round_done({"seed_id": "s9", "run_id": "other", "round": 0, "lm_calls": 99})
        # the flow reports the same round again when the seed finishes: counted once
        tracker.seed_done([{"seed_id": "s1", "round": 1, "lm_calls": 4, "tokens": 9}], 1)
    first, last = seen[0], seen[-1]
    assert (first.accepted, first.done, first.lm_calls, first.tokens) == (1, 1, 12, 120)
    assert first.eta is None  # no progress in this process yet: no pace to guess from
    assert (last.accepted, last.done, last.lm_calls, last.tokens) == (1, 2, 16, 129)
    assert last.final
    assert last.fraction() == 0.5 and seen[-2].eta is not None


def test_the_fraction_is_seeds_or_accepted_of_wanted_whichever_is_further():
    assert Snapshot("r", 2, 8).fraction() == 0.25
    assert Snapshot("r", 2, 8, accepted=3, wanted=4).fraction() == 0.75
    assert Snapshot("r", 0, 0).fraction() == 1.0
    assert (
        Snapshot("r", 3, 10, "questions", 2, label="solved")
        .stats()
        .startswith("2 solved, 3/10 questions")
    )


def test_a_tracker_interrupted_does_not_say_done():
    seen: list[Snapshot] = []
    with pytest.raises(KeyboardInterrupt), watch(seen.append), RunTracker(Snapshot("r", 0, 2)):
        raise KeyboardInterrupt
    assert not seen[-1].final and "done" not in seen[-1].line()


@pytest.mark.parametrize(
    ("parts", "key"),
    [
        (("sage", "20261202-013649", "rounds"), "sage-20261202-013649-rounds"),
        (("sage", "nightly-01", "report"), "sage-nightly-01-report"),
        (("sage", "index", "demo"), "sage-index-demo"),
    ],
)
def test_artifact_keys_are_the_run_id_when_it_fits_prefect_rules(parts, key):
    assert artifact_key(*parts) == key


def test_artifact_keys_of_other_ids_are_sanitised_and_kept_apart():
    import re

    from prefect.types.names import raise_on_name_alphanumeric_dashes_only as prefect_rule

    keys = {rid: artifact_key("sage", rid, "rounds") for rid in ("Run_1", "run-1", "run.1", "ÄÖ")}
    assert len(set(keys.values())) == 4  # sanitised alike, still four keys
    assert keys["run-1"] == "sage-run-1-rounds"
    assert re.fullmatch(r"sage-run-1-[0-9a-f]{6}-rounds", keys["Run_1"])
    assert re.fullmatch(r"sage-run-1-[0-9a-f]{6}-rounds", keys["run.1"])
    assert re.fullmatch(r"sage-x-[0-9a-f]{6}-rounds", keys["ÄÖ"])
    for k in keys.values():
        prefect_rule(k)  # raises on a key Prefect refuses
