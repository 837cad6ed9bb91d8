"""prefect.yaml for real: a local Prefect server, a process work pool, `prefect deploy`,
deployment runs picked up by `prefect worker start --run-once`, and what they left behind.

Everything runs in its own process group and is killed in ``finally``; the server keeps its
database under a temporary PREFECT_HOME. Deselect with ``-m 'not server'``.

``index-demo``, ``generate`` and ``nightly-refresh`` run on the worker, in order. A worker
runs each deployment in a fresh process where the tests' scripted LMs cannot reach, so the
generating ones use a served model: ``bench/stub_server.py``'s scripted chat server on
127.0.0.1, named by ``SAGE_LM`` / ``SAGE_API_BASE`` in the worker's environment, as a real
deployment names its vLLM server.
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
# deployed by name only (other deployments may come and go): name -> flow name
DEPLOYMENTS = {"index-demo": "index_corpus", "generate": "generate-dataset",
               "nightly-refresh": "nightly-refresh"}  # fmt: skip
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


def _run_deployment(procs: Procs, api: str, name: str, *params: str) -> str:
    """Deploy ``name``, run it (``--param`` overrides), let one worker poll pick it up;
    returns the flow run id once it COMPLETED."""
    flow_name = DEPLOYMENTS[name]
    out = procs.run("deploy", "--name", name, "--no-prompt", timeout=180)
    assert f"{flow_name}/{name}" in out, out[-2000:]
    out = procs.run("deployment", "run", f"{flow_name}/{name}", *params)
    match = re.search(r"UUID:\s*([0-9a-f-]{36})", out)
    assert match, out[-2000:]
    run_id = match.group(1)
    assert _flow_run(api, run_id)["state_type"] == "SCHEDULED"
    worker = procs.start(f"worker-{name}", "worker", "start", "--pool", POOL, "--run-once")
    deadline = time.time() + 300
    state = None
    while time.time() < deadline:
        state = _flow_run(api, run_id)["state_type"]
        if state in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            break
        if worker.poll() is not None and state == "SCHEDULED":
            break  # the worker's single poll missed the run
        time.sleep(1)
    assert state == "COMPLETED", f"{name} run {state}:\n{procs.tail(f'worker-{name}')}"
    worker.wait(timeout=60)  # --run-once: it exits once its run is over (embedded Qdrant free)
    return run_id


def _artifacts(api: str, run_id: str) -> list[dict]:
    res = httpx.post(
        f"{api}/artifacts/filter",
        json={"artifacts": {"flow_run_id": {"any_": [run_id]}}},
        timeout=10,
    )
    res.raise_for_status()
    return res.json()


def test_deploy_and_run_index_generate_and_refresh_on_a_local_server_and_worker(stack, tmp_path):
    from bench.stub_server import StubServer

    procs, api, data = stack
    t0 = time.time()
    server = procs.start("server", "server", "start", "--host", "127.0.0.1",
                         "--port", api.split(":")[-1].split("/")[0])  # fmt: skip
    _wait_healthy(procs, server, api, timeout=120)
    t_server = time.time() - t0
    procs.run("work-pool", "create", POOL, "--type", "process")

    run_id = _run_deployment(procs, api, "index-demo")
    artifacts = _artifacts(api, run_id)  # a progress artifact and the collection 'demo'
    assert any(a["type"] == "progress" and a["data"] == 100.0 for a in artifacts), artifacts
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
    t_index = time.time() - t0

    stub = StubServer()
    procs.env.update(SAGE_LM="openai/stub", SAGE_API_BASE=stub.url)
    try:
        run_id = _run_deployment(procs, api, "generate", "--param", 'params={"collection": '
                                 '"demo", "seeds": 2, "steps": "2", "rounds": 1, "attempts": 2, '
                                 '"run_id": "deployed"}')  # fmt: skip
        manifest = json.loads((tmp_path / "runs" / "deployed" / "manifest.json").read_text())
        assert manifest["config"]["profile"] == "paper" and len(manifest["seeds"]) == 2
        assert (tmp_path / "runs" / "deployed" / "dataset.parquet").exists()
        assert {"table", "markdown"} <= {a["type"] for a in _artifacts(api, run_id)}
        published = tmp_path / "datasets"
        params = {"corpus": "flows/data/demo/corpus.jsonl", "dataset": "demo",
                  "collection": "demo", "n": 1, "steps": "2", "rounds": 1, "attempts": 2,
                  "datasets_dir": str(published)}  # fmt: skip
        _run_deployment(procs, api, "nightly-refresh", "--param",
                        f"params={json.dumps(params)}")  # fmt: skip
    finally:
        stub.close()
    assert stub.calls["step"] > 0 and stub.calls["write"] > 0  # the served model did the work
    versions = [p for p in (published / "demo").iterdir() if p.name != "latest"]
    assert len(versions) == 1 and (published / "demo" / "latest").exists()
    print(f"server healthy {t_server:.0f}s, index run {t_index:.0f}s, "
          f"all three {time.time() - t0:.0f}s after start")  # fmt: skip


CHECK_INDEX = """
import json, sys
from modules.index.store import open_store, resolve
store = open_store(sys.argv[1])
version = resolve(store, "demo")
print(json.dumps({"version": version, "points": store.count(version)}))
"""
