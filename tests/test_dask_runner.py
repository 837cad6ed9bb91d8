"""Seeds of the real generate flow on a real Dask LocalCluster (2 worker processes).

The flow, its seed task, the checkpoint log and Prefect are the real ones. A Dask worker
cannot open the embedded Qdrant the flow process holds, so here every process (the flow
and each worker) opens a scripted Runtime instead: scripted LMs (tests/helpers.py RuleLM)
over the in-memory BM25 test retriever on the demo corpus. With a Qdrant server the
workers would open the real Runtime the same way (`Runtime.open`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

pytest.importorskip("prefect_dask")

from flows.dask_runner import (  # noqa: E402
    RemoteRuntime,
    SageDaskTaskRunner,
    WorkerLedger,
    read_complete_lines,
)
from flows.runtime import Runtime, program_hash  # noqa: E402
from flows.task_runners import build_task_runner, check_task_runner  # noqa: E402
from modules.errors import SageError  # noqa: E402
from modules.settings import load_settings  # noqa: E402
from tests.conftest import DEMO_CORPUS, REPO  # noqa: E402
from tests.helpers import (  # noqa: E402
    OverlapRetriever,
    RuleLM,
    demo_agent_rule,
    demo_generator_rule,
    load_corpus,
)

OPENER = "tests.test_dask_runner:open_scripted_runtime"
FLAKY_SEED = "s00001"
_FAILED_ONCE: set[str] = set()  # per process: the flaky seed fails once after round 0


class PidRuntime(Runtime):
    """The real Runtime over a scripted program; notes which process ran which seed and
    fails one seed once, right after its first checkpoint, with a transient LM error."""

    def run_seed(self, seed, done_rounds, on_round):
        sid = seed["seed_id"]
        with (Path(self.settings.runs_dir) / "pids.log").open("a") as fh:
            api = os.environ.get("PREFECT_API_URL", "-")
            fh.write(f"{os.getpid()} {sid} {len(done_rounds)} {api}\n")

        def hook(record):
            on_round(record)
            if sid == FLAKY_SEED and sid not in _FAILED_ONCE:
                _FAILED_ONCE.add(sid)
                raise ConnectionError("scripted transient failure after a checkpoint")

        super().run_seed(seed, done_rounds, hook)


def open_scripted_runtime(params, settings) -> Runtime:
    """A Runtime like `Runtime.open`, with scripted LMs and the in-memory test retriever."""
    from modules.sage import Sage

    passages = load_corpus(DEMO_CORPUS)
    retriever = OverlapRetriever(passages, k=3)
    program = Sage(
        retriever,
        generator_lm=RuleLM(demo_generator_rule, delay=0.02),
        agent_lm=RuleLM(demo_agent_rule, delay=0.02),
        judge_lm=RuleLM(demo_agent_rule),
        max_searches=params.max_searches,
        generator_searches=params.generator_searches,
        keep_unverified=params.keep_unverified,
        attempt_workers=params.attempt_workers,
    )
    rt = PidRuntime(params, settings, retriever, program, "demo@scripted")  # type: ignore[arg-type]
    rt.docs = {p.doc_id: {"title": p.title, "text": p.text} for p in passages}
    rt.program_hash = program_hash(program)
    return rt


@pytest.fixture
def clean_env(monkeypatch, tmp_path):
    for key in list(os.environ):
        if key.startswith("SAGE_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    return tmp_path


# -- configuration ------------------------------------------------------------------------
def test_task_runner_specs(clean_env):
    from prefect.task_runners import ThreadPoolTaskRunner

    thread = build_task_runner("thread", 3)
    assert isinstance(thread, ThreadPoolTaskRunner) and thread._max_workers == 3
    local = build_task_runner("dask", 2)
    assert isinstance(local, SageDaskTaskRunner) and local.address is None
    assert local.cluster_kwargs == {
        "n_workers": 2,
        "threads_per_worker": 1,
        "processes": True,
        "dashboard_address": None,
    }
    remote = build_task_runner("dask://10.0.0.5:8786", 8)
    assert remote.address == "tcp://10.0.0.5:8786" and remote.cluster_kwargs == {}
    assert remote.duplicate().address == remote.address  # what the flow engine enters
    with pytest.raises(SageError, match="thread, dask"):
        build_task_runner("ray", 2)


def test_task_runner_setting(clean_env, monkeypatch):
    assert load_settings().task_runner == "thread"
    monkeypatch.setenv("SAGE_TASK_RUNNER", "dask://scheduler:8786")
    assert load_settings().task_runner == "dask://scheduler:8786"
    monkeypatch.setenv("SAGE_TASK_RUNNER", "dask://no-port")
    with pytest.raises(ValueError, match="task_runner"):
        load_settings()


def test_dask_needs_a_qdrant_server(clean_env):
    check_task_runner(load_settings())  # threads: embedded Qdrant is fine
    with pytest.raises(SageError, match="SAGE_QDRANT"):
        check_task_runner(load_settings(task_runner="dask"))
    check_task_runner(load_settings(task_runner="dask", qdrant="http://qdrant:6333"))


@pytest.mark.parametrize(
    "runner, msg",
    [("dask", "set SAGE_QDRANT=http://HOST:6333"), ("ray", "task_runner: Value error, 'ray'")],
)
def test_cli_refuses_a_runner_that_cannot_work_before_starting(clean_env, runner, msg):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SAGE_")}
    sage = str(Path(sys.executable).parent / "sage")
    res = subprocess.run(
        [sage, "generate", "--seeds", "1", "--task-runner", runner],
        capture_output=True,
        text=True,
        env=env,
        cwd=clean_env,
        timeout=120,
    )
    assert res.returncode == 1 and res.stderr.startswith("sage: error:"), res.stderr
    assert msg in res.stderr and not (clean_env / "runs").exists()


def test_cli_generate_runs_the_flow_on_the_runner_from_the_setting(clean_env, monkeypatch):
    from typer.testing import CliRunner

    import flows.task_runners as task_runners
    from flows.cli import app

    built = []

    def spy(spec, concurrency=1, runtime_opener=task_runners.DEFAULT_OPENER):
        built.append((spec, concurrency))
        return build_task_runner(spec, concurrency, runtime_opener)

    monkeypatch.setattr(task_runners, "build_task_runner", spy)
    monkeypatch.setattr(Runtime, "open", staticmethod(open_scripted_runtime))
    monkeypatch.setenv("SAGE_TASK_RUNNER", "thread")
    args = ["generate", "--seeds", "2", "--steps", "1-2", "--rounds", "1", "--attempts", "2"]
    args += ["--concurrency", "2", "--max-searches", "3", "--run-id", "cli", "--json"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output[-3000:]
    summary = json.loads(res.stdout[res.stdout.index("{") :])
    assert summary["metrics"]["funnel"]["seeds"] == 2 and built == [("thread", 2)]
    manifest = json.loads((clean_env / "runs" / "cli" / "manifest.json").read_text())
    assert manifest["settings"]["task_runner"] == "thread"


def test_stand_ins_pickle_and_the_runtime_opens_once_per_process(clean_env):
    import pickle

    from flows.generate import GenerateParams

    settings = load_settings(runs_dir=str(clean_env / "runs"), api_key="sk-x")
    remote = pickle.loads(pickle.dumps(RemoteRuntime(GenerateParams(seeds=1), settings, OPENER)))
    assert remote.settings.api_key.get_secret_value() == "sk-x"
    first = remote.get()
    assert type(first).__name__ == "PidRuntime" and remote.get() is first
    assert remote.doc_ids() == first.doc_ids()  # the stand-in answers like the Runtime
    ledger = pickle.loads(pickle.dumps(WorkerLedger(str(clean_env / "runs"), "r1", True)))
    assert ledger.exhausted and ledger.store.run_id == "r1" and ledger.rounds("s0") == []


# -- the checkpoint log from several processes --------------------------------------------
WRITER = """
import sys
from pathlib import Path
from flows.run_store import RunStore
store = RunStore(Path(sys.argv[1]), "mp")
w = int(sys.argv[2])
for i in range(40):
    size = (1 + (i * 7919 + w * 104729) % 300) * 1000  # 1 kB .. 300 kB, past page sizes
    store.append_round({"seed_id": f"w{w}", "round": i, "pad": "x" * size})
