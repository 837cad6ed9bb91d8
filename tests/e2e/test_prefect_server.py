"""prefect.yaml for real: a local Prefect server, a process work pool, `prefect deploy`, a
deployment run picked up by `prefect worker start --run-once`, and what the run left behind.

Everything runs in its own process group and is killed in ``finally``; the server keeps its
database under a temporary PREFECT_HOME. Deselect with ``-m 'not server'``.

Only ``index-demo`` runs on the worker. The generate and nightly-refresh deployments are not
run here: a worker runs a deployment in a fresh process, where the tests' scripted LMs
(`plug_lms`) cannot reach, so they would run the real local LLM (minutes per seed on this
CPU) or need a served model; their flows run in process with scripted LMs in
test_generate_flow.py and test_refresh_flow.py, and their deployment entries are checked in
tests/unit/test_prefect_yaml.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.helpers import REPO

pytestmark = pytest.mark.server

BIN = Path(sys.executable).parent
DEPLOYMENT = "index-demo"  # deploy by name only: other deployments may come and go
FLOW_NAME = "index_corpus"
POOL = "sage-process"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Procs:
    """Processes started by the test, each in its own session; all killed by ``close``."""

    def __init__(self, env: dict[str, str], logs: Path):
        self.env, self.logs, self.procs = env, logs, []

    def start(self, name: str, *args: str) -> subprocess.Popen:
        log = (self.logs / f"{name}.log").open("w")
        proc = subprocess.Popen(
            [str(BIN / "prefect"), *args],
            cwd=REPO,
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def run(self, *args: str, timeout: float = 120) -> str:
        res = subprocess.run(
            [str(BIN / "prefect"), *args],
            cwd=REPO,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            start_new_session=True,
        )
        out = res.stdout + res.stderr
        assert res.returncode == 0, f"prefect {' '.join(args)} failed:\n{out[-3000:]}"
        return out

    def tail(self, name: str, chars: int = 3000) -> str:
        path = self.logs / f"{name}.log"
        return path.read_text(errors="replace")[-chars:] if path.exists() else ""

    def close(self) -> None:
        for proc in reversed(self.procs):
            for sig in (signal.SIGTERM, signal.SIGKILL):
                try:
                    os.killpg(proc.pid, sig)  # the whole group: flow-run children too
                except ProcessLookupError:
                    break
                try:
                    proc.wait(timeout=15)
                    break
                except subprocess.TimeoutExpired:
                    continue
            with contextlib.suppress(ProcessLookupError):  # a child outliving its leader
                os.killpg(proc.pid, signal.SIGKILL)


@pytest.fixture
def stack(tmp_path, models_dir) -> Iterator[tuple[Procs, str, Path]]:
    port = _free_port()
    api = f"http://127.0.0.1:{port}/api"
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SAGE_", "PREFECT_"))}
    env.update(
        PREFECT_HOME=str(tmp_path / "prefect"),
        PREFECT_API_URL=api,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_SERVER_UI_ENABLED="false",
        DO_NOT_TRACK="1",
        PYTHONUNBUFFERED="1",
        SAGE_DATA_DIR=str(data),
        SAGE_MODELS_DIR=str(models_dir),
        SAGE_RUNS_DIR=str(tmp_path / "runs"),
    )
    procs = Procs(env, tmp_path)
    try:
        yield procs, api, data
    finally:
        procs.close()


def _wait_healthy(procs: Procs, server: subprocess.Popen, api: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        assert server.poll() is None, f"the server exited:\n{procs.tail('server')}"
        try:
            if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"no /api/health after {timeout}s:\n{procs.tail('server')}")


def _flow_run(api: str, run_id: str) -> dict:
    res = httpx.get(f"{api}/flow_runs/{run_id}", timeout=10)
    res.raise_for_status()
    return res.json()


def test_deploy_and_run_index_demo_on_a_local_server_and_worker(stack):
    procs, api, data = stack
    t0 = time.time()
    server = procs.start("server", "server", "start", "--host", "127.0.0.1",
                         "--port", api.split(":")[-1].split("/")[0])  # fmt: skip
    _wait_healthy(procs, server, api, timeout=120)
    t_server = time.time() - t0

    procs.run("work-pool", "create", POOL, "--type", "process")
    out = procs.run("deploy", "--name", DEPLOYMENT, "--no-prompt", timeout=180)
    assert f"{FLOW_NAME}/{DEPLOYMENT}" in out, out[-2000:]
    out = procs.run("deployment", "run", f"{FLOW_NAME}/{DEPLOYMENT}")
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
    assert match, out[-2000:]
    run_id = match.group(1)
    assert _flow_run(api, run_id)["state_type"] == "SCHEDULED"

    worker = procs.start("worker", "worker", "start", "--pool", POOL, "--run-once")
    deadline = time.time() + 240
    state = None
    while time.time() < deadline:
        state = _flow_run(api, run_id)["state_type"]
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        if worker.poll() is not None and state == "SCHEDULED":
            break  # the worker's single poll missed the run
        time.sleep(1)
    assert state == "COMPLETED", f"flow run {state}:\n{procs.tail('worker')}"
    t_run = time.time() - t0

    # what the run left behind: a progress artifact and the versioned collection 'demo'
    res = httpx.post(
        f"{api}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [run_id]}}},
        timeout=10,
    )
    res.raise_for_status()
    artifacts = res.json()
    assert any(a["type"] == "progress" and a["data"] == 100.0 for a in artifacts), artifacts
    worker.wait(timeout=60)  # --run-once: it exits once its run is over (embedded Qdrant free)
    out = subprocess.run(
        [sys.executable, "-c", CHECK_INDEX, str(data / "qdrant")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    index = json.loads(out.stdout)
    assert index["version"].startswith("demo@") and index["points"] >= 85, index
    print(f"server healthy {t_server:.0f}s, flow run completed {t_run:.0f}s after start")


CHECK_INDEX = """
import json, sys
from modules.store import open_store, resolve
store = open_store(sys.argv[1])
version = resolve(store, "demo")
print(json.dumps({"version": version, "points": store.count(version)}))
"""
