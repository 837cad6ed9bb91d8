"""Leaving promptly on Ctrl-C or SIGTERM: every finished round is already checkpointed
(fsynced), so nothing is lost by not waiting for the round in flight.

Prefect turns SIGTERM into a crash only after its task runner has joined the running tasks,
and a task may be inside a minutes-long local-LLM call, so ``sage generate`` seemed to
ignore SIGTERM. Flows wrap their task loops in ``prompt_exit()``, which exits at once.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
from collections.abc import Iterator
from typing import Any, NoReturn

import psutil

RESUME_HINT = "finished work is checkpointed; re-run with the same id to resume"


def abort(code: int, message: str) -> NoReturn:
    """Print ``message``, stop child processes (e.g. the ephemeral Prefect API) and exit now,
    without joining worker threads."""
    print(message, file=sys.stderr, flush=True)
    try:
        children = psutil.Process().children(recursive=True)
        for child in children:
            child.terminate()
        _, alive = psutil.wait_procs(children, timeout=5)
        for child in alive:
            child.kill()
    except psutil.Error:  # a child that exited meanwhile: exiting matters more
        pass
    with contextlib.suppress(Exception):
        sys.stdout.flush()
    os._exit(code)


_ABORTING = threading.Event()


def _handler(signum: int, _frame: Any) -> None:
    if _ABORTING.is_set():  # a second signal while leaving
        return
    _ABORTING.set()
    name = "interrupted" if signum == signal.SIGINT else "terminated"
    abort(128 + signum, f"sage: {name}; {RESUME_HINT}")


@contextlib.contextmanager
def prompt_exit() -> Iterator[None]:
    """Within this block SIGINT/SIGTERM exit the process at once (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    for s in old:
        signal.signal(s, _handler)
    try:
        yield
    finally:
        for s, h in old.items():
            signal.signal(s, h)
