"""A temporary Prefect API for one `sage` command that dies with it, however it ends.

Prefect's own temporary server is a child process that is only stopped by a clean exit:
a segfault or ``kill -9`` of sage left its ``uvicorn`` child running. sage starts the same
app (``prefect.server.api.server:create_app``, UI off, as Prefect's ephemeral mode does)
with the kernel's parent-death signal set, so the child is killed with its parent. A user
who sets ``PREFECT_API_URL`` (a real server) gets no temporary one.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from modules.errors import SageError

_PR_SET_PDEATHSIG = 1
STARTUP_TIMEOUT_S = float(os.environ.get("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", 120))


def _die_with_parent() -> None:  # runs in the child between fork and exec
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
            return resp.status == 200
    except OSError:
        return False


@contextlib.contextmanager
def temporary_api(log_file: Path | None = None) -> Iterator[str]:
    """Within this block Prefect talks to a temporary API (unless ``PREFECT_API_URL`` names
    a server: then that one); it is stopped on exit and killed by the kernel if sage dies.
    Yields the API's URL."""
    from prefect.settings import PREFECT_API_URL, get_current_settings, temporary_settings

    if url := get_current_settings().api.url:
        yield url
        return
    proc, url = start_server(log_file)
    try:
        with temporary_settings(updates={PREFECT_API_URL: url}):
            os.environ["PREFECT_API_URL"] = url  # for child processes (Dask workers)
            yield url
    finally:
        _drain_prefect_queues()
        os.environ.pop("PREFECT_API_URL", None)
        stop_server(proc)


def _drain_prefect_queues() -> None:
    """Send Prefect's queued logs and events while the API is still up."""
    from prefect.events.worker import EventsWorker
    from prefect.logging.handlers import APILogHandler

    with contextlib.suppress(Exception):
        APILogHandler().flush()
    with contextlib.suppress(Exception):
        EventsWorker.drain_all(timeout=5)


def start_server(log_file: Path | None) -> tuple[subprocess.Popen, str]:
    """A temporary Prefect API server (UI off) on a free port that the kernel kills with
    this process; returns it and its URL once it answers."""
    import prefect

    port = _free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1"}
    out = log_file.open("ab") if log_file else subprocess.DEVNULL
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "uvicorn",
            "--app-dir",
            str(Path(prefect.__file__).parents[1]),
            "--factory",
            "prefect.server.api.server:create_app",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--log-level",
            "error",
            "--lifespan",
            "on",
        ],
        env=env,
        stdout=out,
        stderr=out,
        stdin=subprocess.DEVNULL,
        preexec_fn=_die_with_parent if sys.platform == "linux" else None,
    )
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while not _healthy(url):
        if proc.poll() is not None:
            raise SageError(f"the temporary Prefect API exited with code {proc.returncode}")
        if time.monotonic() > deadline:
            stop_server(proc)
            raise SageError(f"the temporary Prefect API did not start in {STARTUP_TIMEOUT_S:.0f} s")
        time.sleep(0.2)
    return proc, url


def stop_server(proc: subprocess.Popen) -> None:
    """Stop a server of ``start_server`` (terminate, then kill after 5 s)."""
    if proc.poll() is None:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
    if proc.poll() is None:
        proc.kill()
        proc.wait()
