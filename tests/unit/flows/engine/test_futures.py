"""Interruptible waiting on task futures (flows/futures.py)."""

from __future__ import annotations

import contextlib
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from flows.engine import futures


@dataclass(eq=False)
class Wrapped:
    """Shaped like Prefect's PrefectConcurrentFuture: a wrapped concurrent future."""

    wrapped_future: Any

    def wait(self, timeout: float | None = None) -> None:
        with contextlib.suppress(TimeoutError):
            self.wrapped_future.result(timeout=timeout)

    def result(self) -> Any:
        return self.wrapped_future.result()


def test_first_done_returns_the_fastest_and_result_waits() -> None:
    with ThreadPoolExecutor(3) as pool:
        slow = Wrapped(pool.submit(time.sleep, 1.5))
        fast = Wrapped(pool.submit(lambda: "fast"))
        mid = Wrapped(pool.submit(lambda: time.sleep(0.5) or "mid"))
        assert futures.first_done([slow, mid, fast], poll=0.05) is fast
        assert futures.first_done([slow, mid], poll=0.05) is mid
        t0 = time.perf_counter()
        assert futures.result(slow, poll=0.05) is None
        assert time.perf_counter() - t0 > 0.5
