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
