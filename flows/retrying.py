"""Which failures a Prefect task retries: transient LM and Qdrant errors, nothing else."""

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
