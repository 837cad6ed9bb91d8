"""Which failures a Prefect task retries (transient LM and Qdrant errors, nothing else),
and the retry options every retried task declares."""

from __future__ import annotations

from typing import Any

from dspy.utils.exceptions import LMRateLimitError, LMServerError, LMTimeoutError, LMTransportError
from qdrant_client.http.exceptions import ResponseHandlingException

TRANSIENT: tuple[type[BaseException], ...] = (
    ConnectionError,
    TimeoutError,
    LMRateLimitError,
    LMServerError,
    LMTimeoutError,
    LMTransportError,
    ResponseHandlingException,
)


def is_transient(task_obj: Any, task_run: Any, state: Any) -> bool:
    """Prefect ``retry_condition_fn``: retry only when the task raised a TRANSIENT error."""
    try:
        state.result()
    except TRANSIENT:
        return True
    except Exception:
        return False
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