"""


def test_appends_from_several_processes_never_interleave(tmp_path):
    (tmp_path / "mp").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(tmp_path), str(w)], env=env)
        for w in range(4)
    ]
    ckpt = tmp_path / "mp" / "checkpoints.jsonl"
    seen, offset, reads = [], 0, 0
    while any(p.poll() is None for p in procs):  # read while they write: never a torn line
        recs, offset = read_complete_lines(ckpt, offset)
        seen += recs
        reads += 1
        time.sleep(0.01)
    assert all(p.returncode == 0 for p in procs)
    recs, offset = read_complete_lines(ckpt, offset)
    seen += recs
    assert offset == ckpt.stat().st_size and reads > 1
    assert Counter(r["seed_id"] for r in seen) == {f"w{w}": 40 for w in range(4)}
    for w in range(4):
        rounds = WorkerLedger(str(tmp_path), "mp").rounds(f"w{w}")
        assert [r["round"] for r in rounds] == list(range(40))


def test_the_flows_ledger_takes_in_rounds_other_processes_appended(tmp_path):
    from flows.dask_runner import mark_synced, sync_ledger
    from flows.generate import Ledger
    from flows.run_store import RunStore

    store = RunStore(tmp_path, "r")
    store.path.mkdir()
    store.append_round({"seed_id": "s0", "round": 0, "status": "too_easy", "tokens": 5})
    ledger = Ledger(store, limit=20)
    mark_synced(ledger)
    worker = WorkerLedger(str(tmp_path), "r")  # what a Dask worker writes through
    worker.record("s0", {"seed_id": "s0", "round": 1, "status": "accepted", "tokens": 10})
    worker.record("s1", {"seed_id": "s1", "round": 0, "status": "accepted", "tokens": 10})
    worker.record("s0", {"seed_id": "s0", "round": 1, "status": "accepted", "tokens": 10})
    with (store.path / "checkpoints.jsonl").open("ab") as fh:
        fh.write(b'{"seed_id": "s2", "rou')  # a line still being written
    assert sync_ledger(ledger) == 2  # the duplicate round is ignored, the torn line left
    assert [r["round"] for r in ledger.rounds("s0")] == [0, 1]
    assert ledger.accepted() == 2 and ledger.spent == 25 and ledger.exhausted
    assert worker.rounds("s0") == ledger.rounds("s0")
    with (store.path / "checkpoints.jsonl").open("ab") as fh:
        fh.write(b'nd": 0, "status": "discarded"}\n')
    assert sync_ledger(ledger) == 1 and ledger.rounds("s2")[0]["status"] == "discarded"


def test_the_flows_waits_see_seed_futures_finish_out_of_order():
    from uuid import uuid4

    from distributed import Client

    from flows import futures
    from flows.dask_runner import SeedFuture

    with Client(processes=False, n_workers=1, threads_per_worker=2, dashboard_address=None) as c:
        slow = SeedFuture(c.submit(time.sleep, 2.0, pure=False), uuid4(), [])
        fast = SeedFuture(c.submit(time.sleep, 0.1, pure=False), uuid4(), [])
        assert futures.first_done([slow, fast]) is fast  # the sliding window moves on
        assert not slow.wrapped_future.done()
        futures.result(slow)
        assert slow.wrapped_future.done() and slow.dask_future.status == "finished"


# -- the real flow on a real Dask cluster -------------------------------------------------
def _run(tmp: Path, run_id: str, runner, monkeypatch) -> tuple[dict, list]:
    """Run the flow; its summary and its task runs as the Prefect API recorded them."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    from flows.generate import generate_dataset

    monkeypatch.setattr(Runtime, "open", staticmethod(open_scripted_runtime))  # the flow's own
    state = generate_dataset.with_options(task_runner=runner)(
        collection="demo",
        seeds=4,
        steps="1-2",
        rounds=1,
        attempts=2,
        run_id=run_id,
        concurrency=2,  # a sliding window of 2 seeds over 4
        max_searches=3,
        generator_searches=2,
        settings_overrides={"runs_dir": str(tmp / "runs"), "data_dir": str(tmp / "data")},
        return_state=True,
    )
    run_filter = FlowRunFilter(id=FlowRunFilterId(any_=[state.state_details.flow_run_id]))
    with get_client(sync_client=True) as client:
        task_runs = client.read_task_runs(flow_run_filter=run_filter)
        api_url = str(client.api_url).rstrip("/")
    return state.result(), [(t.name, t.state_type.value, api_url) for t in task_runs]


