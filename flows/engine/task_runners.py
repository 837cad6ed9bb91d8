"""Task runners for the seed fan-out of `sage generate`: threads (default) or Dask processes.

``SAGE_TASK_RUNNER`` (or ``sage generate --task-runner``):

* ``thread``: Prefect's ThreadPoolTaskRunner with ``--concurrency`` threads (the default).
* ``dask``: a Dask LocalCluster of one worker process per CPU core (at most
  ``--concurrency``), sharing ``--concurrency`` threads between them: a process is bound
  by its GIL long before a served model is, so more processes means more seeds in flight.
* ``dask://HOST:PORT``: the workers of a running Dask scheduler (other machines).

Seed tasks take plain data (the seed with its document, a ``SeedJob``, its finished rounds)
and open their retriever, LMs and program once per process, so prefect-dask's stock
``DaskTaskRunner`` runs them unchanged. A worker needs: the index (an embedded one on the
same disk is fine: a complete version is read-only and any process may load it; or a
Qdrant server), an LM of its own (a served one; with ``SAGE_LM=local`` every worker loads
its own llama.cpp copy), the run directory on a filesystem every worker writes to, and the
``SAGE_*`` settings (secrets included) in its environment.
"""

from __future__ import annotations

import os

from prefect.task_runners import TaskRunner, ThreadPoolTaskRunner

from modules.errors import SageError


def build_task_runner(spec: str, concurrency: int = 1) -> TaskRunner:
    """The Prefect task runner for ``spec`` (thread | dask | dask://HOST:PORT)."""
    workers = max(1, int(concurrency))
    if spec == "thread":
        return ThreadPoolTaskRunner(max_workers=workers)
    if spec != "dask" and not (spec.startswith("dask://") and ":" in spec[7:]):
        raise SageError(f"task runner {spec!r}: use thread, dask or dask://HOST:PORT")
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError as exc:
        raise SageError(
            f"task runner {spec!r} needs prefect-dask: pip install 'sage-deepsearch[dask]'"
        ) from exc
    if spec == "dask":
        processes = max(1, min(workers, os.cpu_count() or 1))
        cluster = {
            "n_workers": processes,
            "threads_per_worker": -(-workers // processes),  # ceil: every seed has a thread
            "processes": True,
            "dashboard_address": None,
        }
        return DaskTaskRunner(cluster_kwargs=cluster)
    return DaskTaskRunner(address="tcp://" + spec[7:])
