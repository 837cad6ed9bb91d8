"""Seeds of the real generate flow on prefect-dask's stock DaskTaskRunner: a LocalCluster of
worker processes, the embedded Qdrant Edge index, a served LM (bench/stub_server.py, a real
HTTP server on 127.0.0.1 answering every signature with scripted JSON)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import psutil
import pytest

from bench.stub_server import StubServer
from flows.engine.task_runners import build_task_runner
from flows.runs.store import RunStore
from modules.errors import SageError
from modules.settings import load_settings
from tests.helpers import REPO, SAGE

# only the tests that build or run a Dask runner need the optional extra (`[dask]`)
needs_dask = pytest.mark.skipif(
    importlib.util.find_spec("prefect_dask") is None, reason="needs prefect-dask ([dask] extra)"
)


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("SAGE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- configuration ------------------------------------------------------------------------
def test_thread_runner_spec_and_an_unknown_runner(clean_env):
    from prefect.task_runners import ThreadPoolTaskRunner

    thread = build_task_runner("thread", 3)
    assert isinstance(thread, ThreadPoolTaskRunner) and thread._max_workers == 3
    with pytest.raises(SageError, match="thread, dask"):
        build_task_runner("ray", 2)


@needs_dask
def test_dask_runner_specs(clean_env):
    from prefect_dask import DaskTaskRunner

    local = build_task_runner("dask", 2)
    assert type(local) is DaskTaskRunner and local.address is None  # the stock runner
    assert local.cluster_kwargs == {
        "n_workers": min(2, os.cpu_count()),
        "threads_per_worker": -(-2 // min(2, os.cpu_count())),
        "processes": True,
        "dashboard_address": None,
    }
    wide = build_task_runner("dask", 33).cluster_kwargs  # 33 seeds at once on this machine
    assert wide["n_workers"] == min(33, os.cpu_count())
    assert wide["n_workers"] * wide["threads_per_worker"] >= 33
    remote = build_task_runner("dask://10.0.0.5:8786", 8)
    assert remote.address == "tcp://10.0.0.5:8786" and remote.cluster_kwargs == {}


def test_task_runner_setting(clean_env, monkeypatch):
    assert load_settings().task_runner == "thread"
    monkeypatch.setenv("SAGE_TASK_RUNNER", "dask://scheduler:8786")
    assert load_settings().task_runner == "dask://scheduler:8786"
    monkeypatch.setenv("SAGE_TASK_RUNNER", "dask://no-port")
    with pytest.raises(ValueError, match="task_runner"):
        load_settings()


def test_cli_refuses_an_unknown_runner_before_starting(clean_env):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGE_")}
    cmd = [SAGE, "generate", "--seeds", "1", "--task-runner", "ray"]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=clean_env, timeout=120)
    assert res.returncode == 1 and res.stderr.startswith("sage: error:"), res.stderr
    assert "task_runner: Value error, 'ray'" in res.stderr and not (clean_env / "runs").exists()


# -- the checkpoint log from several processes --------------------------------------------
WRITER = """
import sys
from pathlib import Path
from flows.runs.store import RunStore
store = RunStore(Path(sys.argv[1]), "mp")
w = int(sys.argv[2])
for i in range(40):
    size = (1 + (i * 7919 + w * 104729) % 300) * 1000  # 1 kB .. 300 kB, past page sizes
    store.append_record({"seed_id": f"w{w}", "round": i, "pad": "x" * size})
