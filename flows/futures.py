"""Waiting on Prefect task futures without deafening the process to SIGTERM/SIGINT.

A main thread blocked in ``future.result()`` only notices a signal when the kernel happens
to deliver it to that thread; otherwise it waits for the task (minutes with a local LLM).
Waking up every ``poll`` seconds lets Python run the signal handlers (Prefect's SIGTERM
bridge, KeyboardInterrupt) promptly.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any


def result(fut: Any, poll: float = 0.5) -> Any:
    """``fut.result()``, interruptible by signals."""
    wrapped = getattr(fut, "wrapped_future", None)
    if isinstance(wrapped, concurrent.futures.Future):
        while not wrapped.done():
            fut.wait(timeout=poll)
    return fut.result()


def first_done(futs: list[Any], poll: float = 0.5) -> Any:
    """The first of ``futs`` to finish (interruptible by signals like ``result``)."""
    wrapped = {f: getattr(f, "wrapped_future", None) for f in futs}
    plain = {f: w for f, w in wrapped.items() if isinstance(w, concurrent.futures.Future)}
    if len(plain) < len(futs):  # futures of other runners: wait on them in order
        return futs[0]
    done, _ = concurrent.futures.wait(
        list(plain.values()), timeout=0, return_when=concurrent.futures.FIRST_COMPLETED
    )
    while not done:
        done, _ = concurrent.futures.wait(
            list(plain.values()), timeout=poll, return_when=concurrent.futures.FIRST_COMPLETED
        )
    return next(f for f, w in plain.items() if w in done)