def _checkpoints(tmp: Path, run_id: str) -> list[dict]:
    lines = (tmp / "runs" / run_id / "checkpoints.jsonl").read_text().splitlines()
    return [json.loads(x) for x in lines]


def test_generate_flow_fans_seeds_out_to_dask_worker_processes(clean_env, monkeypatch):
    from flows.dataset import seed_finished
    from flows.generate import GenerateParams

    tmp = clean_env
    runner = SageDaskTaskRunner(
        cluster_kwargs={
            "n_workers": 2,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        },
        runtime_opener=OPENER,
    )
    t0 = time.perf_counter()
    out, task_runs = _run(tmp, "dask", runner, monkeypatch)
    dask_seconds = time.perf_counter() - t0
    recs = _checkpoints(tmp, "dask")
    keys = [(r["seed_id"], r["round"]) for r in recs]
    assert len(keys) == len(set(keys)), "a round was checkpointed twice"
    seeds = {f"s{i:05d}" for i in range(4)}
    assert {sid for sid, _ in keys} == seeds, "a seed is missing"
    params = GenerateParams(seeds=4, rounds=1)
    for sid in seeds:  # every seed finished: contiguous rounds ending terminal or at R
        rounds = sorted(r for s, r in keys if s == sid)
        assert rounds == list(range(len(rounds)))
        mine = sorted((r for r in recs if r["seed_id"] == sid), key=lambda r: r["round"])
        assert seed_finished(mine, params), f"{sid} did not finish: {mine[-1]['status']}"
    log = [line.split() for line in (tmp / "runs" / "pids.log").read_text().splitlines()]
    pids = {pid for pid, *_ in log}
    assert os.getpid() not in {int(p) for p in pids}, "a seed ran in the flow process"
    assert len(pids) > 1, f"all seeds ran in one worker process: {log}"
    retried = [n for _, sid, n, _ in log if sid == FLAKY_SEED]
    assert retried[-1] == "1", f"the retry of {FLAKY_SEED} did not resume: {log}"
    assert out["metrics"]["funnel"]["seeds"] == 4
    # the workers reported their task runs to the flow's own (ephemeral) Prefect API
    assert sorted((n, st) for n, st, _ in task_runs) == [
        (f"seed-s{i:05d}", "COMPLETED") for i in range(4)
    ]
    assert {api for *_, api in log} == {task_runs[0][2]}
    assert (tmp / "runs" / "dask" / "dataset.parquet").exists()

    # the same run with threads in this process checkpoints the same rounds and verdicts
    _FAILED_ONCE.clear()
    threads, _ = _run(tmp, "threads", build_task_runner("thread", 4), monkeypatch)
    strip = [(r["seed_id"], r["round"], r["status"]) for r in _checkpoints(tmp, "threads")]
    assert sorted(strip) == sorted((r["seed_id"], r["round"], r["status"]) for r in recs)
    assert threads["accepted"] == out["accepted"]
    print(f"dask run {dask_seconds:.1f}s, worker pids {sorted(pids)}")
