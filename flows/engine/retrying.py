"""Which failures a Prefect task retries, and the retry options every retried task declares.

HTTP failures of the served LMs and the Search-R1 retriever are retried once, in their own
client (modules/retries.py: DSPy's retry loop with sage's delay, Retry-After honoured); a
task never retries them again on top, so a seed whose LM or retriever keeps failing fails
after that one layer with a line naming the endpoint. A task retries only what no client
retries: an unreachable Qdrant server (qdrant-client has no retry of its own).
"""

from __future__ import annotations

from typing import Any

# By qualified name, so that no command imports qdrant-client (~1.4 s) to classify errors.
TRANSIENT = frozenset({"qdrant_client.http.exceptions.ResponseHandlingException"})


def transient_error(exc: BaseException) -> bool:
    """Whether ``exc`` is (a subclass of) a TRANSIENT error."""
    return any(f"{c.__module__}.{c.__qualname__}" in TRANSIENT for c in type(exc).__mro__)


def is_transient(task_obj: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the task raised a TRANSIENT error."""
    try:
        state.result()
    except Exception as exc:
        return transient_error(exc)
    return False


def retried(attempts: int = 3) -> dict[str, Any]:
    """The options of a task that retries transient failures with exponential backoff."""
    from prefect.cache_policies import NO_CACHE
    from prefect.tasks import exponential_backoff

    return dict(
        retries=attempts,
        retry_delay_seconds=exponential_backoff(backoff_factor=2),
        retry_condition_fn=is_transient,
        cache_policy=NO_CACHE,
    )
