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


def _window(items, level, pool, log):
    """Run ``items`` through in_window, each a 0.1 s task; returns the items in the order
    they finished and the most that were ever in flight."""
    import threading

    lock, active, peak, order = threading.Lock(), [0], [0], []

    def task(x: Any) -> Any:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.1)
        with lock:
            active[0] -= 1
        return x

    def done(item: Any, fut: Any) -> None:
        assert futures.result(fut, poll=0.01) == item
        order.append(item)
        log.append(("done", item))

    futures.in_window(items, lambda x: Wrapped(pool.submit(task, x)), level, done)
    return order, peak[0]


def test_in_window_keeps_the_level_in_flight_and_finishes_every_item() -> None:
    with ThreadPoolExecutor(8) as pool:
        order, peak = _window(list(range(7)), 3, pool, [])
    assert sorted(order) == list(range(7)) and peak == 3


def test_in_window_draws_an_item_only_when_there_is_room_so_a_generator_can_stop() -> None:
    log: list[tuple[str, int]] = []

    def items():  # stops once two items are done, as generate stops at --n accepted
        for i in range(100):
            if sum(1 for kind, _ in log if kind == "done") >= 2:
                return
            log.append(("drawn", i))
            yield i

    with ThreadPoolExecutor(8) as pool:
        order, peak = _window(items(), 2, pool, log)
    drawn = [i for kind, i in log if kind == "drawn"]
    assert drawn == [0, 1, 2] and sorted(order) == drawn and peak == 2


def test_in_window_reads_a_callable_level_before_each_submission() -> None:
    level = [1]

    def items():
        for i in range(6):
            if i == 2:
                level[0] = 3  # as --concurrency auto raises its level mid-run
            yield i

    with ThreadPoolExecutor(8) as pool:
        order, peak = _window(items(), lambda: level[0], pool, [])
    assert sorted(order) == list(range(6)) and peak == 3


def test_taken_results_leave_no_link_in_the_flow_run() -> None:
    """Real Prefect (its thread runner, in a flow): Prefect links each task result, and each
    item of it, to the task's state for the whole flow run; a seed task's rounds left ~4 KB
    there per seed. ``result`` takes the value and drops those links."""
    from prefect import flow, task
    from prefect.context import FlowRunContext
    from prefect.task_runners import ThreadPoolTaskRunner

    @task
    def rounds(i: int) -> list[dict[str, Any]]:
        return [{"seed_id": f"s{i}", "round": r} for r in range(2)]

    @flow(task_runner=ThreadPoolTaskRunner(max_workers=4))
    def run(n: int) -> tuple[int, int]:
        links = FlowRunContext.get().run_results
        taken: list[Any] = []
        futures.in_window(range(n), rounds.submit, 4, lambda i, f: taken.append(futures.result(f)))
        kept = sum(id(obj) in links for value in taken for obj in [value, *value])
        return len(taken), kept

    assert run(30) == (30, 0)
