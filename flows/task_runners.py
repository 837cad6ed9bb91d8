"""Task runners for the seed fan-out of `sage generate`: threads (default) or Dask processes.

``SAGE_TASK_RUNNER`` (or ``sage generate --task-runner``):

* ``thread``: Prefect's ThreadPoolTaskRunner with ``--concurrency`` threads (the default).
* ``dask``: a Dask LocalCluster of ``--concurrency`` worker processes, one thread each.
* ``dask://HOST:PORT``: the workers of a running Dask scheduler (other machines).

Seeds on Dask run in other processes: see flows/dask_runner.py for what travels there and
what a worker needs (a Qdrant server, an LM per process, a shared run directory).
"""

from __future__ import annotations

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from modules.errors import SageError
from modules.settings import Settings

DEFAULT_OPENER = "flows.runtime:Runtime.open"


def build_task_runner(
    spec: str, concurrency: int = 1, runtime_opener: str = DEFAULT_OPENER
) -> TaskRunner:
    """The Prefect task runner for ``spec`` (thread | dask | dask://HOST:PORT)."""
    workers = max(1, int(concurrency))
    if spec == "thread":
        return ThreadPoolTaskRunner(max_workers=workers)
    if spec != "dask" and not (spec.startswith("dask://") and ":" in spec[7:]):
        raise SageError(f"task runner {spec!r}: use thread, dask or dask://HOST:PORT")
    try:
        from flows.dask_runner import SageDaskTaskRunner
    except ImportError as exc:
        raise SageError(
            f"task runner {spec!r} needs prefect-dask: pip install 'sage-deepsearch[dask]'"
        ) from exc
    if spec == "dask":
        cluster = {
            "n_workers": workers,
            "threads_per_worker": 1,
            "processes": True,
            "dashboard_address": None,
        }
        return SageDaskTaskRunner(cluster_kwargs=cluster, runtime_opener=runtime_opener)
    return SageDaskTaskRunner(address="tcp://" + spec[7:], runtime_opener=runtime_opener)


def check_task_runner(settings: Settings) -> None:
    """Fail before Prefect starts when the task runner cannot work with these settings."""
    if settings.task_runner != "thread" and not settings.qdrant_is_server:
        raise SageError(
            f"task runner {settings.task_runner!r} runs seeds in other processes, which cannot "
            f"open the embedded Qdrant at {settings.qdrant_location} (one process at a time): "
            "set SAGE_QDRANT=http://HOST:6333 (a Qdrant server) or use the thread runner"
        )
