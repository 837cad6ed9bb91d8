"""Waiting on Prefect task futures without deafening the process to SIGTERM/SIGINT.

A main thread blocked in ``future.result()`` only notices a signal when the kernel happens
to deliver it to that thread; otherwise it waits for the task (minutes with a local LLM).
Waking up every ``poll`` seconds lets Python run the signal handlers (Prefect's SIGTERM
bridge, KeyboardInterrupt) promptly.
"""

from __future__ import annotations

import concurrent.futures
import threading
from collections.abc import Callable, Iterable
from typing import Any


def result(fut: Any, poll: float = 0.5) -> Any:
    """``fut.result()``, interruptible by signals, and taken: the flow consumes it here and
    passes it to no other task, so Prefect's link from it to its task's state is dropped
    (``forget``)."""
    wrapped = getattr(fut, "wrapped_future", None)
    if hasattr(wrapped, "done"):  # a thread's or a Dask future
        while not wrapped.done():
            fut.wait(timeout=poll)
    value = fut.result()
    forget(value)
    return value


def forget(value: Any) -> None:
    """Drop the flow run's links from ``value`` and its items to the task state that made
    them (``FlowRunContext.run_results``, which Prefect keeps so that a result passed to
    another task names its upstream run): a seed task's list of rounds left ~4 KB there per
    seed for the whole flow run, ~0.4 KB per LM call of a night (docs/BENCHMARKS.md)."""
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None:
        return
    if isinstance(value, dict):
        items = list(value.values())
    else:
        items = list(value) if isinstance(value, list | tuple | set) else []
    for obj in (value, *items):  # Prefect links a result and its items (depth 1)
        ctx.run_results.pop(id(obj), None)


def first_done(futs: list[Any], poll: float = 0.5) -> Any:
    """The first of ``futs`` to finish (interruptible by signals like ``result``): Prefect
    futures of the thread runner or of prefect-dask's DaskTaskRunner (whose client is not
    the process's default one, so ``distributed.wait`` cannot be used: a done-callback per
    future wakes the wait instead)."""
    wrapped = {f: getattr(f, "wrapped_future", None) for f in futs}
    woken = threading.Event()
    for w in wrapped.values():
        if w is not None and not isinstance(w, concurrent.futures.Future):
            w.add_done_callback(lambda _: woken.set())
    while True:
        for f, w in wrapped.items():
            if w is None or w.done():
                return f
        plain = [w for w in wrapped.values() if isinstance(w, concurrent.futures.Future)]
        if len(plain) == len(wrapped):
            concurrent.futures.wait(
                plain, timeout=poll, return_when=concurrent.futures.FIRST_COMPLETED
            )
        else:
            woken.wait(poll)


def in_window(
    items: Iterable[Any],
    submit: Callable[[Any], Any],
    level: int | Callable[[], int],
    done: Callable[[Any, Any], None],
) -> None:
    """Keep ``level`` of ``items`` in flight (``submit(item)`` -> a Prefect future; a callable
    level is read again before each submission) until ``items`` runs out and all are
    finished; ``done(item, future)`` runs for each as it finishes, first finished first, in
    this thread (interruptible by signals, like ``result``). The next item is drawn only
    when there is room, so a generator may decide then to stop."""
    width = level if callable(level) else lambda: level
    source = iter(items)
    inflight: dict[Any, Any] = {}
    drained = False
    while True:
        while not drained and len(inflight) < max(1, width()):
            item = next(source, _END)
            if item is _END:
                drained = True
            else:
                inflight[submit(item)] = item
        if not inflight:
            return
        fut = first_done(list(inflight))
        done(inflight.pop(fut), fut)


_END = object()