"""


def test_appends_from_several_processes_never_interleave(tmp_path):
    (tmp_path / "mp").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w)], env=env)
        for w in range(4)
    ]
    store, reads = RunStore(tmp_path, "mp"), 0
    while any(p.poll() is None for p in procs):  # read while they write: never a torn line
        store.load_records()
        reads += 1
        time.sleep(0.01)
    assert all(p.returncode == 0 for p in procs) and reads > 1
    assert Counter(r["seed_id"] for r in store.load_records()) == {f"w{w}": 40 for w in range(4)}
    for w in range(4):
        assert [r["round"] for r in store.seed_rounds(f"w{w}")] == list(range(40))


@needs_dask
def test_the_flows_waits_see_dask_futures_finish_out_of_order():
    from uuid import uuid4

    from distributed import Client
    from prefect_dask.task_runners import PrefectDaskFuture

    from flows.engine import futures

    # like prefect-dask's, a client that is not the process's default one
    kw = {"n_workers": 1, "threads_per_worker": 2, "dashboard_address": None}
    with Client(processes=False, set_as_default=False, **kw) as c:
        slow = PrefectDaskFuture(uuid4(), c.submit(time.sleep, 2.0, pure=False))
        fast = PrefectDaskFuture(uuid4(), c.submit(time.sleep, 0.1, pure=False))
        t0 = time.monotonic()
        assert futures.first_done([slow, fast], poll=5.0) is fast  # the sliding window moves on
        assert time.monotonic() - t0 < 1.5  # woken by the fast one, not by the poll
        assert not slow.wrapped_future.done()


def test_the_flows_ledger_takes_what_tasks_return_and_what_failed_ones_saved(tmp_path):
    from flows.generate import Ledger

    store = RunStore(tmp_path, "r")
    store.path.mkdir()
    store.append_record({"seed_id": "s0", "round": 0, "status": "too_easy", "tokens": 5})
    ledger = Ledger(store, limit=20)
    ledger.add([{"seed_id": "s0", "round": 1, "status": "accepted", "tokens": 10},
                {"seed_id": "s0", "round": 1, "status": "accepted", "tokens": 10}])  # fmt: skip
    assert [r["round"] for r in ledger.rounds("s0")] == [0, 1] and ledger.spent == 15
    store.append_record({"seed_id": "s1", "round": 0, "status": "accepted", "tokens": 10})
    ledger.reload("s1")  # its task died after checkpointing round 0
    assert ledger.accepted() == 2 and ledger.spent == 25 and ledger.exhausted


# -- the real flow on a real Dask cluster -------------------------------------------------
def _workers(proc: subprocess.Popen) -> list[psutil.Process]:
    """The Dask worker processes under a sage command: multiprocessing spawns of its nannies
    (the resource tracker aside)."""
    out = []
    for p in psutil.Process(proc.pid).children(recursive=True):
        try:
            if "spawn_main" in " ".join(p.cmdline()):
                out.append(p)
        except psutil.NoSuchProcess:
            continue
    return out


def _lines(path: Path) -> list[dict]:
    """The whole lines of a checkpoint log (not the one a worker may be appending)."""
    text = path.read_text() if path.exists() else ""
    return [json.loads(x) for x in text[: text.rfind("\n") + 1].splitlines()]


def _in_flight(recs: list[dict], workers: list[int]) -> tuple[str, int] | None:
    """A seed a worker is still working on, by the records: its round 0 was checkpointed by
    that worker and was not its last (round 0 is too easy for the stub, so round 1 follows in
    the same task), and its round 1 is not written yet. (seed id, the worker's pid)."""
    rounds: dict[str, list[dict]] = {}
    for r in recs:
        rounds.setdefault(r["seed_id"], []).append(r)
    for sid, rs in rounds.items():
        first = rs[0]
        if len(rs) == 1 and first["status"] == "too_easy" and first["pid"] in workers:
            return sid, first["pid"]
    return None


@needs_dask
def test_kill_9_of_a_dask_worker_loses_no_round_and_the_run_resumes(tmp_path, indexed_workdir):
    """`sage generate --task-runner dask`: worker processes (one per core) read the embedded
    index at once and run the seeds (each record names the process that wrote it); the
    worker that the records show is in the middle of a seed is killed with SIGKILL; the run
    still completes every seed, that seed's next round is written by another worker process,
    no checkpointed round is redone or lost, and re-running the run resumes with nothing to
    do."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGE_")}
    env["SAGE_API_KEY"] = "stub"
    indexed_workdir(into=tmp_path)
    server = StubServer(latency=1.0)  # slow enough that work is in flight at the kill
    cmd = [SAGE, "--lm", "openai/stub", "--api-base", server.url, "generate", "--collection",
           "demo", "--seeds", "8", "--steps", "2", "--rounds", "1", "--attempts", "2",
           "--max-searches", "3", "--generator-searches", "1", "--concurrency", "4",
           "--task-runner", "dask", "--run-id", "dk", "--json"]  # fmt: skip
    ckpt = tmp_path / "runs" / "dk" / "checkpoints.jsonl"
    try:
        proc = subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)  # fmt: skip
        deadline, target, workers = time.time() + 300, None, []
        while target is None and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
            workers = [w.pid for w in _workers(proc)]
            target = _in_flight(_lines(ckpt), workers)
        expected = min(4, os.cpu_count() or 1)
        assert proc.poll() is None and len(workers) == expected, (proc.poll(), workers)
        assert target is not None, "no worker was seen in the middle of a seed"
        sid, victim = target
        os.kill(victim, signal.SIGKILL)
        written = _lines(ckpt)  # the victim can write nothing more
        # it still had the seed in flight: its round 1 was not written when it died
        assert [r["round"] for r in written if r["seed_id"] == sid] == [0]
        assert {r["pid"] for r in written} <= set(workers)  # the workers ran the seeds
        out, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err[-3000:]
        recs = _lines(ckpt)
        assert recs[: len(written)] == written  # nothing lost
        keys = [(r["seed_id"], r["round"]) for r in recs]
        assert len(keys) == len(set(keys)), "a checkpointed round was done twice"
        assert {s for s, _ in keys} == {f"s{i:05d}" for i in range(8)}
        assert all(r["host"] == socket.gethostname() for r in recs)
        assert proc.pid not in {r["pid"] for r in recs}  # no seed ran in the flow's process
        finish = next(r for r in recs if r["seed_id"] == sid and r["round"] == 1)
        assert finish["pid"] != victim  # the killed worker's seed was finished by another
        summary = json.loads(out)
        assert summary["metrics"]["funnel"]["seeds"] == 8
        again = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True,
                               timeout=600)  # fmt: skip
        assert again.returncode == 0, again.stderr[-3000:]
        assert json.loads(again.stdout)["resumed"] and _lines(ckpt) == recs
    finally:
        server.close()
